"""Scopes from any DN in the tree, container entries, attribute selection and the shape of entries."""

from __future__ import annotations

import pytest
from ldaptor.protocols.ldap import ldaperrors

from abook.directory.api import BASE, ONE_LEVEL, SUBTREE
from tests.unit.directory.conftest import Searcher

BOOK_DNS = [f"ou={b},o=crm" for b in ("Accounts", "Contacts", "Leads", "Queues", "Users", "Facilities")]


def test_scopes_from_the_suffix(search: Searcher) -> None:
    assert search(base="o=crm", scope=BASE).dns == ["o=crm"]
    assert search(base="o=crm", scope=ONE_LEVEL).dns == BOOK_DNS
    everything = search(base="o=crm", scope=SUBTREE).dns
    assert everything[:3] == ["o=crm", "ou=Accounts,o=crm", "uid=" + search.org.accounts["acme"] + ",ou=Accounts,o=crm"]
    assert len(everything) == 1 + 6 + 2 + 7 + 2 + 1 + 6 + 1


def test_scopes_from_a_book(search: Searcher) -> None:
    o = search.org
    assert search(base="ou=Leads,o=crm", scope=BASE).dns == ["ou=Leads,o=crm"]
    assert search(base="OU=leads,O=CRM", scope=ONE_LEVEL).ids == set(o.leads.values())
    sub = search(base="ou=Leads,o=crm", scope=SUBTREE)
    assert sub.dns[0] == "ou=Leads,o=crm" and sub.ids == set(o.leads.values())


def test_scopes_from_an_entry(search: Searcher) -> None:
    jane = search.org.contacts["jane"]
    dn = f"uid={jane},ou=Contacts,o=crm"
    assert search(base=dn, scope=BASE).dns == [dn]
    assert search(base=dn.upper().replace("UID=", "uid="), scope=SUBTREE).ids == {jane}
    assert search(base=dn, scope=ONE_LEVEL).dns == []
    assert search("(cn=nobody)", base=dn, scope=BASE).dns == []


def test_evolution_one_level_under_a_book(search: Searcher) -> None:
    r = search("(|(displayName=rog*)(mail=rog*)(displayName=*rog*)(mail=*rog*)(|(cn=rog*)(sn=rog*)))",
               base="ou=Contacts,o=crm", scope=ONE_LEVEL, size_limit=100)
    assert r.ids == {search.org.contacts["rogers"]}


@pytest.mark.parametrize(
    "base, matched",
    [
        ("ou=Nowhere,o=crm", "o=crm"),
        ("uid=00000000-0000-4000-8000-000000000000,ou=Contacts,o=crm", "ou=Contacts,o=crm"),
        ("cn=x,uid=y,ou=Contacts,o=crm", "ou=Contacts,o=crm"),
        ("o=elsewhere", ""),
    ],
)
def test_a_base_naming_nothing_is_no_such_object_with_matched_dn(search: Searcher, base: str, matched: str) -> None:
    err = search.fails(base=base)
    assert isinstance(err, ldaperrors.LDAPNoSuchObject)
    assert err.matchedDN == matched


def test_an_entry_the_user_may_not_see_does_not_exist_for_them(search: Searcher) -> None:
    inactive = f"uid={search.org.contacts['inactive']},ou=Contacts,o=crm"
    assert isinstance(search.fails(base=inactive, scope=BASE), ldaperrors.LDAPNoSuchObject)
    whitt = f"uid={search.org.contacts['whitt']},ou=Contacts,o=crm"
    assert search(base=whitt, scope=BASE).dns == [whitt]
    err = search.fails(base=whitt, scope=BASE, user="alice")  # bob's contact: alice reads only her own
    assert isinstance(err, ldaperrors.LDAPNoSuchObject) and err.matchedDN == "ou=Contacts,o=crm"


def test_base_scope_on_the_root_dse_is_not_the_directorys(search: Searcher) -> None:
    assert isinstance(search.fails(base="", scope=BASE), ldaperrors.LDAPNoSuchObject)


def test_a_malformed_base_is_invalid_dn_syntax(search: Searcher) -> None:
    assert isinstance(search.fails(base="not a dn"), ldaperrors.LDAPInvalidDNSyntax)


def test_container_entries(search: Searcher) -> None:
    r = search(base="o=crm", scope=ONE_LEVEL, attributes=("*", "+"))
    assert dict(r.entries[1].attributes) == {
        "objectClass": (b"top", b"organizationalUnit"), "ou": (b"Contacts",), "entryDN": (b"ou=Contacts,o=crm",),
        "structuralObjectClass": (b"organizationalUnit",), "subschemaSubentry": (b"cn=Subschema",),
    }
    root = search(base="o=crm", scope=BASE)
    assert dict(root.entries[0].attributes) == {"objectClass": (b"top", b"organization"), "o": (b"crm",)}


