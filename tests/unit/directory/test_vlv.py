"""Virtual List View windows from StoreDirectory on both databases: the list is what the sorted search
returns (containers first, then records; several books merged), every window of it, by offset and by
value, in either direction, and the size limit."""

from __future__ import annotations

import pytest

from abook.directory.api import ONE_LEVEL, SortKey, VlvRequest
from tests.unit.directory.conftest import Result, Searcher


def full_list(search: Searcher, flt: str = "(objectClass=*)", **kw: object) -> list[str]:
    """The whole list, as one VLV window large enough to hold it."""
    r = search(flt, vlv=VlvRequest(0, 999, 1, 0), **kw)
    assert r.done.result_code == 0 and r.done.vlv.result == 0
    assert r.done.vlv.content_count == len(r.entries)
    return r.dns


def window(search: Searcher, vlv: VlvRequest, flt: str = "(objectClass=*)", **kw: object) -> Result:
    return search(flt, vlv=vlv, **kw)


@pytest.mark.parametrize("sort", [(SortKey("cn"),), (SortKey("sn", reverse=True), SortKey("mail"))])
def test_every_window_is_a_slice_of_the_sorted_search(search: Searcher, sort: tuple) -> None:
    kw = {"base": "ou=Contacts,o=crm", "sort": sort}
    whole = full_list(search, **kw)
    assert whole == search(**kw).dns  # subtree: the ou entry first, then the records in sort order
    n = len(whole)
    for target in range(1, n + 1):
        r = window(search, VlvRequest(1, 2, target, 0), **kw)
        assert r.dns == whole[max(0, target - 2):target + 2], target
        assert (r.done.vlv.target, r.done.vlv.content_count) == (target, n)


def test_several_books_are_merged_in_sort_order(search: Searcher) -> None:
    sort = (SortKey("displayName"),)
    whole = full_list(search, sort=sort)  # base o=crm: the suffix and the ou entries, then every record
    containers = [d for d in whole if not d.startswith("uid=")]
    assert whole[:len(containers)] == containers and len(containers) == 7
    r = search("(mail=*)", vlv=VlvRequest(0, 999, 1, 0), sort=sort)
    names = [dict(e.attributes)["cn"][0].decode().lower() for e in r.entries]
    assert names == sorted(names) and len({e.dn.split(",")[1] for e in r.entries}) > 2
    assert r.done.vlv.content_count == len(r.entries) == len(search("(mail=*)").entries)
    # a window near the end, read from the end of the list, with the client's count
    n = len(r.entries)
    mid = window(search, VlvRequest(2, 2, n - 3, n), "(mail=*)", sort=sort)
    assert mid.dns == r.dns[n - 6:n - 1]


def test_by_value_in_either_direction(search: Searcher) -> None:
    kw = {"base": "ou=Contacts,o=crm", "scope": ONE_LEVEL}
    up = search(sort=(SortKey("cn"),), **kw)
    names = [dict(e.attributes)["cn"][0].decode().lower() for e in up.entries]
    value = names[len(names) // 2][:3]
    first = next(i for i, v in enumerate(names) if v >= value)
    r = window(search, VlvRequest(1, 1, assertion=value.upper()), sort=(SortKey("cn"),), **kw)
    assert r.dns == up.dns[first - 1:first + 2] and r.done.vlv.target == first + 1
    down = search(sort=(SortKey("cn", reverse=True),), **kw)
    rnames = [dict(e.attributes)["cn"][0].decode().lower() for e in down.entries]
    rfirst = next(i for i, v in enumerate(rnames) if v <= value)
    r = window(search, VlvRequest(0, 1, assertion=value), sort=(SortKey("cn", reverse=True),), **kw)
    assert r.dns == down.dns[rfirst:rfirst + 2] and r.done.vlv.target == rfirst + 1


def test_a_window_larger_than_the_size_limit_ends_with_code_4(search: Searcher) -> None:
    kw = {"base": "ou=Contacts,o=crm", "scope": ONE_LEVEL, "sort": (SortKey("cn"),)}
    r = window(search, VlvRequest(0, 9, 1, 0), size_limit=3, **kw)
    assert len(r.entries) == 3 and r.done.result_code == 4 and r.done.vlv.result == 0
