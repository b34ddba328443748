"""RFC 4511 filters evaluated in memory: the one evaluator of the address book and the LDAP server.

It decides the entries that are not rows (the root DSE, the subschema entry, the suffix and the books'
``ou`` entries) and the parts of a filter that ``filters.Compiler`` folds into constants (objectClass,
crmEntity); the SQL compiler follows the same rules row by row. A filter is TRUE, FALSE or Undefined
(None) as RFC 4511 4.5.1.7 says; AND, OR and NOT combine the three values, and only TRUE selects.

An item filter on an attribute description is:

* Undefined if the server does not recognise the attribute (the schema of ``entries.KNOWN``, aliases
  included, plus the root DSE's and subschema's own attributes) -- a present filter too, as slapd does;
* FALSE if the attribute is recognised but the entry has no value of it (RFC 4511 4.5.1.7.1: no value
  matches), and likewise for an attribute with options (``cn;lang-en``): abook holds no tagged values;
* else decided on the values: names, strings and mail case-insensitively (``fold``); approx as
  equality; ordering on the folded values; substrings as RFC 4511 4.5.1.7.2 (initial, then each any in
  order, then final, none overlapping);
* extensibleMatch (RFC 4511 4.5.1.7.7): with a type and without ``:dn``, no rule (the attribute's own
  equality), caseIgnoreMatch or caseIgnoreIA5Match compare as equality; objectClass (OID syntax)
  accepts no rule but its own (objectIdentifierMatch). Anything else (``:dn``, no type, another rule)
  is Undefined.

A SubstringFilter with parts out of order or repeated, or an extensibleMatch without a value or
without both type and rule, is malformed: ``check`` raises protocolError (2) as slapd does.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors

from abook.directory.entries import canonical
from abook.store.search_index import substrings_match

Lookup = Callable[[str], "list[str] | None"]

_CASE_IGNORE_RULES = frozenset({"caseignorematch", "2.5.13.2", "caseignoreia5match", "1.3.6.1.4.1.1466.109.114.2"})
_OID_RULES = frozenset({"objectidentifiermatch", "2.5.13.0"})
#: attributes of OID syntax: only their own equality rule applies to them
_OID_SYNTAX = frozenset({"objectclass", "structuralobjectclass"})
#: what the root DSE (RFC 4512 5.1, RFC 3045) and the subschema entry (RFC 4512 4.2) may hold
DSE_ATTRIBUTES = frozenset(a.lower() for a in (
    "altServer", "namingContexts", "supportedControl", "supportedExtension", "supportedFeatures",
    "supportedLDAPVersion", "supportedSASLMechanisms", "subschemaSubentry", "vendorName", "vendorVersion",
    "objectClasses", "attributeTypes", "matchingRules", "matchingRuleUse", "ldapSyntaxes", "dITContentRules",
    "dITStructureRules", "nameForms"))


def text_of(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def fold(value: str) -> str:
    return value.lower()


def substring_parts(f: pureldap.LDAPFilter_substrings) -> tuple[str | None, list[str], str | None]:
    """(initial, anys, final) of a well-formed SubstringFilter (``check``), empty parts dropped."""
    initial, anys, final = None, [], None
    for part in f.substrings:
        v = text_of(part.value)
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            initial = v or None
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            final = v or None
        elif v:
            anys.append(v)
    return initial, anys, final


def folded_parts(parts: tuple[str | None, list[str], str | None]) -> tuple[str | None, list[str], str | None]:
    initial, anys, final = parts
    return (fold(initial) if initial else None, [fold(a) for a in anys], fold(final) if final else None)


def attribute_of(f: Any) -> str:
    if isinstance(f, pureldap.LDAPFilter_present):
        return text_of(f.value)
    if isinstance(f, pureldap.LDAPFilter_substrings):
        return text_of(f.type)
    if isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        return text_of(f.type.value) if f.type is not None else ""
    return text_of(f.attributeDesc.value)


def simple_extensible(f: pureldap.LDAPFilter_extensibleMatch) -> bool:
    """Whether an extensibleMatch compares as its attribute's case-insensitive equality (else Undefined)."""
    if f.type is None or (f.dnAttributes is not None and f.dnAttributes.value):
        return False
    if f.matchingRule is None:
        return True
    rule = text_of(f.matchingRule.value).lower()
    if text_of(f.type.value).lower() in _OID_SYNTAX:
        return rule in _OID_RULES
    return rule in _CASE_IGNORE_RULES


