"""One filter evaluator, seen from a client: where the server's former ``server/match.py`` (root DSE and
subschema entry) and the directory's evaluator and SQL compiler (containers and records) answered the
same filter differently, `abook serve` now answers as slapd 2.5 does, on SQLite and on PostgreSQL.

Each case names the old answer. Unit-level detail is in ``tests/unit/directory/test_matching.py``.
"""

from __future__ import annotations

from ldaptor.protocols import pureldap

from tests.integration.test_ldap_e2e import Daemon, Raw, _search, demo, ldapsearch  # noqa: F401

ROOT_DSE = ("-b", "", "-s", "base")
SUBSCHEMA = ("-b", "cn=Subschema", "-s", "base")


def _dns(d: Daemon, *args: str, user: str | None = None) -> list[str]:
    entries, code, err = ldapsearch(d, *args, "1.1", user=user)
    assert code == 0, (args, err)
    return [e["dn"][0] for e in entries]


def test_root_dse_and_subschema_filters(demo: Daemon) -> None:  # noqa: F811
    cases = {
        # extensibleMatch: match.py never matched one
        "(objectClass:=extensibleObject)": 1,
        "(vendorName:caseIgnoreMatch:=ABOOK)": 1,
        "(objectClass:caseIgnoreMatch:=top)": 0,  # caseIgnoreMatch does not apply to OIDs (both: 0)
        # a recognised attribute the root DSE lacks is FALSE: match.py made it Undefined
        "(!(mail=x))": 1,
        "(!(sn<=z))": 1,
        "(!(cn;lang-en=x))": 1,
        # a present filter on an attribute no one recognises is Undefined: match.py made it FALSE
        "(!(nosuchattr=*))": 0,
        # unchanged
        "(objectClass=*)": 1,
        "(supportedLDAPVersion=3)": 1,
    }
    got = {flt: len(_dns(demo, *ROOT_DSE, flt)) for flt in cases}
    assert got == cases
    # attribute aliases: match.py compared names literally
    assert _dns(demo, *SUBSCHEMA, "(commonName=Subschema)") == ["cn=Subschema"]
    assert _dns(demo, *SUBSCHEMA, "(!(surname=*))") == ["cn=Subschema"]


def test_container_and_record_filters(demo: Daemon) -> None:  # noqa: F811
    everything = _dns(demo, "-b", "o=crm", "(objectClass=*)", user="admin")
    records = [dn for dn in everything if dn.startswith("uid=")]
    assert len(records) > 30 and len(everything) == len(records) + 7
    # a subtype of a recognised attribute: no values, so FALSE (was Undefined for records and containers)
    assert sorted(_dns(demo, "-b", "o=crm", "(!(cn;lang-en=x))", user="admin")) == sorted(everything)
    # caseIgnoreMatch does not apply to objectClass (OID syntax) nor to mail (IA5 String): Undefined
    # (the records and containers matched it as equality)
    assert _dns(demo, "-b", "o=crm", "(objectClass:caseIgnoreMatch:=inetOrgPerson)", user="admin") == []
    assert _dns(demo, "-b", "o=crm", "-s", "base", "(objectClass:caseIgnoreMatch:=organization)", user="admin") == []
    assert _dns(demo, "-b", "o=crm", "(mail:caseIgnoreMatch:=NANCY.DAVOLIO@NORTHWIND.EXAMPLE)", user="admin") == []
    (nancy,) = _dns(demo, "-b", "o=crm", "(mail:caseIgnoreIA5Match:=NANCY.DAVOLIO@NORTHWIND.EXAMPLE)", user="admin")
    assert _dns(demo, "-b", "o=crm", "(objectClass:2.5.13.0:=inetOrgPerson)", user="admin") == records
    # telephone numbers have no ordering rule: Undefined on records already; the suffix entry (no phone,
    # evaluated in memory) answered FALSE, so its negation found it
    assert _dns(demo, "-b", "o=crm", "(!(telephoneNumber>=1))", user="admin") == []
    assert nancy.startswith("uid=")


def _misordered(attr: str, final: str, any_: str) -> pureldap.LDAPFilter_not:
    """NOT of a SubstringFilter with its final before an any (RFC 4511 4.5.1.7.2 forbids it)."""
    return pureldap.LDAPFilter_not(pureldap.LDAPFilter_substrings(type=attr, substrings=[
        pureldap.LDAPFilter_substrings_final(final), pureldap.LDAPFilter_substrings_any(any_)]))


def test_substrings_out_of_order_are_undefined(demo: Daemon) -> None:  # noqa: F811
    """slapd evaluates them to Undefined, so even their negation selects nothing. match.py stopped at the
    final (the root DSE's vendorName does not end in x: NOT FALSE, found); the SQL compiler checked the
    any after the final's position and the in-memory one took the last final (most records found)."""
    raw = Raw(demo)
    assert raw.bind("admin", "admin-demo") == 0
    cases = [(2, "", 0, _misordered("vendorName", "x", "b")), (3, "o=crm", 2, _misordered("cn", "x", "a")),
             (4, "o=crm", 2, _misordered("telephoneNumber", "9", "5"))]
    for msg_id, base, scope, flt in cases:
        request = _search(base, "(objectClass=*)", scope, attrs=("1.1",))
        request.filter = flt
        raw.send(request, msg_id)
        msgs = raw.until_done(msg_id)
        assert msgs[-1].value.resultCode == 0, (base, msgs[-1])
        assert [m for m in msgs if isinstance(m.value, pureldap.LDAPSearchResultEntry)] == [], base
    raw.close()
