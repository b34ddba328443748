"""Hypothesis: random filters over a random small book give what a plain in-memory evaluator gives.

The reference evaluator below works on the entries as served (what a client sees) with RFC 4511's
three-valued logic, written independently of the SQL compiler: values compared lowercased, phone
numbers without spaces and dashes, objectClass against the entry's classes, an attribute outside the
schema Undefined, one the schema knows but the entry lacks FALSE, a subtype (``cn;lang-en``) without
values, extensibleMatch as equality under the rule of the attribute's syntax, substrings out of order
Undefined. The in-memory evaluator (``directory/matching.py``) must give the same answer per entry.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureldap
from sqlalchemy import delete, insert

from abook.directory import matching
from abook.directory.api import ONE_LEVEL
from abook.directory.entries import KNOWN
from abook.store.models import Contact
from tests.unit.directory.conftest import Searcher
from tests.unit.directory.org import ids

ALPHABET = "aAbü Ü%_\\*-1"
PHONES = {"telephonenumber", "homephone", "mobile", "pager", "facsimiletelephonenumber"}
ATTRS = ["cn", "sn", "givenName", "mail", "title", "telephoneNumber", "objectClass", "o", "icsCalendar",
         "displayName", "mozillaSecondEmail"]

values = st.text(ALPHABET, max_size=4)
maybe = st.one_of(st.none(), values)
contact_rows = st.lists(
    st.fixed_dictionaries({
        "firstname": maybe, "lastname": maybe, "fullname": maybe, "jobtitle": maybe, "telephone1": maybe,
        "emailaddress1": st.one_of(st.none(), values.map(lambda v: v + "@x")), "emailaddress2": maybe,
    }),
    max_size=8,
)


RULES = [None, "caseIgnoreMatch", "caseIgnoreIA5Match", "2.5.13.0", "caseExactMatch"]
IA5 = {"mail", "mozillasecondemail"}


def leaf(attr: str, kind: str, value: str, parts: list[str]) -> Any:
    if kind == "present":
        return pureldap.LDAPFilter_present(attr)
    if kind.startswith("ext"):
        rule = RULES[int(kind[3:])]
        return pureldap.LDAPFilter_extensibleMatch(type=attr, matchValue=value, matchingRule=rule)
    if kind == "misordered":  # a final before an any: RFC 4511 forbids it, slapd makes it Undefined
        return pureldap.LDAPFilter_substrings(type=attr, substrings=[
            pureldap.LDAPFilter_substrings_final(parts[0] or "x"), pureldap.LDAPFilter_substrings_any(parts[1] or "y")])
    if kind == "substrings":
        sub: list[Any] = []
        if parts[0]:
            sub.append(pureldap.LDAPFilter_substrings_initial(parts[0]))
        sub += [pureldap.LDAPFilter_substrings_any(p) for p in parts[1:-1]]
        if parts[-1]:
            sub.append(pureldap.LDAPFilter_substrings_final(parts[-1]))
        if not sub:
            sub = [pureldap.LDAPFilter_substrings_any("")]
        return pureldap.LDAPFilter_substrings(type=attr, substrings=sub)
    cls = {"eq": pureldap.LDAPFilter_equalityMatch, "ge": pureldap.LDAPFilter_greaterOrEqual,
           "le": pureldap.LDAPFilter_lessOrEqual, "approx": pureldap.LDAPFilter_approxMatch}[kind]
    return cls(attributeDesc=pureldap.LDAPAttributeDescription(attr),
               assertionValue=pureldap.LDAPAssertionValue(value))


leaves = st.builds(
    leaf,
    st.sampled_from(ATTRS + ["CN", "surname", "mail", "cn;lang-en", "telephoneNumber;x"]),
    st.sampled_from(["present", "substrings", "eq", "ge", "le", "approx", "misordered",
                     *(f"ext{i}" for i in range(len(RULES)))]),
    st.one_of(values, st.sampled_from(["inetOrgPerson", "top", "crmrecord", "organizationalUnit"])),
    st.lists(values, min_size=2, max_size=4),
)
filters_ = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: pureldap.LDAPFilter_and(xs)),
        st.lists(kids, min_size=1, max_size=3).map(lambda xs: pureldap.LDAPFilter_or(xs)),
        kids.map(lambda x: pureldap.LDAPFilter_not(x)),
    ),
    max_leaves=6,
)


def reference(f: Any, entry: dict[str, list[str]]) -> bool | None:
    if isinstance(f, pureldap.LDAPFilter_and):
        rs = [reference(x, entry) for x in f]
        return False if False in rs else None if None in rs else True
    if isinstance(f, pureldap.LDAPFilter_or):
        rs = [reference(x, entry) for x in f]
        return True if True in rs else None if None in rs else False
    if isinstance(f, pureldap.LDAPFilter_not):
        r = reference(f.value, entry)
        return None if r is None else not r
    if isinstance(f, pureldap.LDAPFilter_present):
        attr = f.value
    elif isinstance(f, pureldap.LDAPFilter_substrings):
        attr = f.type
    elif isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        attr = f.type.value
    else:
        attr = f.attributeDesc.value
    base, options, _ = attr.partition(";")
    name = KNOWN.get(base.lower())
    if name is None:
        return None
    phone = name.lower() in PHONES
    norm = (lambda v: v.replace(" ", "").replace("-", "").lower()) if phone else str.lower
    vals = [] if options else [norm(v) for v in entry.get(name.lower(), [])]  # no tagged values
    if isinstance(f, pureldap.LDAPFilter_present):
        return bool(vals)
    if isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        rule = f.matchingRule.value if f.matchingRule is not None else None
        lname = name.lower()
        applies = rule is None or (
            rule == "2.5.13.0" if lname == "objectclass" else
            rule == "caseIgnoreIA5Match" if lname in IA5 else rule == "caseIgnoreMatch")
        if not applies:
            return None
        a = norm(f.matchValue.value)
        return a in vals if a else False
    if isinstance(f, pureldap.LDAPFilter_substrings):
        kinds = [type(p) for p in f.substrings]
        if pureldap.LDAPFilter_substrings_final in kinds[:-1] or pureldap.LDAPFilter_substrings_initial in kinds[1:]:
            return None
        initial = "".join(norm(p.value) for p in f.substrings if isinstance(p, pureldap.LDAPFilter_substrings_initial))
        final = "".join(norm(p.value) for p in f.substrings if isinstance(p, pureldap.LDAPFilter_substrings_final))
        anys = [norm(p.value) for p in f.substrings if isinstance(p, pureldap.LDAPFilter_substrings_any)]
        rx = re.escape(initial) + ".*" + "".join(re.escape(x) + ".*" for x in anys) + re.escape(final)
        return any(re.fullmatch(rx, v, re.DOTALL) for v in vals)
    a = norm(f.assertionValue.value)
    if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
        return a in vals if a else False
    if phone:
        return None
    if isinstance(f, pureldap.LDAPFilter_greaterOrEqual):
        return any(v >= a for v in vals)
    return any(v <= a for v in vals)


def _lookup(entry: dict[str, list[str]]) -> Any:
    def lookup(attr: str) -> list[str] | None:
        name = KNOWN.get(attr.lower())
        return None if name is None else entry.get(name.lower(), [])

    return lookup


def test_random_filters_agree_with_the_reference(fresh_search: Searcher) -> None:
    s = fresh_search
    owner, bu = s.org.users["admin"], s.org.bu["root"]
    book = dict(base="ou=Contacts,o=crm", scope=ONE_LEVEL)

    # run by hand rather than as the test function: pytest-twisted's call hook re-enters per example
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(rows=contact_rows, flts=st.lists(filters_, min_size=1, max_size=4))
    def check(rows: list[dict], flts: list[Any]) -> None:
        with s.store.transaction() as session:
            session.execute(delete(Contact))
            if rows:
                session.execute(insert(Contact), [
                    {**r, "id": i, "owner_id": owner, "owningbusinessunit_id": bu}
                    for i, r in zip(ids(9, len(rows)), rows)
                ])
        served = {e.dn: {a.lower(): [v.decode() for v in vs] for a, vs in e.attributes} for e in s(**book).entries}
        for f in flts:
            expected = {dn for dn, entry in served.items() if reference(f, entry) is True}
            assert set(s(f, **book).dns) == expected, f.asText()
            # the in-memory evaluator (root DSE, containers) follows the same rules, value for value
            for dn, entry in served.items():
                assert matching.evaluate(f, _lookup(entry)) is reference(f, entry), (f.asText(), dn)

    check()
