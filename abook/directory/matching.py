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
* else decided on the values: names, strings and mail case-insensitively (``fold``), telephone numbers
  also without spaces and dashes (telephoneNumberMatch, which has no ordering rule: ``>=``/``<=`` on
  them are Undefined); approx as equality; ordering on the folded values; substrings as RFC 4511
  4.5.1.7.2 (initial, then each any in order, then final, none overlapping);
* extensibleMatch (RFC 4511 4.5.1.7.7): with a type and without ``:dn``, no rule (the attribute's own
  equality) or the case-ignoring rule of its syntax (RFC 4517: caseIgnoreIA5Match for IA5 strings,
  objectIdentifierMatch for objectClass, caseIgnoreMatch for the rest) compares as equality. Anything
  else (``:dn``, no type, a rule that does not apply to the syntax, caseExactMatch) is Undefined;
* a SubstringFilter whose initial is not first or whose final is not last (RFC 4511 4.5.1.7.2 forbids
  it) is Undefined, not a protocolError.

Where RFC 4511 leaves room (an unrecognised attribute in a present filter, malformed substrings, a
rule that does not apply), the answer is the one slapd 2.5 gives.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

from ldaptor.protocols import pureldap

from abook.directory.entries import PHONE_ATTRIBUTES, canonical
from abook.store.search_index import substrings_match

Lookup = Callable[[str], "list[str] | None"]

_CASE_IGNORE_RULES = frozenset({"caseignorematch", "2.5.13.2"})
_CASE_IGNORE_IA5_RULES = frozenset({"caseignoreia5match", "1.3.6.1.4.1.1466.109.114.2"})
_OID_RULES = frozenset({"objectidentifiermatch", "2.5.13.0"})
#: attributes of OID syntax: only their own equality rule applies to them
_OID_SYNTAX = frozenset({"objectclass", "structuralobjectclass"})
#: attributes of IA5 String syntax (RFC 4517 3.3.15): caseIgnoreIA5Match applies, caseIgnoreMatch does not;
#: to every other string attribute (Directory String, Printable String, Telephone Number) only caseIgnoreMatch
IA5_ATTRIBUTES = ("mail", "otherMailbox", "mozillaSecondEmail", "mozillaWorkUrl")
_IA5_SYNTAX = frozenset(a.lower() for a in IA5_ATTRIBUTES)
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


Parts = tuple["str | None", "list[str]", "str | None"]


def substring_parts(f: pureldap.LDAPFilter_substrings) -> Parts | None:
    """(initial, anys, final), empty parts dropped; None if the parts are out of order or repeated (an
    initial not first, a final not last: RFC 4511 4.5.1.7.2), which makes the item Undefined."""
    initial, anys, final = None, [], None
    last = len(f.substrings) - 1
    for i, part in enumerate(f.substrings):
        v = text_of(part.value)
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            if i != 0:
                return None
            initial = v or None
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            if i != last:
                return None
            final = v or None
        elif v:
            anys.append(v)
    return initial, anys, final


def folded_parts(parts: Parts) -> Parts:
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
    attribute = (canonical(text_of(f.type.value)) or "").lower()
    if attribute in _OID_SYNTAX:
        return rule in _OID_RULES
    if attribute in _IA5_SYNTAX:
        return rule in _CASE_IGNORE_IA5_RULES
    return rule in _CASE_IGNORE_RULES


def normalise_phone(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def _phone_fold(value: str) -> str:
    return fold(normalise_phone(value))


def phone_parts(parts: Parts) -> Parts:
    """Substring parts of a telephone number: spaces and dashes dropped, parts left empty dropped."""
    initial, anys, final = parts
    initial = normalise_phone(initial) if initial else None
    final = normalise_phone(final) if final else None
    return initial or None, [a for a in (normalise_phone(x) for x in anys) if a], final or None


def values_match(f: Any, values: Iterable[str], phone: bool = False) -> bool | None:
    """Evaluate one non-boolean filter item against an attribute's values: case-insensitively, and for a
    telephone number (``phone``) without spaces and dashes."""
    norm = _phone_fold if phone else fold
    vals = [norm(v) for v in values]
    if isinstance(f, pureldap.LDAPFilter_present):
        return bool(vals)
    if isinstance(f, pureldap.LDAPFilter_substrings):
        parts = substring_parts(f)
        if parts is None:
            return None
        initial, anys, final = folded_parts(phone_parts(parts) if phone else parts)
        return any(substrings_match(v, initial, anys, final) for v in vals)
    if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch)):
        return norm(text_of(f.assertionValue.value)) in vals
    if isinstance(f, (pureldap.LDAPFilter_greaterOrEqual, pureldap.LDAPFilter_lessOrEqual)):
        if phone:
            return None  # telephoneNumberMatch has no ordering rule
        a = fold(text_of(f.assertionValue.value))
        if isinstance(f, pureldap.LDAPFilter_greaterOrEqual):
            return any(v >= a for v in vals)
        return any(v <= a for v in vals)
    if isinstance(f, pureldap.LDAPFilter_extensibleMatch):
        if not simple_extensible(f):
            return None
        return norm(text_of(f.matchValue.value)) in vals
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
    base, options, _ = attribute_of(f).partition(";")
    values = lookup(base)
    if values is None:
        return None
    # a subtype with options (cn;lang-en) is recognised if its type is; abook holds no tagged values
    return item_matches(f, canonical(base) or base, [] if options else values)


def item_matches(f: Any, attribute: str, values: Iterable[str]) -> bool | None:
    """One item filter on a recognised ``attribute`` (any spelling) with these values."""
    return values_match(f, values, attribute.lower() in PHONE_ATTRIBUTES)


def entry_matches(f: Any, attributes: Sequence[tuple[str, Sequence[bytes]]]) -> bool:
    """Whether ``f`` is TRUE for an entry held in memory (the root DSE, the subschema entry)."""
    return evaluate(f, entry_lookup(attributes)) is True


def entry_lookup(attributes: Sequence[tuple[str, Sequence[bytes]]]) -> Lookup:
    """``evaluate``'s lookup over an entry's attributes: its values, [] for an attribute the server
    recognises (schema, aliases, the root DSE's and subschema's attributes), None for any other."""
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

    return lookup
