"""The values an admin types for users, queues and roles (`abook user set`, `abook queue set`, `abook role`).

Pure parsing: each ``key=value`` becomes a checked Python value, or a ``UserError`` naming the key and
listing the allowed values (the tuples of ``enums.py``).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from abook.errors import UserError
from abook.store.models import (
    ADDRESS_BOOK_MATCHING,
    ENTITIES,
    INCOMING_METHODS,
    OUTGOING_METHODS,
    TRACKING_OPTIONS,
    ReadDepth,
    State,
)
from abook.store.enums import ACTIVITY_PRIVILEGE
from abook.store.security import OWNER_SCOPES


#: the longest local data filter accepted (the LDAP server's own filter limits apply when it is used)
MAX_FILTER_LENGTH = 4096


#: other spellings an admin types for a value: the CRM's UI says "Organization"
SPELLINGS = {"organization": "organisation"}


def _choice(allowed: Sequence[str]) -> Any:
    def parse(key: str, value: str) -> str:
        value = SPELLINGS.get(value.strip().lower(), value)
        if value not in allowed:
            raise UserError(f"bad value {value!r} for {key}: expected one of {', '.join(allowed)}")
        return value

    return parse


def _bool(key: str, value: str) -> bool:
    folded = value.lower()
    if folded in ("yes", "true", "on", "1"):
        return True
    if folded in ("no", "false", "off", "0"):
        return False
    raise UserError(f"bad value {value!r} for {key}: expected yes or no")


def _statecode(key: str, value: str) -> int:
    folded = value.lower()
    if folded in ("active", "0"):
        return int(State.active)
    if folded in ("inactive", "1"):
        return int(State.inactive)
    raise UserError(f"bad value {value!r} for {key}: expected active or inactive")


def _ldap_filter(key: str, value: str) -> str | None:
    value = value.strip()
    if value in ("", "none"):
        return None
    from ldaptor.ldapfilter import InvalidLDAPFilter, parseFilter

    try:
        if len(value) > MAX_FILTER_LENGTH:
            raise InvalidLDAPFilter("too long", value[:40], 0)
        parseFilter(value)
    except (InvalidLDAPFilter, RecursionError):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise UserError(f"bad value for {key}: {shown!r} is not an RFC 4515 filter such as (mail=*@example.com)") from None
    return value


def _text(key: str, value: str) -> str | None:
    return value.strip() or None


def parse_email(key: str, value: str) -> str | None:
    value = value.strip()
    if value and ("@" not in value or value.startswith("@") or value.endswith("@") or " " in value):
        raise UserError(f"bad value {value!r} for {key}: expected an email address such as jo@example.com")
    return value or None


#: ``abook user set`` key -> parser of its text value (raising UserError with the allowed values)
SETTINGS: dict[str, Any] = {
    "address_book_matching": _choice(ADDRESS_BOOK_MATCHING),
    "local_filter_scope": _choice(OWNER_SCOPES),
    "local_filter_ldap": _ldap_filter,
    "local_filter_include_inactive": _bool,
    "tracking_option": _choice(TRACKING_OPTIONS),
    "incoming_method": _choice(INCOMING_METHODS),
    "outgoing_method": _choice(OUTGOING_METHODS),
    "statecode": _statecode,
    "sync_enabled": _bool,
    "firstname": _text,
    "lastname": _text,
    "email": parse_email,
}


#: the settings a queue has (SPEC: "each queue, where it applies")
QUEUE_SETTINGS = ("tracking_option", "incoming_method", "outgoing_method", "statecode", "email")


def parse_settings(pairs: Iterable[str], allowed: Sequence[str] = tuple(SETTINGS)) -> dict[str, Any]:
    """``["tracking_option=none", "statecode=inactive"]`` -> ``{"tracking_option": "none", "statecode": 1}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise UserError(f"expected key=value, got {pair!r}")
        if key == "tracking_number":
            raise UserError("tracking_number is allocated once when a user is created and never changes")
        if key not in allowed:
            raise UserError(f"unknown setting {key!r}: expected one of {', '.join(allowed)}")
        out[key] = SETTINGS[key](key, value)
    return out


def parse_depths(pairs: Iterable[str]) -> dict[str, ReadDepth]:
    """``["contact=business_unit", "all=user"]`` -> depth per entity; ``all`` sets every entity."""
    out: dict[str, ReadDepth] = {}
    names = ", ".join(d.name for d in ReadDepth)
    for pair in pairs:
        entity, sep, depth = pair.partition("=")
        entity, depth = entity.strip(), depth.strip()
        depth = SPELLINGS.get(depth.lower(), depth)
        if not sep:
            raise UserError(f"expected entity=depth, got {pair!r}")
        if entity != "all" and entity not in ENTITIES + (ACTIVITY_PRIVILEGE,):
            raise UserError(f"unknown entity {entity!r}: expected one of all, {', '.join(ENTITIES)}, {ACTIVITY_PRIVILEGE}")
        if depth not in ReadDepth.__members__:
            raise UserError(f"unknown read depth {depth!r} for {entity}: expected one of {names}")
        for e in ENTITIES + (ACTIVITY_PRIVILEGE,) if entity == "all" else (entity,):
            out[e] = ReadDepth[depth]
    return out

