"""Match an ldaptor filter against one in-memory entry (the root DSE and the subschema entry).

Three-valued as RFC 4511 4.5.1.7 says: an attribute the entry lacks makes its item Undefined, and
Undefined is false at the top; attribute names and values compare case-insensitively.
"""

from __future__ import annotations

from typing import Any, Sequence

from ldaptor.protocols import pureldap


def _text(v: Any) -> str:
    v = getattr(v, "value", v)
    return (v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)).lower()


def evaluate(f: Any, attributes: Sequence[tuple[str, Sequence[bytes]]]) -> bool | None:
    """True, False or None (Undefined). Recursion is bounded by the framer's filter depth limit."""
    values = {name.lower(): [_text(v) for v in vals] for name, vals in attributes}
    return _eval(f, values)


def _eval(f: Any, values: dict[str, list[str]]) -> bool | None:
    if isinstance(f, pureldap.LDAPFilter_and):
        results = [_eval(x, values) for x in f]
        return False if False in results else (None if None in results else True)
    if isinstance(f, pureldap.LDAPFilter_or):
        results = [_eval(x, values) for x in f]
        return True if True in results else (None if None in results else False)
    if isinstance(f, pureldap.LDAPFilter_not):
        r = _eval(f.value, values)
        return None if r is None else not r
    if isinstance(f, pureldap.LDAPFilter_present):
        return _text(f.value) in values
    if isinstance(f, pureldap.LDAPFilter_substrings):
        vals = values.get(_text(f.type))
        if vals is None:
            return None
        return any(_substring_match(v, f.substrings) for v in vals)
    if isinstance(f, (pureldap.LDAPFilter_equalityMatch, pureldap.LDAPFilter_approxMatch,
                      pureldap.LDAPFilter_greaterOrEqual, pureldap.LDAPFilter_lessOrEqual)):
        vals = values.get(_text(f.attributeDesc))
        if vals is None:
            return None
        want = _text(f.assertionValue)
        if isinstance(f, pureldap.LDAPFilter_greaterOrEqual):
            return any(v >= want for v in vals)
        if isinstance(f, pureldap.LDAPFilter_lessOrEqual):
            return any(v <= want for v in vals)
        return want in vals
    return None


def _substring_match(value: str, parts: Sequence[Any]) -> bool:
    pos = 0
    for part in parts:
        s = _text(part)
        if isinstance(part, pureldap.LDAPFilter_substrings_initial):
            if not value.startswith(s):
                return False
            pos = len(s)
        elif isinstance(part, pureldap.LDAPFilter_substrings_final):
            return len(value) - len(s) >= pos and value.endswith(s)
        else:
            i = value.find(s, pos)
            if i < 0:
                return False
            pos = i + len(s)
    return True
