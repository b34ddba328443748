"""Contains, prefix and mail lookups use indexes (no scan of the book), on both databases."""

from __future__ import annotations

import pytest
from ldaptor import ldapfilter
from sqlalchemy import insert

from abook.directory.api import SUBTREE, SearchSpec
from abook.store import Store
from abook.store.models import Contact, new_id
from tests.unit.directory.conftest import Searcher

CONTAINS = "(|(cn=*rog*)(mail=*rog*)(givenName=*rog*)(sn=*rog*))"
PREFIX = "(|(cn=jo*)(mail=jo*)(sn=jo*)(givenName=jo*))"
MAIL = "(mail=jane.doe@example.com)"
EVOLUTION = "(|(displayName=rog*)(mail=rog*)(displayName=*rog*)(mail=*rog*)(|(cn=rog*)(sn=rog*)))"


@pytest.fixture
def big(fresh_search: Searcher) -> Searcher:
    """A few thousand extra contacts, so the plans are about a table worth indexing."""
    s = fresh_search
    owner = s.org.users["admin"]
    rows = [{"id": new_id(), "firstname": f"First{i}", "lastname": f"Last{i}", "fullname": f"First{i} Last{i}",
             "emailaddress1": f"person{i}@example.org", "owner_id": owner,
             "owningbusinessunit_id": s.org.bu["root"]} for i in range(3000)]
    with s.store.transaction() as session:
        session.execute(insert(Contact), rows)
        if s.store.dialect == "postgresql":
            session.connection().exec_driver_sql("ANALYZE contact")
    return s


def plan(search: Searcher, flt: str) -> str:
    spec = SearchSpec(base="o=crm", scope=SUBTREE, filter=ldapfilter.parseFilter(flt),
                      principal=search.principal("admin"), size_limit=100)
    sql, params = search.directory.statement(spec, "Contacts", 101)
    store: Store = search.store
    with store.transaction() as session:
        raw = session.connection().connection.driver_connection
        if store.dialect == "sqlite":
            return " | ".join(r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        cur = raw.cursor()
        # a few thousand rows are cheaper to scan: prove the indexes are usable (bitmap scans only)
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        cur.execute("EXPLAIN " + sql, params)
        return " | ".join(r[0] for r in cur.fetchall())


def test_contains_uses_the_trigram_index(big: Searcher) -> None:
    p = plan(big, CONTAINS)
    if big.store.dialect == "sqlite":
        assert "VIRTUAL TABLE INDEX" in p and "SCAN contact" not in p
    else:
        assert "ix_dirtrgm_contact_cn" in p and "Seq Scan on contact" not in p


def test_prefix_uses_the_folded_indexes(big: Searcher) -> None:
    p = plan(big, PREFIX)
    if big.store.dialect == "sqlite":
        assert "USING INDEX ix_dir_contact_cn (<expr>>? AND <expr><?)" in p and "SCAN contact" not in p
        assert "ix_dir_contact_emailaddress1" in p and "ix_dir_contact_lastname" in p
    else:
        # the cn prefix is a range on the C-collated sort key index (store/vlv_index.py) or a trigram scan
        assert ("ix_dirtrgm_contact_cn" in p or "ix_dir_vlv_contact_cn" in p) and "Seq Scan on contact" not in p


def test_mail_lookup_is_an_index_probe(big: Searcher) -> None:
    p = plan(big, MAIL)
    if big.store.dialect == "sqlite":
        assert "USING INDEX ix_dir_contact_emailaddress1 (<expr>=?)" in p
    else:
        assert "ix_contact_emailaddress1_lower" in p and "Seq Scan" not in p


def test_evolution_autocomplete_is_indexed(big: Searcher) -> None:
    p = plan(big, EVOLUTION)
    assert ("SCAN contact" not in p) if big.store.dialect == "sqlite" else ("Seq Scan on contact" not in p)


def test_indexed_searches_find_the_new_rows(big: Searcher) -> None:
    """The triggers kept the trigram index in step with a bulk insert."""
    r = big("(|(cn=*st2999*)(mail=*n2999@*))", base="ou=Contacts,o=crm")
    assert len(r.entries) == 1
    assert len(big("(mail=person17@example.org)").entries) == 1


def test_rebuild_after_vacuum_keeps_contains_searches_right(sqlite_store: Store) -> None:
    from abook.store import search_index
    from tests.unit.directory.org import build

    with sqlite_store.transaction() as session:
        org = build(session)
    s = Searcher(sqlite_store, org)
    before = s("(|(cn=*rog*)(mail=*rog*))").dns
    with sqlite_store.engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
    with sqlite_store.engine.begin() as conn:
        search_index.rebuild(conn)
    assert s("(|(cn=*rog*)(mail=*rog*))").dns == before


def test_ored_contains_of_one_fragment_is_one_fts_column_filter(search: Searcher) -> None:
    """Thunderbird's four ORed contains-searches read the trigram index once, over four columns."""
    spec = SearchSpec(base="o=crm", scope=SUBTREE, filter=ldapfilter.parseFilter(CONTAINS),
                      principal=search.principal("admin"), size_limit=100)
    _sql, params = search.directory.statement(spec, "Contacts", 101)
    if search.store.dialect != "sqlite":
        return  # PostgreSQL: LIKEs on pg_trgm indexes, no MATCH
    match = [p for p in params if isinstance(p, str) and " : " in p]
    assert match == ['{cn emailaddress1 firstname lastname} : "rog"']


def test_repeated_request_reuses_its_prepared_query_and_gives_the_same_entries(search: Searcher) -> None:
    first = search(CONTAINS)
    prepared = len(search.directory._prepared)
    again = search(CONTAINS)
    assert again.dns == first.dns and len(search.directory._prepared) == prepared
    alice = search(CONTAINS, user="alice")  # another principal: its own visibility, its own entry
    assert len(search.directory._prepared) == prepared + 1
    assert set(alice.dns) <= set(first.dns)
