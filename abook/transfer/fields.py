"""The LDIF/CSV shape of every exported table: which attribute carries which column, and value syntax.

Derived from the tables' columns (``store/bulk.columns``), so a column added to ``store/models/`` travels
without a change here. Columns
keep their model names (the CRM's: ``emailaddress1``, ``address1_city``, ``statecode``, ...) except the
reference columns, which take the CRM's lookup names (``ownerid``, ``parentcustomerid``, ...), the record
id (``uid``, the RDN) and the password hash (``userPassword``, always ``{ARGON2}``-prefixed on export).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from abook.store import bulk
from abook.store.enums import (
    ACTIVITY_KINDS, ACTIVITY_PRIVILEGE, ADDRESS_BOOK_MATCHING, ENTITIES, INCOMING_METHODS, OUTGOING_METHODS,
    TRACKING_OPTIONS, ReadDepth, State,
)

#: the tables import/export carries, in dependency order (a table only references earlier ones or itself)
TABLES: tuple[str, ...] = (
    "businessunit", "role", "systemuser", "account", "contact", "lead", "queue", "equipment", "activity",
)
#: LDIF container (ou) of the records LDAP does not publish (activities: appointments, tasks, ... not email)
ORG_BOOKS: dict[str, str] = {"businessunit": "BusinessUnits", "role": "Roles", "activity": "Activities"}

#: model column -> the CRM's attribute / column name
CRM_NAMES: dict[str, str] = {
    "owner_id": "ownerid",
    "owningbusinessunit_id": "owningbusinessunit",
    "parentcustomer_id": "parentcustomerid",
    "parentaccount_id": "parentaccountid",
    "business_unit_id": "businessunitid",
    "parent_id": "parentbusinessunitid",
    "password_hash": "userPassword",
    "source_dn": "sourcedn",
}
#: columns an update leaves alone when a record does not mention them (ownership, history, runtime state)
KEEP_IF_ABSENT = frozenset({
    "createdon", "modifiedon", "owner_id", "owningbusinessunit_id", "business_unit_id", "password_hash",
    "tracking_number", "token_counter", "source_dn",
})
#: columns whose text values come from a fixed set
CHOICES: dict[str, tuple[str, ...]] = {
    "address_book_matching": ADDRESS_BOOK_MATCHING,
    "tracking_option": TRACKING_OPTIONS,
    "incoming_method": INCOMING_METHODS,
    "outgoing_method": OUTGOING_METHODS,
    "local_filter_scope": ("user", "business_unit", "parent_child", "organisation"),
    "activitytypecode": ACTIVITY_KINDS,
}
PASSWORD_SCHEME = "{ARGON2}"
#: the entities a role's read depth names: the records, and ``activity`` for every activity type
DEPTH_ENTITIES = (*ENTITIES, ACTIVITY_PRIVILEGE)


class BadValue(ValueError):
    """A value that does not fit its column; the message says what was expected."""


@dataclass(frozen=True)
class FieldSpec:
    column: str
    #: the name written on export (CRM name)
    name: str
    kind: str  # text, int, bool, datetime, id
    length: int | None
    nullable: bool
    #: the table a reference column points at, else None
    target: str | None


def _specs(table: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(c.name, CRM_NAMES.get(c.name, c.name), c.kind, c.length, c.nullable, c.target)
                 for c in bulk.columns(table) if c.name != "id")


SPECS: dict[str, tuple[FieldSpec, ...]] = {t: _specs(t) for t in TABLES}
#: table -> lowercased accepted name (CRM name or model column name) -> spec
BY_NAME: dict[str, dict[str, FieldSpec]] = {
    t: {**{s.column.lower(): s for s in specs}, **{s.name.lower(): s for s in specs}} for t, specs in SPECS.items()
}


def defaults(table: str) -> dict[str, Any]:
    """Insert-time values for columns a record does not give (scalar model defaults, else None)."""
    return {c.name: c.default for c in bulk.columns(table) if c.name != "id"}


def parse_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        raise BadValue(f"expected a GUID, got {value!r}") from None


def parse_datetime(value: str) -> datetime:
    v = value.strip()
    try:
        if v.endswith(("Z", "z")) and "-" not in v:  # GeneralizedTime 20261202141636[.123456]Z
            main, _, frac = v[:-1].partition(".")
            if len(main) != 14 or not main.isdigit() or (frac and not frac.isdigit()):
                raise ValueError(v)
            return datetime(int(main[:4]), int(main[4:6]), int(main[6:8]), int(main[8:10]), int(main[10:12]),
                            int(main[12:14]), int(frac.ljust(6, "0")[:6]) if frac else 0, tzinfo=timezone.utc)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise BadValue(f"expected a time such as 20261202141636Z or 2026-12-02T14:16:36Z, got {value!r}") from None
    return as_utc(dt)


def as_utc(dt: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive UTC, PostgreSQL aware)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def format_datetime(dt: datetime) -> str:
    dt = as_utc(dt)
    return dt.strftime("%Y%m%d%H%M%S") + (f".{dt.microsecond:06d}" if dt.microsecond else "") + "Z"


_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parse_value(spec: FieldSpec, value: str) -> Any:
    """Text from a file -> the column's Python value; "" means none (NULL, or the default)."""
    if value == "":
        return None
    kind = spec.kind
    if kind == "text":
        if spec.column in CHOICES and value not in CHOICES[spec.column]:
            raise BadValue(f"expected one of {', '.join(CHOICES[spec.column])}, got {value!r}")
        if spec.length is not None and len(value) > spec.length:
            raise BadValue(f"longer than {spec.length} characters")
        return value
    if kind == "id":
        return parse_id(value)
    if kind == "int":
        if spec.column == "statecode" and value.strip().lower() in ("active", "inactive"):
            return int(State[value.strip().lower()])
        try:
            return int(value)
        except ValueError:
            raise BadValue(f"expected a whole number, got {value!r}") from None
    if kind == "bool":
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise BadValue(f"expected TRUE or FALSE, got {value!r}")
    if kind == "date":
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise BadValue(f"expected a date such as 2026-12-02, got {value!r}") from None
    return parse_datetime(value)


