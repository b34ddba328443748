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

import contextlib
import io
import time
from typing import Any

from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors
from ldaptor.protocols.ldap.ldapserver import LDAPServer
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from abook import ber
from abook.directory import matching
from abook.directory.api import BASE, ONE_LEVEL, Entry, SearchSpec, StoreOutage
from abook.monitor import metrics
from abook.server import controls as ctl
from abook.server import encode, rootdse, strict
from abook.server.deadlines import InputLimits
from abook.server.framing import EXTENDED, SEARCH, FrameError, Framer, extended_name, span

NOTICE_OF_DISCONNECTION = b"1.3.6.1.4.1.1466.20036"

#: request class name -> the response op tag its errors are sent in
RESPONSE_TAGS = {
    "LDAPBindRequest": 0x61, "LDAPSearchRequest": 0x65, "LDAPModifyRequest": 0x67, "LDAPAddRequest": 0x69,
    "LDAPDelRequest": 0x6B, "LDAPModifyDNRequest": 0x6D, "LDAPCompareRequest": 0x6F,
    "LDAPExtendedRequest": 0x78,
}
READ_ONLY = "the address books are read-only"


class Response:
    """An encoded protocol op and the encoded response controls to send with it."""

    __slots__ = ("op", "controls")

    def __init__(self, op: bytes, controls: bytes = b"") -> None:
        self.op = op
        self.controls = controls


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _message_text(e: ldaperrors.LDAPException) -> bytes:
    m = e.message
    if m is None:
        return b""
    return m if isinstance(m, bytes) else str(m).encode("utf-8")


