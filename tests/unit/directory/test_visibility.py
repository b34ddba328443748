"""Per-user visibility: read depths, inactive and mail-less records, contact matching, anonymous access."""

from __future__ import annotations

from tests.unit.directory.conftest import Searcher

LISTED = {"rogers", "jane", "joe", "whitt", "percent", "umlaut", "jojo"}  # active, with a primary email


def contact_keys(search: Searcher, user: str | None, **kw: object) -> set[str]:
    by_id = {v: k for k, v in search.org.contacts.items()}
    r = search(user=user, base="ou=Contacts,o=crm", **kw)
    assert r.done.result_code == 0
    return {by_id[i] for i in r.ids}


def test_organisation_depth_sees_every_listed_record(search: Searcher) -> None:
    assert contact_keys(search, "admin") == LISTED  # never inactive, mail-less or empty-mail records


def test_user_depth_with_synchronised_matching_sees_own_active_contacts(search: Searcher) -> None:
    assert contact_keys(search, "alice") == {"rogers", "jane", "jojo"}


def test_business_unit_depth(search: Searcher) -> None:
    assert contact_keys(search, "bob") == {"joe", "whitt"}
    users = search(user="bob", base="ou=Users,o=crm")
    assert users.ids == {search.org.users["bob"]}


def test_parent_child_depth(search: Searcher) -> None:
    assert contact_keys(search, "carl") == {"percent", "umlaut"}  # support has no child units


def test_synchronised_with_scope_and_local_filter(search: Searcher) -> None:
    # sync: parent-child depth from Sales (Sales + Sales EU), local filter scope parent_child, (title=*e*)
    # joe (Sales EU) has no title, so the local filter leaves him out
    assert contact_keys(search, "sync") == {"rogers", "jane", "whitt", "jojo"}


def test_no_read_depth_shows_an_empty_book_not_an_error(search: Searcher) -> None:
    r = search(user="dora")
    assert r.done.result_code == 0
    assert r.ids == set() and r.dns[0] == "o=crm" and "ou=Contacts,o=crm" in r.dns
    assert search(user="dora", base="ou=Contacts,o=crm").dns == ["ou=Contacts,o=crm"]


def test_other_books_follow_their_own_depth(search: Searcher) -> None:
    alice = search(user="alice")
    assert alice.ids == {search.org.contacts[k] for k in ("rogers", "jane", "jojo")} | {search.org.accounts["acme"]}


def test_anonymous_sees_nothing_unless_a_book_is_open(search: Searcher) -> None:
    closed = search(user=None)
    assert closed.ids == set() and closed.dns == []
    assert search(user=None, base="ou=Contacts,o=crm").dns == []
    opened = search(user=None, anonymous_books=frozenset({"contacts"}))
    by_id = {v: k for k, v in search.org.contacts.items()}
    assert {by_id[i] for i in opened.ids} == LISTED
    assert {dn for dn in opened.dns if not dn.startswith("uid=")} == {"o=crm", "ou=Contacts,o=crm"}


def test_inactive_and_mailless_records_in_other_books(search: Searcher) -> None:
    assert search.org.accounts["nomail"] not in search().ids
    assert search.org.users["gone"] not in search().ids


def test_matching_all_versus_synchronised(fresh_search: Searcher) -> None:
    from sqlalchemy import update

    from abook.store.models import SystemUser

    s = fresh_search
    assert contact_keys(s, "alice") == {"rogers", "jane", "jojo"}
    with s.store.transaction() as session:
        session.execute(update(SystemUser).where(SystemUser.id == s.org.users["alice"])
                        .values(local_filter_ldap="(|(sn=doe)(mail=*jonas*))"))
    s._principals.clear()
    assert contact_keys(s, "alice") == {"jane", "jojo"}
    with s.store.transaction() as session:
        session.execute(update(SystemUser).where(SystemUser.id == s.org.users["alice"])
                        .values(local_filter_ldap="(noSuchAttr=x)"))
    s._principals.clear()
    assert contact_keys(s, "alice") == set()
    with s.store.transaction() as session:
        session.execute(update(SystemUser).where(SystemUser.id == s.org.users["alice"])
                        .values(address_book_matching="all"))
    s._principals.clear()
    assert contact_keys(s, "alice") == {"rogers", "jane", "jojo"}  # her depth (own records) still applies
