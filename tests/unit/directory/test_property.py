"""Hypothesis: random filters over a random small book give what a plain in-memory evaluator gives.

The reference evaluator below works on the entries as served (what a client sees) with RFC 4511's
three-valued logic, written independently of the SQL compiler: values compared lowercased, phone
numbers without spaces and dashes, objectClass against the entry's classes, an attribute outside the
schema Undefined, one the schema knows but the entry lacks FALSE.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureldap
from sqlalchemy import delete, insert

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


def leaf(attr: str, kind: str, value: str, parts: list[str]) -> Any:
    if kind == "present":
        return pureldap.LDAPFilter_present(attr)
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
    st.sampled_from(ATTRS + ["CN", "surname", "mail"]),
    st.sampled_from(["present", "substrings", "eq", "ge", "le", "approx"]),
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
    attr = f.value if isinstance(f, pureldap.LDAPFilter_present) else (
        f.type if isinstance(f, pureldap.LDAPFilter_substrings) else f.attributeDesc.value)
    name = KNOWN.get(attr.lower())
    if name is None:
        return None
    phone = name.lower() in PHONES
    norm = (lambda v: v.replace(" ", "").replace("-", "").lower()) if phone else str.lower
    vals = [norm(v) for v in entry.get(name.lower(), [])]
    if isinstance(f, pureldap.LDAPFilter_present):
        return bool(vals)
    if isinstance(f, pureldap.LDAPFilter_substrings):
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

    check()
