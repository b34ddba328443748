"""Dispatching decoded requests, and the operations that are not searches: bind, extended, read-only.

``handle`` is overridden because only it sees message ids and controls: several requests may be
outstanding (up to ``limits.max_outstanding``), Abandon cancels one (and is never answered), Unbind
closes, and requests that arrive during a bind wait for it (RFC 4511 4.2.1). Every answer is counted
(``monitor/metrics.py``) and every failure becomes its LDAP result code.
"""

from __future__ import annotations

import time
from typing import Any

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.python.failure import Failure

from abook.directory.api import StoreOutage
from abook.monitor import metrics
from abook.server import controls as ctl
from abook.server import encode, rootdse, strict
from abook.server.decode import is_starttls, text

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


def message_text(e: ldaperrors.LDAPException) -> bytes:
    m = e.message
    if m is None:
        return b""
    return m if isinstance(m, bytes) else str(m).encode("utf-8")


def result_code(response: Any) -> int:
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


class Dispatch:
    """Mixed into the connection (``protocol.AbookLDAPServer``), before ldaptor's ``LDAPServer``."""

    def handle(self, msg: Any) -> None:
        op = msg.value
        msg_id = msg.id
        if self._binding is not None and not isinstance(op, pureldap.LDAPAbandonRequest) and not is_starttls(op):
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
            code = result_code(result)
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
            self.write_message(msg_id, encode.result(tag, e.resultCode, matched, message_text(e)))
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
        name = text(request.dn)
        password = text(request.auth or b"")
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


    # -- extended and read-only operations ---------------------------------------------------------

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


    def _read_only(self, request: Any, controls: Any, msg_id: int) -> Any:
        raise ldaperrors.LDAPUnwillingToPerform(READ_ONLY)

    handle_LDAPAddRequest = handle_LDAPModifyRequest = _read_only
    handle_LDAPDelRequest = handle_LDAPModifyDNRequest = _read_only