def values_match(f: Any, values: Iterable[str]) -> bool | None:
    """Evaluate one non-boolean filter item against an attribute's values (case-insensitive strings)."""
    vals = [fold(v) for v in values]
    if isinstance(f, pureldap.LDAPFilter_present):
        return bool(vals)
    if isinstance(f, pureldap.LDAPFilter_substrings):
        initial, anys, final = folded_parts(substring_parts(f))
        return any(substrings_match(v, initial, anys, final) for v in vals)
    if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
        return fold(text_of(f.assertionValue.value)) in vals
    if isinstance(f, pureldap.LDAPFilter_greaterOrEqual):
        a = fold(text_of(f.assertionValue.value))
        return any(v >= a for v in vals)
    if isinstance(f, pureldap.LDAPFilter_lessOrEqual):
        a = fold(text_of(f.assertionValue.value))
        return any(v <= a for v in vals)
    if isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        if not simple_extensible(f):
            return None
        return fold(text_of(f.matchValue.value)) in vals
    return None


def evaluate(f: Any, lookup: Lookup) -> bool | None:
    """RFC 4511 three-valued evaluation; ``lookup(attr)`` gives values, [] if absent, None if unknown."""
    if isinstance(f, pureldap.LDAPFilter_and):
        results = [evaluate(x, lookup) for x in f]
        return False if False in results else (None if None in results else True)
    if isinstance(f, pureldap.LDAPFilter_or):
        results = [evaluate(x, lookup) for x in f]
        return True if True in results else (None if None in results else False)
    if isinstance(f, pureldap.LDAPFilter_not):
        r = evaluate(f.value, lookup)
        return None if r is None else not r
    name = attribute_of(f)
    if ";" in name:  # a subtype with options: recognised if its type is, and abook holds no tagged values
        if lookup(name.split(";", 1)[0]) is None:
            return None
        return values_match(f, [])
    values = lookup(name)
    if values is None:
        return None
    return values_match(f, values)


def entry_matches(f: Any, attributes: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
    """Whether ``f`` is TRUE for an entry held in memory (the root DSE, the subschema entry)."""
    values = {name.lower(): [text_of(v) for v in vals] for name, vals in attributes}

    def lookup(attr: str) -> list[str] | None:
        lower = attr.lower()
        found = values.get(lower)
        if found is not None:
            return found
        name = canonical(attr)
        if name is not None:
            return values.get(name.lower(), [])
        return [] if lower in DSE_ATTRIBUTES else None

    return evaluate(f, lookup) is True


def check(f: Any) -> None:
    """Raise protocolError for a filter the BER decoder accepts but RFC 4511 4.5.1 forbids."""
    if isinstance(f, (pureldap.LDAPFilter_and, pureldap.LDAPFilter_or)):
        for x in f:
            check(x)
    elif isinstance(f, pureldap.LDAPFilter_not):
        check(f.value)
    elif isinstance(f, pureldap.LDAPFilter_substrings):
        parts = f.substrings
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if ((isinstance(part, pureldap.LDAPFilter_substrings_initial) and i != 0)
                    or (isinstance(part, pureldap.LDAPFilter_substrings_final) and i != last)):
                raise ldaperrors.LDAPProtocolError("substrings out of order")
    elif isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        if f.matchValue is None or (f.type is None and f.matchingRule is None):
            raise ldaperrors.LDAPProtocolError("malformed extensible match")
