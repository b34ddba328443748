"""Searches and compares: the root DSE and subschema entries, the ``SearchSpec`` a request asks the
directory for (limits, paging, sorting), the entries sent as the directory finds them, and the
SearchResultDone with its response controls.

Paged searches count the entries sent in the pages before a cookie, so the client's sizeLimit counts the
whole search, not each page (the server's limit stays per page). An entry written while the transport's
buffer is full hands the directory a Deferred that fires once the buffer drains.
"""

from __future__ import annotations

from typing import Any

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer

from abook.directory import matching
from abook.directory.api import BASE, ONE_LEVEL, Entry, SearchSpec, VlvResult
from abook.server import controls as ctl
from abook.server import encode, rootdse, strict
from abook.server.decode import text
from abook.server.dispatch import Response, message_text


class SearchOperations:
    """Mixed into the connection (``protocol.AbookLDAPServer``), before ldaptor's ``LDAPServer``."""

    def _special_entry(self, request: Any, msg_id: int) -> Response | None:
        """The root DSE and the subschema entry, for any base-scope filter that matches them.

        The subschema entry is a leaf: scope one-level finds nothing below it, subtree finds just it.
        """
        base = text(request.baseObject).strip().lower().replace(" ", "")
        if request.scope != BASE:
            if base != rootdse.SUBSCHEMA_DN.lower():
                return None
            if request.scope == ONE_LEVEL:
                return Response(encode.result(0x65, 0))
        attrs = [text(a) for a in request.attributes]
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
        if sc.vlv is not None:
            refused = vlv_refusal(sc)
            if refused is not None:
                return refused
        limits = self._limits
        if sc.page_size is not None and sc.page_size == 0:
            # RFC 2696: size 0 abandons the paged search the cookie names
            self._paged_sent.pop(sc.cookie, None)
            return Response(encode.result(0x65, 0), encode.controls([ctl.paged_response(b"")]))
        page_size = None if sc.page_size is None else min(sc.page_size, limits.max_page_size)
        client_limit = request.sizeLimit
        before = self._paged_sent.pop(sc.cookie, 0) if page_size is not None and sc.cookie else 0
        if client_limit and before:
            if before >= client_limit:  # the pages so far used the whole limit (a cookie sent again)
                return Response(encode.result(0x65, ldaperrors.LDAPSizeLimitExceeded.resultCode, b"",
                                              b"size limit exceeded"), encode.controls([ctl.paged_response(b"")]))
            client_limit -= before
        base, scope = text(request.baseObject), request.scope
        if not base.strip():
            # below the root DSE lies the one naming context (Apple clients search from "")
            base, scope = self.factory.config.suffix, (BASE if scope == ONE_LEVEL else scope)
        spec = SearchSpec(
            base=base,
            scope=scope,
            filter=request.filter,
            attributes=tuple(text(a) for a in request.attributes),
            types_only=bool(request.typesOnly),
            size_limit=smaller(client_limit, limits.size_limit),
            time_limit=float(smaller(request.timeLimit, limits.time_limit)),
            principal=None if self.identity is None else self.identity.principal,
            anonymous_books=self.factory.anonymous_books,
            page_size=page_size,
            cookie=sc.cookie,
            sort=sc.sort,
            sort_critical=sc.sort_critical,
            filter_wire=getattr(request, "abook_filter_wire", None),
            requester=self._requester(),
            vlv=sc.vlv,
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
            if spec.vlv is not None:  # without a result the sort failed (critical): no list to view
                response_controls.append(ctl.vlv_response(
                    result.vlv or VlvResult(0, 0, ldaperrors.LDAPUnwillingToPerform.resultCode)))
            code = result.result_code
            if sc.sort_critical and result.sort_result not in (None, 0) and code == 0:
                code = ldaperrors.LDAPUnavailableCriticalExtension.resultCode  # RFC 2891 1.2: could not sort
            elif spec.vlv is not None and result.vlv is None and code == 0:
                code = ctl.VLV_ERROR  # a directory that cannot view lists
            op = encode.result(0x65, code, result.matched_dn, result.message)
            return Response(op, encode.controls(response_controls))

        def stop_timer(result: Any) -> Any:
            if timer is not None and timer.active():
                timer.cancel()
            return result

        d.addBoth(stop_timer).addCallback(done)
        if spec.vlv is not None:
            d.addErrback(vlv_failed)
        return d

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


    def handle_LDAPCompareRequest(self, request: Any, controls: Any, msg_id: int) -> Any:
        ctl.check_critical(controls)
        ava = request.ava
        spec = SearchSpec(
            base=text(request.entry), scope=BASE,
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


#: result codes the draft's virtualListViewResult names; any other failure is reported as other (80)
_VLV_RESULTS = {1, 3, 11, 18, 50, 53}


def vlv_failed(failure: Any) -> Response:
    """A VLV search that failed (time limit, no such base, ...) still answers with the VLV response
    control, as the draft asks, its virtualListViewResult the failure's code where the draft names it."""
    failure.trap(ldaperrors.LDAPException)
    e = failure.value
    code = e.resultCode
    op = encode.result(0x65, code, getattr(e, "matchedDN", None) or b"", message_text(e))
    return Response(op, encode.controls([ctl.vlv_response(VlvResult(0, 0, code if code in _VLV_RESULTS else 80))]))


def vlv_refusal(sc: ctl.SearchControls) -> Response | None:
    """The answer to a VLV request that cannot be served at all, as OpenLDAP's sssvlv answers it: without
    a sort control, virtualListViewError (76) with sortControlMissing (60) in the response control; with
    paged results, unwillingToPerform (53)."""
    if sc.page_size is not None:
        return Response(encode.result(0x65, ldaperrors.LDAPUnwillingToPerform.resultCode, b"",
                                      b"VLV cannot be combined with paged results"))
    if sc.sort is None:
        return Response(encode.result(0x65, ctl.VLV_ERROR, b"", b"the VLV control needs a server-side sort control"),
                        encode.controls([ctl.vlv_response(VlvResult(0, 0, ctl.SORT_CONTROL_MISSING))]))
    return None


def smaller(client: int | float, server: int | float) -> int | float:
    """The smaller of two limits where 0 means none."""
    if not client:
        return server
    if not server:
        return client
    return min(client, server)
