"""The LDAP connection: ldaptor's ``LDAPServer`` with abook's framing, limits, binds, controls and search.

Bytes go through ``framing.Framer`` (every size, depth and DN limit checked before ldaptor parses), then
ldaptor decodes the complete PDU and ``handle`` dispatches it. ``handle`` is overridden because only it
sees message ids and controls: several requests may be outstanding (up to ``limits.max_outstanding``),
Abandon cancels one (and is never answered), Unbind closes. A malformed or oversized message ends only
its own connection, with a Notice of Disconnection (protocolError) and one log line, no traceback.

The connection is an ``IPushProducer`` for its transport: when the client reads slowly and the
transport's buffer fills, reading stops and ``send_entry`` hands the directory a Deferred that fires
once the buffer drains (the directory waits on it before producing its next batch).
"""
from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapserver import LDAPServer
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from abook.server import encode, rootdse
from abook.server.deadlines import InputLimits
from abook.server.decode import decode
from abook.server.dispatch import Dispatch
from abook.server.framing import EXTENDED, FrameError, Framer, extended_name
from abook.server.search import SearchOperations


@implementer(IPushProducer)
class AbookLDAPServer(InputLimits, Dispatch, SearchOperations, LDAPServer):
    log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.identity: Any = None
        self.tls = False
        self._closing = False
        self._outstanding: dict[int, defer.Deferred] = {}
        #: ids of the requests being answered (entries of an abandoned search are dropped)
        self._active: set[int] = set()
        #: requests received while a bind is in progress, handled once it completes (RFC 4511 4.2.1)
        self._binding: defer.Deferred | None = None
        self._queued: list[Any] = []
        self._timed_out: set[int] = set()
        self._paused = False
        self._drained: list[defer.Deferred] = []
        self._idle: Any = None
        self._abort_call: Any = None
        #: paged searches: the cookie we returned -> entries sent in the pages before it, so the client's
        #: sizeLimit counts the whole search, not each page (the server's limit stays per page)
        self._paged_sent: dict[bytes, int] = {}
        self.peer = "?"

    # -- connection -------------------------------------------------------------------------------

    @property
    def _limits(self) -> Any:
        return self.factory.config.limits

    def connectionMade(self) -> None:
        super().connectionMade()
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", str(peer))
        self.tls = self.factory.tls_listener
        self.framer = Framer(self.factory.frame_limits, self._max_size())
        self.transport.registerProducer(self, True)
        # Nagle's algorithm would hold a small SearchResultDone back until the client ACKs the entries
        # before it, and clients delay that ACK (40 ms on Linux): a paged download of 184 pages took 10 s
        # instead of 3. Every response is written whole, so there is nothing for Nagle to coalesce.
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)
        self._idle = self.factory.clock.callLater(self._limits.idle_timeout, self._idle_timeout)
        self.start_bind_deadline()
        self.factory.connection_made(self)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:
        super().connectionLost(reason)
        self._closing = True
        for call in (self._idle, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._idle = self._abort_call = None
        self.release_input()
        for d in list(self._outstanding.values()):
            d.cancel()
        self._outstanding.clear()
        self._queued.clear()
        self._paged_sent.clear()
        self._resume_waiters()
        self.factory.connection_lost(self)

    def _max_size(self) -> int:
        limits = self._limits
        return limits.max_request_size if self.identity is not None else limits.max_request_size_anonymous

    def _set_identity(self, identity: Any) -> None:
        """Bound (or anonymous again): the request size limit follows."""
        self.identity = identity
        self.framer.max_size = self._max_size()
        if identity is not None:
            self.bound()

    def _idle_timeout(self) -> None:
        self._idle = None
        if self._outstanding:
            self._idle = self.factory.clock.callLater(self._limits.idle_timeout, self._idle_timeout)
            return
        self.log.info("closing idle connection from {address}", address=self.peer)
        self.transport.loseConnection()

    def close(self, reason: str, code: int | None = None) -> None:
        """End the connection: with a Notice of Disconnection carrying ``code``, or (None) without one."""
        if code is not None:
            self.disconnect(reason, code)
            return
        if self._closing:
            return
        self._closing = True
        self.log.info("closing connection from {address}: {reason}", address=self.peer, reason=reason)
        self._end()

    def _touch(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._limits.idle_timeout)

    def disconnect(self, reason: str, code: int = ldaperrors.LDAPProtocolError.resultCode) -> None:
        """Send a Notice of Disconnection and close; later input is ignored."""
        if self._closing:
            return
        self._closing = True
        self.log.info("ending connection from {address}: {reason}", address=self.peer, reason=reason)
        self.transport.write(encode.notice_of_disconnection(code, reason.encode("utf-8")))
        self._end()

    def _end(self) -> None:
        self.release_input()  # later input is ignored: what is buffered can go now
        for d in list(self._outstanding.values()):
            d.cancel()
        self.transport.loseConnection()
        # a client that never reads must not keep the connection (and its buffer) alive
        self._abort_call = self.factory.clock.callLater(5.0, self._abort)

    def _abort(self) -> None:
        if self.connected:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._touch()
        framer = self.framer
        try:
            pdus = framer.feed(data)
        except FrameError as e:
            self.disconnect(e.reason)
            return
        held = framer.buffered
        if (held or self._held) and not self.held_changed(held, bool(pdus)):
            return
        for op, pdu in pdus:
            if self._closing:
                return
            if op == EXTENDED and (held or pdu is not pdus[-1][1]) and extended_name(pdu) == rootdse.STARTTLS:
                # RFC 4511 4.14.1: nothing may follow StartTLS until its response. What did was sent in
                # the clear and must never run inside TLS (CVE-2011-0411): end the connection, in the clear.
                self.disconnect("data received after a StartTLS request")
                return
            try:
                msg = self._decode(pdu)
            except Exception as e:  # ldaptor raises anything (assertions, IndexError) on bad input
                self.disconnect("undecodable request (" + type(e).__name__ + ")")
                return
            if msg is None or not isinstance(getattr(msg, "value", None), pureldap.LDAPProtocolRequest):
                self.disconnect("undecodable request")
                return
            self.handle(msg)

    def _decode(self, pdu: bytes) -> Any:
        return decode(self.berdecoder, pdu)

    # -- producer ---------------------------------------------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._closing:
            self.transport.resumeProducing()
        self._resume_waiters()

    def stopProducing(self) -> None:
        self._closing = True
        self._resume_waiters()

    def _resume_waiters(self) -> None:
        waiters, self._drained = self._drained, []
        for d in waiters:
            d.callback(None)

    def write_message(self, msg_id: int, op: bytes, controls: bytes = b"") -> None:
        if self.connected and not self._closing:
            self.transport.write(encode.message(msg_id, op, controls))
