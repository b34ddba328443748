"""Virtual List View (draft-ietf-ldapext-ldapv3-vlv-09) over a search's sorted result.

The list is what the same search with the same sort control would return, with the same visibility
(the record queries are the search's own: ``QueryPlanner`` puts the bound user's visibility and the
filter in their WHERE clause). ``store.vlv.window_txn`` counts it, finds the target and reads only the
window, in one transaction on the ``db`` pool (through the fair queue like any batch). The server is
stateless: the context ID it returns names the request (a hash of base, filter, attributes, user and
sort keys) and a context ID sent back is accepted and not needed.

Unlike a plain sorted search, the list may span several books (base ``o=crm``, Outlook's default): their
records are merged in sort order (``QueryPlanner.align`` lines their sort keys up). Limits: the window is
at most the search's size limit (then sizeLimitExceeded, 4, after the entries) and at most ``MAX_WINDOW``
entries. A sort that cannot be done (an unknown attribute or ordering rule) ends the search with
virtualListViewError (76) and unwillingToPerform (53) in the VLV response, as an offset outside the list
does with offsetRangeError (61).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ldaptor.protocols.ldap import ldaperrors

from abook.directory.api import SearchDone, VlvResult
from abook.store.vlv import window, window_txn

if TYPE_CHECKING:
    from abook.directory.search import _Search, _Segment

#: the result code a search ends with when its VLV request cannot be served
VLV_ERROR = 76
UNWILLING_TO_PERFORM = 53
SIZE_LIMIT_EXCEEDED = 4
#: the most entries one window sends, whatever the request's before and after counts
MAX_WINDOW = 1000


async def browse(search: "_Search", kinds: "list[_Segment]") -> SearchDone:
    spec, req = search.spec, search.spec.vlv
    assert req is not None
    context = search._request_hash()
    if search.sort_result != 0:
        return SearchDone(result_code=VLV_ERROR, message="the sort keys cannot order this list",
                          sort_result=search.sort_result, vlv=VlvResult(0, 0, UNWILLING_TO_PERFORM, context))
    segments = [search._prepare(k, True) for k in kinds]
    cap = min(spec.size_limit, MAX_WINDOW) if spec.size_limit else MAX_WINDOW
    assertion = req.assertion.lower() if req.assertion is not None else None
    timeout_ms = int(spec.time_limit * 1000) if spec.time_limit else 0
    interrupt = search.interrupt
    try:
        entries, target, count, code = await search._db(
            window_txn, segments, req.before, req.after, req.offset, req.content_count, assertion, cap,
            interrupt, timeout_ms)
    except Exception:
        if interrupt.expired():
            raise ldaperrors.LDAPTimeLimitExceeded("time limit exceeded") from None
        if interrupt.over_budget:
            raise ldaperrors.LDAPAdminLimitExceeded("the search examined too much; narrow the filter") from None
        raise
    if interrupt.expired():
        raise ldaperrors.LDAPTimeLimitExceeded("time limit exceeded")
    if interrupt.cancelled:
        return SearchDone()
    result = VlvResult(target, count, code, context)
    if code:
        return SearchDone(result_code=VLV_ERROR, message="the offset lies outside the list", sort_result=0,
                          vlv=result)
    for entry in entries:
        search.sent += 1
        drained = search.send_entry(entry)
        if drained is not None:  # the client reads slowly: wait until its buffer drains
            await drained
            if interrupt.cancelled:
                return SearchDone()
    first, last = window(target, req.before, req.after, count, 2**62)
    if last - first + 1 > len(entries):
        return SearchDone(result_code=SIZE_LIMIT_EXCEEDED, message="size limit exceeded", sort_result=0,
                          vlv=result)
    return SearchDone(sort_result=0, vlv=result)
