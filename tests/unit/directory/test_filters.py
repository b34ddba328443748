"""Every RFC 4515 filter type, matched as the attribute's syntax says, with RFC 4511 three-valued logic."""

from __future__ import annotations

import pytest
from ldaptor.protocols import pureldap

from tests.unit.directory.conftest import Searcher


def contacts(search: Searcher, flt: object, **kw: object) -> set[str]:
    """Keys of the contacts a filter selects (admin sees every listed record)."""
    found = search(flt, base="ou=Contacts,o=crm", **kw).ids
    by_id = {v: k for k, v in search.org.contacts.items()}
    return {by_id[i] for i in found}


def substrings(attr: str, initial: str | None = None, anys: tuple[str, ...] = (), final: str | None = None):
    parts: list = []
    if initial is not None:
        parts.append(pureldap.LDAPFilter_substrings_initial(initial))
    parts += [pureldap.LDAPFilter_substrings_any(a) for a in anys]
    if final is not None:
        parts.append(pureldap.LDAPFilter_substrings_final(final))
    return pureldap.LDAPFilter_substrings(type=attr, substrings=parts)


@pytest.mark.parametrize(
    "flt, expected",
    [
        ("(cn=jane doe)", {"jane"}),
        ("(CN=JANE DOE)", {"jane"}),
        ("(commonName=Jane Doe)", {"jane"}),
        ("(mail=JANE.DOE@EXAMPLE.COM)", {"jane"}),
        ("(sn=doe)", {"jane"}),
        ("(surname=Doe)", {"jane"}),
        ("(cn=jürgen müller)", {"umlaut"}),
        ("(cn=jo*)", {"joe", "jojo"}),
        ("(cn=*ittak*)", {"whitt"}),
        ("(cn=*aker)", {"whitt"}),
        ("(cn=w*t*r)", {"whitt"}),
        ("(cn=ro*ro*rs)", {"rogers"}),
        ("(cn=ro*rs*ro)", set()),
        ("(cn=*ü*)", {"umlaut"}),
        ("(mail=*@example.com)", {"jane"}),
        ("(givenName=*)", {"rogers", "jane", "joe", "whitt", "percent", "umlaut", "jojo"}),
        ("(title=*)", {"rogers", "jane", "whitt", "percent", "jojo"}),
        ("(mozillaSecondEmail=*)", {"jane"}),
        ("(sn>=w)", {"whitt"}),
        ("(sn<=b)", set()),
        ("(sn<=bloggs)", {"joe"}),
        ("(&(sn>=c)(sn<=e))", {"percent", "jane"}),
        ("(cn~=JANE doe)", {"jane"}),
        ("(cn:caseIgnoreMatch:=jane doe)", {"jane"}),
        ("(cn:=jane doe)", {"jane"}),
        ("(cn:1.2.3.4:=jane doe)", set()),
        ("(!(cn:1.2.3.4:=jane doe))", set()),
        ("(&(cn=j*)(!(cn=jo*)))", {"jane", "umlaut"}),
        ("(|(sn=doe)(sn=bloggs))", {"jane", "joe"}),
        ("(o=acme corp)", {"rogers", "jane"}),
        ("(o=*glob*)", {"whitt", "umlaut"}),
        ("(!(o=*))", {"joe", "percent", "jojo"}),
        ("(telephoneNumber=+15550100)", {"rogers"}),
        ("(telephoneNumber=+1 555 0100)", {"rogers"}),
        ("(telephoneNumber=*5550101)", {"whitt"}),
        ("(telephoneNumber=*20 79*)", {"jane"}),
        ("(telephoneNumber>=1)", set()),
        ("(uid=00000004-0000-4000-8000-000000000002)", {"jane"}),
        ("(crmEntity=contact)", {"rogers", "jane", "joe", "whitt", "percent", "umlaut", "jojo"}),
        ("(crmEntity=account)", set()),
    ],
)
def test_filter_types_and_syntaxes(search: Searcher, flt: str, expected: set[str]) -> None:
    assert contacts(search, flt) == expected


def test_undefined_attributes_in_or_and_not(search: Searcher) -> None:
    # icsCalendar and roomNumber are not in the schema: Undefined, never an error
    assert contacts(search, "(|(icsCalendar=*rog*)(cn=*rog*)(roomNumber=*rog*))") == {"rogers"}
    assert contacts(search, "(&(icsCalendar=x)(cn=*))") == set()
    assert contacts(search, "(!(icsCalendar=x))") == set()
    assert contacts(search, "(!(&(icsCalendar=x)(cn=*rog*)))") == {"jane", "joe", "whitt", "percent", "umlaut", "jojo"}
    assert contacts(search, "(!(|(icsCalendar=x)(cn=*rog*)))") == set()
    r = search("(icsCalendar=x)")
    assert r.entries == [] and r.done.result_code == 0


def test_known_attribute_absent_from_an_entity_is_false(search: Searcher) -> None:
    """givenName exists in the schema; accounts have none: FALSE, so its negation is TRUE."""
    r = search("(!(givenName=*))", base="ou=Accounts,o=crm")
    assert r.ids == {search.org.accounts["acme"], search.org.accounts["globex"]}


def test_substrings_with_empty_any_parts_match_like_contains(search: Searcher) -> None:
    """Thunderbird's cn=*%v1*%v2-* template sends *rog** as any-only substrings with empty parts."""
    assert contacts(search, substrings("cn", anys=("rog", ""))) == {"rogers"}
    assert contacts(search, substrings("cn", anys=("", "rog", ""))) == {"rogers"}
    assert contacts(search, substrings("sn", initial="", anys=("", ""), final="")) == contacts(search, "(sn=*)")


@pytest.mark.parametrize(
    "flt, expected",
    [
        (r"(cn=100%*)", {"percent"}),
        (r"(cn=*%*)", {"percent"}),
        (r"(cn=*_*)", {"percent"}),
        (r"(cn=*e_j*)", {"percent"}),
        (r"(cn=*\5c*)", {"percent"}),
        (r"(cn=*\5cx)", {"percent"}),
        (r"(title=*\2a*)", {"percent"}),
        (r"(title=star\2agazer)", {"percent"}),
        (r"(cn=*%%*)", set()),
        (r"(cn=*\22*)", set()),
    ],
)
def test_wildcards_in_values_are_literal(search: Searcher, flt: str, expected: set[str]) -> None:
    assert contacts(search, flt) == expected


def test_fts_quotes_and_operators_in_values_are_literal(search: Searcher) -> None:
    assert contacts(search, '(cn=*" OR "*)') == set()
    assert contacts(search, r"(cn=*NEAR\28*)") == set()
    assert contacts(search, substrings("cn", anys=('oe"',))) == set()


def test_object_class_matches_the_entry_classes(search: Searcher) -> None:
    r = search("(objectClass=organizationalUnit)")
    assert r.dns == [f"ou={b},o=crm" for b in ("Accounts", "Contacts", "Leads", "Queues", "Users", "Facilities")]
    people = search("(objectclass=inetOrgPerson)")
    assert all(dn.startswith("uid=") for dn in people.dns) and len(people.dns) == 2 + 7 + 2 + 1 + 6 + 1
    assert search("(objectClass=crmRecord)").dns == people.dns
    assert [e.dn for e in search("(objectClass=organization)").entries] == ["o=crm"]
    assert search("(objectClass=*)").dns[0] == "o=crm"
