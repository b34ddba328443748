"""Size limits (code 4 after the entries), simple paged results, server-side sort, batched streaming."""

from __future__ import annotations

import pytest
from ldaptor.protocols.ldap import ldaperrors

from abook.directory.api import ONE_LEVEL, SortKey
from abook.directory.search import StoreDirectory
from tests.unit.directory.conftest import Result, Searcher

ALL = 1 + 6 + 2 + 7 + 2 + 1 + 6 + 1  # containers and every record the admin sees


def test_size_limit_stops_with_code_4_after_the_entries(search: Searcher) -> None:
    r = search(size_limit=5)
    assert len(r.entries) == 5 and r.done.result_code == 4
    r = search("(|(cn=*rog*)(mail=*rog*))", size_limit=2)
    assert len(r.entries) == 2 and r.done.result_code == 4
    exact = search("(|(cn=*rog*)(mail=*rog*))", size_limit=3)
    assert len(exact.entries) == 3 and exact.done.result_code == 0
    one = search("(mail=jane.doe@example.com)", size_limit=1)
    assert len(one.entries) == 1 and one.done.result_code == 0
    assert search(size_limit=ALL).done.result_code == 0
    over = search(size_limit=ALL - 1)
    assert len(over.entries) == ALL - 1 and over.done.result_code == 4


def pages(search: Searcher, page_size: int, **kw: object) -> list[Result]:
    out, cookie = [], b""
    while True:
        r = search(page_size=page_size, cookie=cookie, **kw)
        out.append(r)
        assert r.done.result_code == 0
        cookie = r.done.cookie
        if not cookie:
            return out
        assert len(out) < 100


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, ALL, 500])
def test_paging_returns_every_entry_exactly_once(search: Searcher, page_size: int) -> None:
    everything = search().dns
    got = pages(search, page_size)
    dns = [dn for p in got for dn in p.dns]
    assert sorted(dns) == sorted(everything) and len(dns) == len(set(dns))
    assert all(len(p.entries) == page_size for p in got[:-1])
    assert got[-1].done.cookie == b""


def test_paging_with_a_small_batch_size_and_a_filter(search: Searcher) -> None:
    small = Searcher(search.store, search.org, batch_size=2)
    got = pages(small, 3, flt="(|(cn=*o*)(mail=*o*))")
    dns = [dn for p in got for dn in p.dns]
    assert sorted(dns) == sorted(search("(|(cn=*o*)(mail=*o*))").dns) and len(dns) == len(set(dns))


def test_unpaged_searches_stream_in_batches(search: Searcher) -> None:
    small = Searcher(search.store, search.org, batch_size=2)
    assert small().dns == search(size_limit=0).dns
    r = small(size_limit=5)
    assert len(r.entries) == 5 and r.done.result_code == 4
    assert small(size_limit=ALL).done.result_code == 0


def test_a_cookie_from_another_search_is_refused(search: Searcher) -> None:
    first = search(page_size=2)
    assert first.done.cookie
    err = search.fails("(cn=*)", page_size=2, cookie=first.done.cookie)
    assert isinstance(err, ldaperrors.LDAPUnwillingToPerform)
    err = search.fails(page_size=2, cookie=first.done.cookie, user="alice")
    assert isinstance(err, ldaperrors.LDAPUnwillingToPerform)
    garbage = first.done.cookie[:17] + b"[{]"
    assert isinstance(search.fails(page_size=2, cookie=garbage), ldaperrors.LDAPUnwillingToPerform)
    assert isinstance(search.fails(page_size=2, cookie=b"junk"), ldaperrors.LDAPUnwillingToPerform)


def test_page_size_may_change_between_pages(search: Searcher) -> None:
    first = search(page_size=2)
    rest = search(page_size=500, cookie=first.done.cookie)
    assert sorted(first.dns + rest.dns) == sorted(search().dns) and rest.done.cookie == b""


def test_size_limit_smaller_than_the_page_wins(search: Searcher) -> None:
    r = search(page_size=10, size_limit=3)
    assert len(r.entries) == 3 and r.done.result_code == 4 and r.done.cookie == b""


def cns(r: Result) -> list[str]:
    return [dict(e.attributes)["cn"][0].decode() for e in r.entries]


def test_sort_on_cn_sn_and_mail(search: Searcher) -> None:
    book = dict(base="ou=Contacts,o=crm", scope=ONE_LEVEL)
    r = search(sort=(SortKey("cn"),), **book)
    assert r.done.sort_result == 0
    assert cns(r) == sorted(cns(r), key=str.lower) and len(r.entries) == 7
    rev = search(sort=(SortKey("CN", reverse=True),), **book)
    assert cns(rev) == cns(r)[::-1]
    by_sn = search(sort=(SortKey("sn"),), **book)
    sns = [dict(e.attributes)["sn"][0].decode().lower() for e in by_sn.entries]
    assert sns == sorted(sns)
    by_mail = search(sort=(SortKey("mail"),), **book)
    mails = [dict(e.attributes)["mail"][0].decode().lower() for e in by_mail.entries]
    assert mails == sorted(mails)


def test_sort_puts_entries_without_the_attribute_last(search: Searcher) -> None:
    r = search(sort=(SortKey("title"),), base="ou=Contacts,o=crm", scope=ONE_LEVEL)
    titles = [dict(e.attributes).get("title", (None,))[0] for e in r.entries]
    present = [t.decode().lower() for t in titles if t is not None]
    assert present == sorted(present) and titles[len(present):] == [None] * (len(titles) - len(present))


def test_sorted_paging_returns_every_entry_once_in_order(search: Searcher) -> None:
    book = dict(base="ou=Contacts,o=crm", scope=ONE_LEVEL, sort=(SortKey("givenName", reverse=True), SortKey("sn")))
    whole = search(**book)
    got = pages(search, 2, **book)
    assert [dn for p in got for dn in p.dns] == whole.dns


def test_unsupported_sorts(search: Searcher) -> None:
    r = search(sort=(SortKey("cn"),))
    assert r.done.sort_result == 53 and len(r.entries) == ALL  # several books: unsorted, not an error
    r = search(sort=(SortKey("noSuchThing"),), base="ou=Contacts,o=crm")
    assert r.done.sort_result == 16
    r = search(sort=(SortKey("cn", ordering_rule="2.5.13.99"),), base="ou=Contacts,o=crm")
    assert r.done.sort_result == 53
    assert search(base="ou=Contacts,o=crm").done.sort_result is None


def test_a_change_in_the_store_shows_in_the_next_search(fresh_search: Searcher) -> None:
    from sqlalchemy import update

    from abook.store.models import Contact

    jane = fresh_search.org.contacts["jane"]
    assert fresh_search("(cn=jane doe)").ids == {jane}
    with fresh_search.store.transaction() as s:
        s.execute(update(Contact).where(Contact.id == jane).values(fullname="Janet Smith-Doe", jobtitle="Boss"))
    assert fresh_search("(cn=jane doe)").ids == set()
    assert fresh_search("(|(cn=*smith-d*)(title=boss))").ids == {jane}
    with fresh_search.store.transaction() as s:
        s.execute(update(Contact).where(Contact.id == jane).values(statecode=1))
    assert fresh_search("(cn=*smith-d*)").ids == set()


def test_directory_is_an_idirectory(search: Searcher) -> None:
    from abook.directory.api import IDirectory

    assert IDirectory.providedBy(StoreDirectory(search.store))