def test_a_contact_entry(search: Searcher) -> None:
    o = search.org
    jane = search(f"(uid={o.contacts['jane']})").attrs("uid=")
    assert jane["objectClass"] == (b"top", b"person", b"organizationalPerson", b"inetOrgPerson", b"crmRecord")
    assert jane["cn"] == (b"Jane Doe",) and jane["displayName"] == (b"Jane Doe",)
    assert jane["givenName"] == (b"Jane",) and jane["sn"] == (b"Doe",)
    assert jane["mail"] == (b"Jane.Doe@Example.com",) and jane["mozillaSecondEmail"] == (b"jd@home.example",)
    assert jane["telephoneNumber"] == (b"+44 20 7946 0000",)
    assert jane["o"] == (b"Acme Corp",) and jane["title"] == (b"Buyer",)
    assert jane["crmEntity"] == (b"contact",) and jane["crmId"] == jane["uid"] == (o.contacts["jane"].encode(),)
    assert "entryUUID" not in jane and "pager" not in jane  # operational only on request; no empty values


def test_cn_falls_back_to_first_and_last_name(search: Searcher) -> None:
    joe = search("(mail=joe@bloggs.example)").attrs("uid=")
    assert joe["cn"] == (b"Joe Bloggs",)
    assert search("(cn=joe bloggs)").ids == {search.org.contacts["joe"]}


def test_accounts_queues_facilities_and_users(search: Searcher) -> None:
    o = search.org
    acme = search(base="ou=Accounts,o=crm", scope=ONE_LEVEL).attrs(f"uid={o.accounts['acme']}")
    assert acme["cn"] == (b"Acme Corp",) and acme["o"] == (b"Acme Corp",) and acme["crmEntity"] == (b"account",)
    queue = search(base="ou=Queues,o=crm", scope=ONE_LEVEL).attrs("uid=")
    assert queue["cn"] == (b"Support Queue",) and queue["mail"] == (b"support@corp.example",)
    room = search(base="ou=Facilities,o=crm", scope=ONE_LEVEL).attrs("uid=")
    assert room["cn"] == (b"Room Rogers",) and room["l"] == (b"HQ",)
    bob = search("(mail=bob@corp.example)").attrs("uid=")
    assert bob["ou"] == (b"Sales EU",) and bob["crmEntity"] == (b"systemuser",)
    assert search("(ou=sales eu)", base="ou=Users,o=crm").ids == {o.users["bob"]}


def test_attribute_selection(search: Searcher) -> None:
    flt = "(mail=jane.doe@example.com)"
    names = lambda **kw: [a for a, _ in search(flt, **kw).entries[0].attributes]  # noqa: E731
    assert names(attributes=("CN", "Mail", "surname", "unknownAttr")) == ["cn", "sn", "mail"]
    assert names(attributes=("1.1",)) == []
    assert names(attributes=("+",)) == ["entryUUID", "createTimestamp", "modifyTimestamp", "entryDN",
                                        "structuralObjectClass", "subschemaSubentry"]
    everything = names(attributes=("*", "+"))
    assert everything[0] == "objectClass" and "entryUUID" in everything and "givenName" in everything
    assert names() == names(attributes=("*",)) and "entryUUID" not in names()
    assert names(attributes=("1.1", "cn")) == ["cn"]
    assert names(attributes=("objectClass", "modifyTimestamp")) == ["objectClass", "modifyTimestamp"]
    ts = dict(search(flt, attributes=("createTimestamp",)).entries[0].attributes)
    assert ts == {"createTimestamp": (b"20260102030405Z",)}


def test_types_only(search: Searcher) -> None:
    r = search("(mail=jane.doe@example.com)", attributes=("cn", "mail", "pager", "entryDN"), types_only=True)
    assert r.entries[0].attributes == (("cn", ()), ("mail", ()), ("entryDN", ()))
    ou = search(base="ou=Contacts,o=crm", scope=BASE, types_only=True)
    assert ou.entries[0].attributes == (("objectClass", ()), ("ou", ()))


def test_values_are_utf8_bytes(search: Searcher) -> None:
    r = search("(sn=müller)")
    assert r.attrs("uid=")["cn"] == ("Jürgen MÜLLER".encode("utf-8"),)
