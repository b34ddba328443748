"""A Virtual List View window is counted, targeted and cut in the sort key index (store/vlv_index.py),
never by reading the book's rows: the plans of the three statements store/vlv.py runs, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from ldaptor import ldapfilter

from abook.directory.api import ONE_LEVEL, SearchSpec, SortKey, VlvRequest
from abook.directory.search import _Search, _Segment
from abook.store import vlv
from tests.unit.directory.conftest import Searcher
from tests.unit.directory.test_index_plans import big  # noqa: F401 - the fixture: 3000 more contacts


def _query(search: Searcher, user: str, attr: str, flt: str = "(objectClass=*)") -> Any:
    spec = SearchSpec(base="ou=Contacts,o=crm", scope=ONE_LEVEL, filter=ldapfilter.parseFilter(flt),
                      principal=search.principal(user), attributes=("cn", "mail"), sort=(SortKey(attr),),
                      vlv=VlvRequest(0, 49, 1000, 0))
    s = _Search(search.directory, spec, lambda _e: None)
    s._check_sort(s._segments())
    return s._query(_Segment("records", "Contacts"), True)


def _plan(search: Searcher, sql: tuple[str, tuple]) -> str:
    text, params = sql
    with search.store.transaction() as session:
        raw = session.connection().connection.driver_connection
        if search.store.dialect == "sqlite":
            return " | ".join(r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + text, params).fetchall())
        cur = raw.cursor()
        cur.execute("SET LOCAL enable_seqscan = off")  # a few thousand rows are cheaper to scan
        cur.execute("EXPLAIN " + text, params)
        return " | ".join(r[0] for r in cur.fetchall())


@pytest.mark.parametrize("attr, index", [("cn", "ix_dir_vlv_contact_cn"), ("displayName", "ix_dir_vlv_contact_cn"),
                                         ("sn", "ix_dir_vlv_contact_lastname")])
def test_window_statements_read_the_sort_key_index(big: Searcher, attr: str, index: str) -> None:  # noqa: F811
    """An organisation-wide reader: the whole book is the list."""
    q = _query(big, "admin", attr)
    before = _plan(big, vlv.before_value_sql(q, "last1"))
    window = _plan(big, vlv.union_sql([q], 1000, 50))
    backwards = _plan(big, vlv.union_sql([q], 1000, 50, backwards=True))
    count = _plan(big, vlv.count_sql(q))
    if big.store.dialect == "sqlite":
        assert f"USING COVERING INDEX {index} (<expr><?)" in before, before
        for p in (window, backwards):
            assert f"SCAN contact USING COVERING INDEX {index}" in p and "TEMP B-TREE" not in p, p
        assert "USING COVERING INDEX ix_dir_vlv_contact_" in count and "account" not in count, count
    else:
        assert index in before, before
        for p in (window, backwards):
            assert index in p and "Sort" not in p, p
        assert "Seq Scan" not in count and "account" not in count, count


def test_a_narrow_reader_never_scans_the_book(big: Searcher) -> None:  # noqa: F811
    """bob reads one business unit's few contacts: the database may start from the owner index instead."""
    q = _query(big, "bob", "cn")
    for sql in (vlv.count_sql(q), vlv.before_value_sql(q, "last1"), vlv.union_sql([q], 0, 50)):
        p = _plan(big, sql)
        if big.store.dialect == "sqlite":
            assert "USING" in p and "account" not in p, p  # every step is an index search
        else:
            assert "Seq Scan" not in p, p


def test_a_filter_on_a_joined_attribute_keeps_its_join(big: Searcher) -> None:  # noqa: F811
    q = _query(big, "admin", "cn", "(o=*)")  # o is the parent account's name
    text, _ = vlv.count_sql(q)
    assert "parentcustomer" in text
    text, _ = vlv.count_sql(_query(big, "admin", "cn"))
    assert "parentcustomer" not in text