def format_value(spec: FieldSpec, value: Any) -> str:
    if spec.kind == "bool":
        return "TRUE" if value else "FALSE"
    if spec.kind == "datetime":
        return format_datetime(value)
    if spec.kind == "date":
        return value.isoformat()
    if spec.column == "password_hash":
        return PASSWORD_SCHEME + value
    return str(value)


def comparable(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


def parse_depth(value: str) -> tuple[str, int]:
    """A role's ``readdepth`` value: ``contact=organisation`` (entity = depth name or number)."""
    entity, sep, depth = value.partition("=")
    entity, depth = entity.strip().lower(), depth.strip().lower()
    if not sep or entity not in DEPTH_ENTITIES:
        raise BadValue(f"expected ENTITY=DEPTH with ENTITY one of {', '.join(DEPTH_ENTITIES)}, got {value!r}")
    if depth.isdigit() and int(depth) in ReadDepth._value2member_map_:
        return entity, int(depth)
    if depth in ReadDepth.__members__:
        return entity, int(ReadDepth[depth])
    raise BadValue(f"expected a depth ({', '.join(ReadDepth.__members__)}), got {depth!r}")


#: an activity party's role as written (``party: required|ann@example.com|contact|<id>|Ann Smith``)
PARTY_ROLES = {1: "from", 2: "to", 3: "cc", 4: "bcc", 5: "required", 6: "optional", 7: "organiser", 9: "owner"}
PARTY_MASKS = {v: k for k, v in PARTY_ROLES.items()}


def parse_party(value: str) -> tuple[str, str | None, str | None, str | None, str | None]:
    """``role|address|party type|party id|display name`` (all but the role may be empty)."""
    parts = value.split("|", 4) + [""] * 4
    role, address, kind, rid, name = (p.strip() for p in parts[:5])
    if role not in PARTY_MASKS:
        raise BadValue(f"expected ROLE|ADDRESS|TYPE|ID|NAME with ROLE one of {', '.join(PARTY_MASKS)}, got {value!r}")
    if kind and kind not in ENTITIES:
        raise BadValue(f"party type {kind!r} is not one of {', '.join(ENTITIES)}")
    if bool(kind) != bool(rid):
        raise BadValue(f"a party's type and id go together, got {value!r}")
    return role, address or None, kind or None, parse_id(rid) if rid else None, name or None


def format_party(mask: int, address: str | None, kind: str | None, rid: str | None, name: str | None) -> str:
    return "|".join([PARTY_ROLES.get(mask, str(mask)), address or "", kind or "", rid or "", name or ""]).rstrip("|")


def format_depth(entity: str, depth: int) -> str:
    return f"{entity}={ReadDepth(depth).name}"