@implementer(IPushProducer)
class AbookLDAPServer(InputLimits, LDAPServer):
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
        op = encode.result(0x78, code, b"", reason.encode("utf-8"), encode.octets(NOTICE_OF_DISCONNECTION, 0x8A))
        self.transport.write(encode.message(0, op))
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
        """The LDAPMessage of a checked PDU. Searches without controls are decoded once per distinct
        request (mail clients repeat them) and carry their filter's wire form for the directory's caches."""
        msg_id, op_start, op_end = _search_op(pdu)
        if op_start < 0:
            return self._ldaptor_decode(pdu)
        key = pdu[op_start:op_end]
        op = _DECODED_SEARCHES.get(key)
        if op is None:
            msg = self._ldaptor_decode(pdu)
            op = getattr(msg, "value", None)
            if not isinstance(op, pureldap.LDAPSearchRequest):
                return msg
            op.abook_filter_wire = _filter_wire(key)
            if len(_DECODED_SEARCHES) >= _DECODED_MAX:
                _DECODED_SEARCHES.clear()
            _DECODED_SEARCHES[key] = op
            return msg
        return _Message(msg_id, op)

    def _ldaptor_decode(self, pdu: bytes) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):  # ldaptor prints unknown tags
            msg, _used = pureber.berDecodeObject(self.berdecoder, pdu)
        return msg

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

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, msg: Any) -> None:
        op = msg.value
        msg_id = msg.id
        if self._binding is not None and not isinstance(op, pureldap.LDAPAbandonRequest) and not _starttls(op):
            if len(self._queued) >= self._limits.max_outstanding:
                self.disconnect("too many requests sent during a bind")
                return
            self._queued.append(msg)
            return
        if isinstance(op, pureldap.LDAPAbandonRequest):
            self._active.discard(op.value)
            d = self._outstanding.pop(op.value, None)
            if d is not None:
                d.cancel()
            return
        if isinstance(op, pureldap.LDAPUnbindRequest):
            self._closing = True
            for d in list(self._outstanding.values()):
                d.cancel()
            self.transport.loseConnection()
            return
        name = op.__class__.__name__
        if msg_id == 0 or msg_id in self._active:
            self.disconnect("message id " + str(msg_id) + " is not usable")
            return
        if len(self._outstanding) >= self._limits.max_outstanding:
            self.write_message(msg_id, encode.result(RESPONSE_TAGS.get(name, 0x78), ldaperrors.LDAPBusy.resultCode,
                                                     b"", b"too many outstanding requests"))
            self._count(name, ldaperrors.LDAPBusy.resultCode, None, op)
            return
        handler = getattr(self, "handle_" + name, None)
        if handler is None:
            self.disconnect("unsupported request " + name)
            return
        self._active.add(msg_id)
        started = time.monotonic()
        d = defer.maybeDeferred(handler, op, msg.controls, msg_id)
        d.addBoth(self._counted, name, started, op, msg_id)
        if d.called:
            d.addCallbacks(self._respond, self._fail, (msg_id,), None, (msg_id, name))
            self._active.discard(msg_id)
            return
        self._outstanding[msg_id] = d
        # searches are bounded by their time limit instead (a whole-book download may take long)
        timer = None if name == "LDAPSearchRequest" else self.factory.clock.callLater(
            self._limits.request_timeout, self._time_out, msg_id)
        d.addCallbacks(self._respond, self._fail, (msg_id,), None, (msg_id, name))
        d.addBoth(self._finished, msg_id, timer)

    def _finished(self, result: Any, msg_id: int, timer: Any) -> None:
        if timer is not None and timer.active():
            timer.cancel()
        self._outstanding.pop(msg_id, None)
        self._active.discard(msg_id)
        self._timed_out.discard(msg_id)
        self._touch()

    def _counted(self, result: Any, name: str, started: float, op: Any, msg_id: int) -> Any:
        """Count the request's answer (monitor/metrics.py); ``result`` passes through unchanged."""
        if isinstance(result, Failure):
            if result.check(defer.CancelledError):  # timed out (answered timeLimitExceeded), or abandoned / lost
                code: int | str = ldaperrors.LDAPTimeLimitExceeded.resultCode if msg_id in self._timed_out \
                    else "abandoned"
            else:
                code = getattr(result.value, "resultCode", ldaperrors.other)
        else:
            code = _result_code(result)
        self._count(name, code, started, op)
        return result

    def _count(self, name: str, code: int | str, started: float | None, op: Any) -> None:
        m = metrics.get()
        operation = name[4:-7].lower() if name.startswith("LDAP") and name.endswith("Request") else name
        m.ldap_answered(operation, code, started, time.monotonic())
        if operation == "bind" and isinstance(code, int):
            m.bind(code, anonymous=not (op.dn or op.auth))

    def _time_out(self, msg_id: int) -> None:
        d = self._outstanding.get(msg_id)
        if d is not None:
            self._timed_out.add(msg_id)
            d.cancel()

    def _respond(self, response: Any, msg_id: int) -> None:
        if response is None:
            return
        if isinstance(response, Response):
            self.write_message(msg_id, response.op, response.controls)
        else:
            self.write_message(msg_id, response.toWire())

    def _fail(self, failure: Failure, msg_id: int, name: str) -> None:
        tag = RESPONSE_TAGS.get(name, 0x78)
        if failure.check(defer.CancelledError):
            if msg_id in self._timed_out:
                self.write_message(msg_id, encode.result(tag, ldaperrors.LDAPTimeLimitExceeded.resultCode,
                                                         b"", b"time limit exceeded"))
            return
        if failure.check(ldaperrors.LDAPException):
            e = failure.value
            matched = getattr(e, "matchedDN", None) or b""
            self.write_message(msg_id, encode.result(tag, e.resultCode, matched, _message_text(e)))
            return
        if failure.check(StoreOutage):  # logged once per outage by the store (StoreHealth), not per request
            if failure.value.busy:
                code, message = ldaperrors.LDAPBusy.resultCode, b"the address book store is busy"
            else:
                code, message = ldaperrors.LDAPUnavailable.resultCode, b"the address book store is unavailable"
            self.write_message(msg_id, encode.result(tag, code, b"", message))
            return
        strict.log_failure(self.log, failure, name, self.peer)
        self.write_message(msg_id, encode.result(tag, ldaperrors.other, b"", b"internal error"))

    # -- bind -------------------------------------------------------------------------------------

    def handle_LDAPBindRequest(self, request: Any, controls: Any, msg_id: int) -> Any:
        ctl.check_critical(controls)
        self._set_identity(None)  # a bind (even a failing one) leaves the connection anonymous first
        if request.version != 3:
            raise ldaperrors.LDAPProtocolError("only LDAP version 3 is supported")
        if request.sasl:
            raise ldaperrors.LDAPAuthMethodNotSupported("SASL is not supported; use a simple bind")
        name = _text(request.dn)
        password = _text(request.auth or b"")
        if not name and not password:
            return pureldap.LDAPBindResponse(resultCode=0)
        if not name:
            raise ldaperrors.LDAPInvalidCredentials("invalid credentials")
        if not password:
            raise ldaperrors.LDAPUnwillingToPerform("unauthenticated binds are not allowed")
        if self.factory.config.require_tls_for_bind and not self.tls:
            raise ldaperrors.LDAPConfidentialityRequired("use StartTLS or LDAPS before binding")
        d = self.factory.authenticator.authenticate(name, password, self.peer)
        self._binding = d

        def bound(identity: Any) -> Any:
            self._set_identity(identity)
            return pureldap.LDAPBindResponse(resultCode=0)

        def finished(result: Any) -> Any:
            self._binding = None
            queued, self._queued = self._queued, []
            self.factory.clock.callLater(0, self._handle_queued, queued)
            return result

        return d.addCallback(bound).addBoth(finished)

    def _handle_queued(self, queued: list[Any]) -> None:
        for i, msg in enumerate(queued):
            if self._closing:
                return
            if self._binding is not None:
                self._queued[:0] = queued[i:]
                return
            self.handle(msg)

    # -- search -----------------------------------------------------------------------------------

    def _special_entry(self, request: Any, msg_id: int) -> Response | None:
        """The root DSE and the subschema entry, for any base-scope filter that matches them.

        The subschema entry is a leaf: scope one-level finds nothing below it, subtree finds just it.
        """
        base = _text(request.baseObject).strip().lower().replace(" ", "")
        if request.scope != BASE:
            if base != rootdse.SUBSCHEMA_DN.lower():
                return None
            if request.scope == ONE_LEVEL:
                return Response(encode.result(0x65, 0))
        attrs = [_text(a) for a in request.attributes]
        if base == "":
            entry = rootdse.root_dse(self.factory.config.suffix, self.factory.starttls_available and not self.tls,
                                     (), False)
            dn = ""
        elif base == rootdse.SUBSCHEMA_DN.lower():
            entry = rootdse.subschema((), False)
            dn = rootdse.SUBSCHEMA_DN
        else:
            return None
        if matching.entry_matches(request.filter, entry):
            selected = rootdse._select(entry, attrs, bool(request.typesOnly))
            self.write_message(msg_id, self.factory.encoder.entry(dn, selected))
        return Response(encode.result(0x65, 0))

    def handle_LDAPSearchRequest(self, request: Any, controls: Any, msg_id: int) -> Any:
        strict.check_search(request)
        special = self._special_entry(request, msg_id)
        if special is not None:
            ctl.check_critical(controls, ctl.SUPPORTED)
            return special
        sc = ctl.search_controls(controls)
        limits = self._limits
        if sc.page_size is not None and sc.page_size == 0:
            # RFC 2696: size 0 abandons the paged search the cookie names
            self._paged_sent.pop(sc.cookie, None)
            return Response(encode.result(0x65, 0), ctl.paged_response(b""))
        page_size = None if sc.page_size is None else min(sc.page_size, limits.max_page_size)
        client_limit = request.sizeLimit
        before = self._paged_sent.pop(sc.cookie, 0) if page_size is not None and sc.cookie else 0
        if client_limit and before:
            if before >= client_limit:  # the pages so far used the whole limit (a cookie sent again)
                return Response(encode.result(0x65, ldaperrors.LDAPSizeLimitExceeded.resultCode, b"",
                                              b"size limit exceeded"), ctl.paged_response(b""))
            client_limit -= before
        base, scope = _text(request.baseObject), request.scope
        if not base.strip():
            # below the root DSE lies the one naming context (Apple clients search from "")
            base, scope = self.factory.config.suffix, (BASE if scope == ONE_LEVEL else scope)
        spec = SearchSpec(
            base=base,
            scope=scope,
            filter=request.filter,
            attributes=tuple(_text(a) for a in request.attributes),
            types_only=bool(request.typesOnly),
            size_limit=_smaller(client_limit, limits.size_limit),
            time_limit=float(_smaller(request.timeLimit, limits.time_limit)),
            principal=None if self.identity is None else self.identity.principal,
            anonymous_books=self.factory.anonymous_books,
            page_size=page_size,
            cookie=sc.cookie,
            sort=sc.sort,
            sort_critical=sc.sort_critical,
            filter_wire=getattr(request, "abook_filter_wire", None),
            requester=self._requester(),
        )
        # entries that come as values (not pre-encoded by the directory: containers, other directories)
        # go through the encoder's cache, except in a paged download, which passes every entry once
        cached = spec.page_size is None
        sent = [0]

        def send(entry: Entry) -> defer.Deferred | None:
            sent[0] += 1
            return self._send_entry(msg_id, entry, cached)

        d = self.factory.directory.search(spec, send)
        timer = None
        if spec.time_limit:
            timer = self.factory.clock.callLater(spec.time_limit, self._time_out, msg_id)

        def done(result: Any) -> Response:
            response_controls = []
            if spec.page_size is not None:
                response_controls.append(ctl.paged_response(result.cookie or b""))
                if result.cookie and request.sizeLimit:
                    if len(self._paged_sent) >= 16:  # a client following many paged searches at once
                        del self._paged_sent[next(iter(self._paged_sent))]
                    self._paged_sent[result.cookie] = before + sent[0]
            if spec.sort is not None:
                response_controls.append(ctl.sort_response(result.sort_result or 0))
            code = result.result_code
            if sc.sort_critical and result.sort_result not in (None, 0) and code == 0:
                code = ldaperrors.LDAPUnavailableCriticalExtension.resultCode  # RFC 2891 1.2: could not sort
            op = encode.result(0x65, code, result.matched_dn, result.message)
            return Response(op, encode.controls(response_controls))

        def stop_timer(result: Any) -> Any:
            if timer is not None and timer.active():
                timer.cancel()
            return result

        return d.addBoth(stop_timer).addCallback(done)

    def _requester(self) -> tuple:
        """Whose share of the database a search uses: the bound user's (anonymous: the address's), then
        this connection's (``SearchSpec.requester``)."""
        return (self.peer if self.identity is None else self.identity.user_id, self)

    def _send_entry(self, msg_id: int, entry: Entry, cached: bool = True) -> defer.Deferred | None:
        if msg_id not in self._active or self._closing:
            return None
        if entry.ber is not None:  # encoded by the directory on its worker thread
            self.write_message(msg_id, entry.ber)
        else:
            encoder = self.factory.encoder
            self.write_message(msg_id, encoder.encoded(entry) if cached else encoder.entry(entry.dn, entry.attributes))
        if self._paused:
            d: defer.Deferred = defer.Deferred()
            self._drained.append(d)
            return d
        return None

    # -- other operations -------------------------------------------------------------------------

    def handle_LDAPExtendedRequest(self, request: Any, controls: Any, msg_id: int) -> Any:
        ctl.check_critical(controls)
        oid = request.requestName if isinstance(request.requestName, bytes) else request.requestName.encode()
        if oid == rootdse.STARTTLS:
            return self._start_tls(msg_id)
        if oid == rootdse.WHOAMI:
            authz = b"" if self.identity is None else b"dn:" + self.identity.dn.encode("utf-8")
            return Response(encode.result(0x78, 0, b"", b"", encode.octets(authz, 0x8B)))
        raise ldaperrors.LDAPProtocolError("unknown extended operation " + oid.decode("ascii", "replace"))

    def _start_tls(self, msg_id: int) -> Any:
        if self.tls:  # an LDAPS connection too (RFC 4511 4.14.1)
            raise ldaperrors.LDAPOperationsError("TLS is already established")
        if not self.factory.starttls_available:
            raise ldaperrors.LDAPProtocolError("StartTLS is not configured")
        if self._outstanding:  # a bind in progress included
            raise ldaperrors.LDAPOperationsError("requests are outstanding")
        extra = encode.octets(rootdse.STARTTLS, 0x8A)
        self.write_message(msg_id, encode.result(0x78, 0, b"", b"", extra))
        self.transport.startTLS(self.factory.tls_context)
        self.tls = True
        return None

    def handle_LDAPCompareRequest(self, request: Any, controls: Any, msg_id: int) -> Any:
        ctl.check_critical(controls)
        ava = request.ava
        spec = SearchSpec(
            base=_text(request.entry), scope=BASE,
            filter=pureldap.LDAPFilter_equalityMatch(attributeDesc=ava.attributeDesc,
                                                     assertionValue=ava.assertionValue),
            attributes=("1.1",), size_limit=1,
            principal=None if self.identity is None else self.identity.principal,
            anonymous_books=self.factory.anonymous_books,
            requester=self._requester(),
        )
        found: list[Entry] = []
        d = self.factory.directory.search(spec, found.append)

        def done(result: Any) -> Response:
            if result.result_code not in (0, 4):
                return Response(encode.result(0x6F, result.result_code, result.matched_dn, result.message))
            code = ldaperrors.LDAPCompareTrue.resultCode if found else ldaperrors.LDAPCompareFalse.resultCode
            return Response(encode.result(0x6F, code))

        return d.addCallback(done)

    def _read_only(self, request: Any, controls: Any, msg_id: int) -> Any:
        raise ldaperrors.LDAPUnwillingToPerform(READ_ONLY)

    handle_LDAPAddRequest = handle_LDAPModifyRequest = _read_only
    handle_LDAPDelRequest = handle_LDAPModifyDNRequest = _read_only


