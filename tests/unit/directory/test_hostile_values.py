"""Values an attacker chooses: a NUL in a filter value matches literally on both databases, and a forged
paged results cookie is refused (53) however it is forged (issue 14, items 5: review cases D6 and E7)."""

from __future__ import annotations

import json

import pytest
from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors

from abook.directory.api import SortKey
from abook.store import Store, models
from tests.unit.directory.conftest import Searcher
from tests.unit.directory.org import build
from tests.unit.directory.test_filters import contacts, substrings

CONTACTS = {"ou=Contacts,o=crm"}


def _eq(attr: str, value: str) -> pureldap.LDAPFilter_equalityMatch:
    return pureldap.LDAPFilter_equalityMatch(attributeDesc=pureldap.LDAPAttributeDescription(attr),
                                             assertionValue=pureldap.LDAPAssertionValue(value))


def _ordering(cls: type, attr: str, value: str) -> object:
    return cls(attributeDesc=pureldap.LDAPAttributeDescription(attr), assertionValue=pureldap.LDAPAssertionValue(value))


@pytest.mark.parametrize("flt", [
    substrings("cn", anys=("\x00",)),  # (cn=*\00*): matched every entry on SQLite
    substrings("cn", anys=("\x00q",)),
    substrings("cn", anys=("yz\x00",)),  # (cn=*yz\00*): an FTS5 syntax error on SQLite
    substrings("cn", anys=("\x00\x00\x00",)),
    substrings("cn", initial="ro\x00"),
    substrings("cn", final="\x00s"),
    substrings("mail", anys=("@\x00",)),
    substrings("telephoneNumber", anys=("555\x00",)),
    substrings("uid", anys=("\x00",)),
    _eq("cn", "Jane\x00Doe"),
    _eq("cn", "jane doe\x00"),
    _eq("uid", "00000004-0000-4000-8000-000000000002\x00"),
    pureldap.LDAPFilter_approxMatch(attributeDesc=pureldap.LDAPAttributeDescription("sn"),
                                    assertionValue=pureldap.LDAPAssertionValue("doe\x00")),
])
def test_a_nul_in_a_value_matches_no_value_without_one(search: Searcher, flt: object) -> None:
    assert contacts(search, flt) == set()
    assert contacts(search, pureldap.LDAPFilter_not(flt)) == contacts(search, "(objectClass=*)")


def test_a_base_dn_whose_uid_holds_a_nul_names_no_entry(search: Searcher) -> None:
    """PostgreSQL cannot bind a NUL: the record id was a DataError (internal error 80) there."""
    err = search.fails(base="uid=00000004-0000-4000-8000-000000000002\x00,ou=Contacts,o=crm")
    assert isinstance(err, ldaperrors.LDAPNoSuchObject) and err.matchedDN == "ou=Contacts,o=crm", err


def test_ordering_with_a_nul_compares_as_the_value_cut_at_it(search: Searcher) -> None:
    ge, le = pureldap.LDAPFilter_greaterOrEqual, pureldap.LDAPFilter_lessOrEqual
    # "doe" < "doe\0x" < "doe!" for values without a NUL: >= is "> doe", <= is "<= doe"
    assert contacts(search, _ordering(ge, "sn", "doe\x00x")) == contacts(search, "(&(sn>=doe)(!(sn=doe)))")
    assert contacts(search, _ordering(le, "sn", "doe\x00x")) == contacts(search, "(sn<=doe)")
    assert "jane" in contacts(search, _ordering(le, "sn", "doe\x00x"))


def test_on_sqlite_a_stored_nul_matches_literally(sqlite_store: Store) -> None:
    """SQLite text can hold a NUL (an LDIF import can store one): LIKE and FTS5 would stop at it.
    (PostgreSQL text cannot hold one.)"""
    with sqlite_store.transaction() as s:
        org = build(s)
        s.flush()
        s.get(models.Contact, org.contacts["jane"]).fullname = "Jane\x00Doe"
    fresh_search = Searcher(sqlite_store, org)
    assert contacts(fresh_search, substrings("cn", anys=("\x00",))) == {"jane"}
    assert contacts(fresh_search, substrings("cn", anys=("e\x00d",))) == {"jane"}
    assert contacts(fresh_search, substrings("cn", initial="jane\x00", final="doe")) == {"jane"}
    assert contacts(fresh_search, substrings("cn", anys=("doe", "\x00"))) == set()  # order matters
    assert contacts(fresh_search, _eq("cn", "jane\x00doe")) == {"jane"}
    assert contacts(fresh_search, _eq("cn", "jane")) == set()


# -- paged results cookies -------------------------------------------------------------------------------


def _prefix(search: Searcher, **kw: object) -> bytes:
    first = search("(mail=*)", page_size=2, **kw)
    assert first.done.cookie
    return first.done.cookie[:17]


@pytest.mark.parametrize("body", [
    b"[1e400,null]",  # OverflowError: float infinity
    b"[0," + b"[" * 100_000 + b"]" * 100_000 + b"]",  # RecursionError
    b"[2.0,null]",
    b"[true,null]",
    b'["3",null]',
    b"[4,[]]",  # segment 4: the Contacts records (0 the suffix, 1 ou=Accounts, 2 its records, 3 ou=Contacts)
    b'[4,[{"a":1}]]',
    b"[4,[1]]",
    b"[4,[null]]",
    b'[4,["00000004-0000-4000-8000-000000000002","x"]]',  # one value too many
    b'[4,["\\u0000"]]',  # PostgreSQL cannot bind a NUL
    b'[3,["00000004-0000-4000-8000-000000000002"]]',  # a cursor within a container segment
])
def test_forged_cookies_answer_unwilling_to_perform(search: Searcher, body: bytes) -> None:
    err = search.fails("(mail=*)", page_size=2, cookie=_prefix(search) + body)
    assert isinstance(err, ldaperrors.LDAPUnwillingToPerform), err
    # what the checks accept: the cookies the directory writes, with and without sort keys
    for kw in ({}, {"sort": (SortKey("cn"),), "base": "ou=Contacts,o=crm"}):
        first = search("(mail=*)", page_size=2, **kw)
        body = json.loads(first.done.cookie[17:])
        assert isinstance(body[1], list) and all(isinstance(v, str) for v in body[1])
        rest = search("(mail=*)", page_size=1000, cookie=first.done.cookie, **kw)
        assert sorted(first.dns + rest.dns) == sorted(search("(mail=*)", **kw).dns)
