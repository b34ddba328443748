"""The one in-memory filter evaluator (``directory/matching.py``), case by case where the server's former
``server/match.py`` answered otherwise for the root DSE and the subschema entry. Each answer was checked
against Debian's slapd 2.5 (the same filter on its root DSE, subschema entry and a small tree)."""

from __future__ import annotations


import pytest
from ldaptor import ldapfilter
from ldaptor.protocols import pureldap

from abook.directory import matching
from abook.server import rootdse

ROOT_DSE = rootdse.root_dse("o=crm", True, ())
SUBSCHEMA = rootdse.subschema(())


@pytest.mark.parametrize("flt, root, why", [
    # extensibleMatch: match.py never evaluated one (always Undefined)
    ("(objectClass:=extensibleObject)", True, "no rule: the attribute's own equality"),
    ("(objectClass:2.5.13.0:=top)", True, "objectIdentifierMatch is objectClass's equality"),
    ("(vendorName:caseIgnoreMatch:=ABOOK)", True, "caseIgnoreMatch on a directory string"),
    ("(objectClass:caseIgnoreMatch:=top)", None, "caseIgnoreMatch does not apply to OID syntax"),
    ("(vendorName:caseExactMatch:=abook)", None, "a rule abook does not implement"),
    ("(objectClass:dn:=top)", None, "dnAttributes: not implemented"),
    # a recognised attribute the entry lacks is FALSE, not Undefined (match.py: Undefined)
    ("(mail=x)", False, "no value of mail matches"),
    ("(!(mail=x))", True, "NOT FALSE"),
    ("(!(cn=*a*))", True, "substrings on an absent attribute"),
    ("(!(sn<=z))", True, "ordering on an absent attribute"),
    ("(!(supportedSASLMechanisms=PLAIN))", True, "a root DSE attribute this root DSE leaves out"),
    ("(!(telephoneNumber>=1))", None, "phone numbers have no ordering rule"),
    # attribute options: recognised type, no tagged values (match.py: Undefined for an assertion)
    ("(!(cn;lang-en=x))", True, "a subtype without values"),
    ("(!(objectClass;x-y=*))", True, "present on a subtype without values"),
    # an attribute the server does not recognise: Undefined, a present filter too (match.py: FALSE)
    ("(nosuchattr=*)", None, "unrecognised attribute"),
    ("(!(nosuchattr=*))", None, "NOT Undefined"),
    ("(|(nosuchattr=*)(objectClass=top))", True, "OR with a TRUE"),
    # unchanged
    ("(objectClass=*)", True, ""),
    ("(supportedLDAPVersion=3)", True, ""),
    ("(namingContexts=O=CRM)", True, "values compare case-insensitively"),
    ("(vendorName=*bo*)", True, ""),
    ("(vendorVersion=abook*1)", True, ""),
])
def test_root_dse(flt: str, root: bool | None, why: str) -> None:
    f = ldapfilter.parseFilter(flt)
    assert matching.entry_matches(f, ROOT_DSE) is (root is True), why
    assert matching.evaluate(f, matching.entry_lookup(ROOT_DSE)) is root, why


@pytest.mark.parametrize("flt, expected", [
    ("(commonName=Subschema)", True),  # an alias of cn (match.py compared names literally)
    ("(CN=subschema)", True),
    ("(objectClass=subschema)", True),
    ("(cn=*schema)", True),
    ("(cn=sub*schema*a)", False),
])
def test_subschema(flt: str, expected: bool) -> None:
    assert matching.entry_matches(ldapfilter.parseFilter(flt), SUBSCHEMA) is expected


@pytest.mark.parametrize("value, parts, expected", [
    ("abcab", ("a", ["b"], "b"), True),
    ("ab", ("ab", [], "b"), False),  # initial and final may not overlap
    ("aba", ("a", [], "a"), True),
    ("abc", (None, ["abc"], "c"), False),  # nor any and final
    ("xaxa", (None, ["xa"], "a"), True),
    ("rogers", ("ro", ["ro"], "rs"), False),
])
def test_substrings_do_not_overlap(value: str, parts: tuple, expected: bool) -> None:
    initial, anys, final = parts
    f = pureldap.LDAPFilter_substrings(type="cn", substrings=(
        ([pureldap.LDAPFilter_substrings_initial(initial)] if initial else [])
        + [pureldap.LDAPFilter_substrings_any(a) for a in anys]
        + ([pureldap.LDAPFilter_substrings_final(final)] if final else [])))
    assert matching.entry_matches(f, [("cn", [value.encode()])]) is expected


I, A, F = (pureldap.LDAPFilter_substrings_initial, pureldap.LDAPFilter_substrings_any,
           pureldap.LDAPFilter_substrings_final)
BOB = [("cn", [b"bob"]), ("sn", [b"b"])]


@pytest.mark.parametrize("parts", [
    [F("b"), A("o")],  # match.py stopped at the final (TRUE); the compiler took the last final (TRUE)
    [I("b"), I("o")],  # match.py: FALSE (pos past both); the compiler: the last initial (FALSE)
    [A("o"), I("b")],
    [F("x"), F("b")],  # match.py: FALSE (the first final); the compiler: the last final (TRUE)
])
def test_substrings_out_of_order_are_undefined(parts: list) -> None:
    """RFC 4511 4.5.1.7.2: an initial comes first, a final last, each at most once. slapd evaluates such
    a filter to Undefined (its negation selects nothing either) rather than answering protocolError."""
    f = pureldap.LDAPFilter_substrings(type="cn", substrings=parts)
    lookup = matching.entry_lookup(BOB)
    assert matching.evaluate(f, lookup) is None
    assert matching.evaluate(pureldap.LDAPFilter_not(f), lookup) is None


@pytest.mark.parametrize("flt, expected", [
    ("(cn:caseIgnoreMatch:=BOB)", True),
    ("(cn:caseIgnoreIA5Match:=bob)", None),  # cn is a Directory String: the IA5 rule does not apply
    ("(mail:caseIgnoreMatch:=x)", None),  # mail is an IA5 String: caseIgnoreMatch does not apply
    ("(mail:caseIgnoreIA5Match:=x)", False),
    ("(uid:caseIgnoreMatch:=x)", False),
    ("(:caseIgnoreMatch:=bob)", None),  # no type: not implemented
])
def test_extensible_rules_apply_by_syntax(flt: str, expected: bool | None) -> None:
    """Checked on slapd: (!(mail:caseIgnoreMatch:=x)) and (!(cn:caseIgnoreIA5Match:=x)) select nothing,
    (!(uid:caseIgnoreMatch:=x)) every entry."""
    assert matching.evaluate(ldapfilter.parseFilter(flt), matching.entry_lookup(BOB)) is expected