_DECODED_MAX = 4096
#: decoded SearchRequests (read-only after decoding) by their op's bytes (no message id, no controls)
_DECODED_SEARCHES: dict[bytes, Any] = {}


def _result_code(response: Any) -> int:
    """The result code of an answer: an encoded LDAPResult op (tag, length, then the ENUMERATED code),
    an ldaptor response, or None (StartTLS, which answered itself with success)."""
    if response is None:
        return 0
    if isinstance(response, Response):
        op = response.op
        i = 1
        if len(op) > i and op[i] & 0x80:
            i += op[i] & 0x7F
        i += 1
        if len(op) > i + 2 and op[i] == 0x0A and op[i + 1] == 1:
            return op[i + 2]
        return ldaperrors.other
    return int(getattr(response, "resultCode", 0))


class _Message:
    """What ``handle`` reads of an LDAPMessage, for a search decoded from the cache."""

    __slots__ = ("id", "value", "controls")

    def __init__(self, msg_id: int, value: Any) -> None:
        self.id, self.value, self.controls = msg_id, value, None


def _search_op(pdu: bytes) -> tuple[int, int, int]:
    """(message id, op start, op end) of a SearchRequest PDU without controls, else (0, -1, -1).

    The PDU has passed ``Framer.check_message``, so every length fits its parent."""
    end = len(pdu)
    _tag, body, body_end = span(pdu, 0, end)
    tag, id_start, id_end = span(pdu, body, body_end)
    if tag != 0x02 or id_end >= body_end or pdu[id_end] != SEARCH:
        return 0, -1, -1
    _tag, _start, op_end = span(pdu, id_end, body_end)
    if op_end != body_end:
        return 0, -1, -1  # controls follow (paged results cookies differ per page): not cached
    return int.from_bytes(pdu[id_start:id_end], "big", signed=True), id_end, op_end


def _starttls(op: Any) -> bool:
    return isinstance(op, pureldap.LDAPExtendedRequest) and ber.as_bytes(op.requestName) == rootdse.STARTTLS


def _filter_wire(op: bytes) -> bytes:
    """The filter TLV of a SearchRequest op: after base, scope, deref, sizeLimit, timeLimit, typesOnly."""
    _tag, pos, end = span(op, 0, len(op))
    for _ in range(6):
        _tag, _start, pos = span(op, pos, end)
    _tag, _start, filter_end = span(op, pos, end)
    return op[pos:filter_end]


def _smaller(client: int | float, server: int | float) -> int | float:
    """The smaller of two limits where 0 means none."""
    if not client:
        return server
    if not server:
        return client
    return min(client, server)
