"""What an entry looks like: per entity, the SQL columns read, and rows turned into ``Entry`` values.

Every record entry has ``objectClass: top, person, organizationalPerson, inetOrgPerson, crmRecord``.
``crmRecord`` is the auxiliary class carrying the record's identity:

* ``crmEntity``: the entity name (account, contact, lead, queue, systemuser, equipment);
* ``crmId``: the record id (GUID); ``uid`` (the RDN) and the operational ``entryUUID`` carry it too.

The server's subschema should describe ``crmRecord`` (AUXILIARY, MAY ( crmEntity $ crmId )) and the
two attributes (directoryString, single-valued). Operational attributes (only with ``+`` or by name):
entryUUID, createTimestamp, modifyTimestamp, entryDN, structuralObjectClass, subschemaSubentry.

cn of people is their fullname, or "first last" when fullname is empty (then their mail, so an entry
never lacks a cn); accounts, queues and facilities get their name. A contact's ``o`` is its parent
account's name, a user's ``ou`` their business unit's name (outer joins).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Sequence

from sqlalchemy import ColumnElement, FromClause, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite

from abook import ber
from abook.directory.api import Entry
from abook.directory.attributes import ALIASES, ATTRIBUTES
from abook.store import search_index
from abook.store.models import ENTITY_MODELS, Account, BusinessUnit

RECORD_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson", "crmRecord")
SUBSCHEMA_DN = "cn=Subschema"
OPERATIONAL = ("entryUUID", "createTimestamp", "modifyTimestamp", "entryDN", "structuralObjectClass",
               "subschemaSubentry")
PHONE_ATTRIBUTES = frozenset(
    a.lower() for a in ("telephoneNumber", "homePhone", "mobile", "pager", "facsimileTelephoneNumber")
)
#: identity attributes every record has, after the mapped ones
IDENTITY = ("crmEntity", "crmId", "uid")

#: lowercased attribute name or alias -> the spelling served, for every attribute the schema knows
KNOWN: dict[str, str] = {}
for _pairs in ATTRIBUTES.values():
    for _attr, _field in _pairs:
        KNOWN.setdefault(_attr.lower(), _attr)
for _name in ("objectClass", "o", "ou", *IDENTITY, *OPERATIONAL):
    KNOWN.setdefault(_name.lower(), _name)
for _alias, _target in ALIASES.items():
    KNOWN.setdefault(_alias, KNOWN.get(_target.lower(), _target))
OPERATIONAL_LOWER = frozenset(a.lower() for a in OPERATIONAL)


def canonical(attribute: str) -> str | None:
    """The served spelling of an attribute description (case-insensitive, aliases), None if unknown."""
    return KNOWN.get(attribute.lower())


_JOINS = {"parentcustomer": (Account, "parentcustomer_id"), "businessunit": (BusinessUnit, "business_unit_id")}


@dataclass(frozen=True)
class Selection:
    """Which attributes to return: all user attributes, all operational ones, and/or named ones."""

    all_user: bool
    all_operational: bool
    names: frozenset[str]  # served spellings, lowercased

    def wants(self, name: str, operational: bool = False) -> bool:
        if name.lower() in self.names:
            return True
        return self.all_operational if operational else self.all_user


def selection(requested: Sequence[str]) -> Selection:
    if not requested:
        return Selection(True, False, frozenset())
    names, all_user, all_op = set(), False, False
    for r in requested:
        if r == "*":
            all_user = True
        elif r == "+":
            all_op = True
        elif r == "1.1":
            continue
        else:
            c = canonical(r.split(";", 1)[0])
            if c is not None:
                names.add(c.lower())
    return Selection(all_user, all_op, frozenset(names))


def _generalized_time(value: Any) -> bytes:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y%m%d%H%M%SZ").encode()


class EntityView:
    """One entity as the directory sees it: its FROM clause, its columns, its attributes."""

    def __init__(self, entity: str) -> None:
        self.entity = entity
        self.model = ENTITY_MODELS[entity]
        self.table = self.model.__table__
        self._joined: dict[str, Any] = {}
        from_: FromClause = self.table
        for attr, field in ATTRIBUTES[entity]:
            if "." in field:
                rel = field.split(".", 1)[0]
                if rel not in self._joined:
                    target, fk = _JOINS[rel]
                    alias = target.__table__.alias(rel)
                    self._joined[rel] = alias
                    from_ = from_.outerjoin(alias, self.table.c[fk] == alias.c.id)
        self.from_clause = from_
        self.cn = literal_column(search_index.field_sql(entity, "cn", f"{self.table.name}."))
        # attribute (served spelling) -> field; fullname/name fields are served by the derived cn
        self.attributes: tuple[tuple[str, str], ...] = ATTRIBUTES[entity]
        self.columns: list[ColumnElement[Any]] = [self.table.c.id, self.table.c.createdon, self.table.c.modifiedon]
        self._index: dict[str, int] = {}
        for _attr, field in self.attributes:
            if field not in self._index and not self._is_cn(field):
                self._index[field] = len(self.columns)
                self.columns.append(self.field_expr(field))
        self._index["cn"] = len(self.columns)
        self.columns.append(self.cn)
        self.by_attr = {a.lower(): f for a, f in self.attributes}
        self._select: dict[str, str] = {}
        self._plans: dict[Selection, tuple[tuple[str, int], ...]] = {}

    def _is_cn(self, field: str) -> bool:
        return field in ("fullname", "name")

    def field_text(self, field: str) -> str:
        """The SQL text of a field, qualified as in ``select_sql``."""
        if self._is_cn(field):
            return search_index.field_sql(self.entity, "cn", f"{self.table.name}.")
        if "." in field:
            return field
        return f"{self.table.name}.{field}"

    def select_sql(self, dialect: str) -> str:
        """``SELECT <columns> FROM <table and joins>``, compiled once per dialect."""
        text = self._select.get(dialect)
        if text is None:
            d = sqlite.dialect() if dialect == "sqlite" else postgresql.dialect()
            stmt = select(*self.columns).select_from(self.from_clause)
            text = self._select[dialect] = str(stmt.compile(dialect=d)).replace("\n", " ")
        return text

    def field_expr(self, field: str) -> ColumnElement[Any]:
        if self._is_cn(field):
            return self.cn
        if "." in field:
            rel, col = field.split(".", 1)
            return self._joined[rel].c[col]
        return self.table.c[field]

    def search_field(self, field: str) -> str | None:
        """The search_index field key for a CRM field, if it is indexed."""
        key = "cn" if self._is_cn(field) else field
        return key if key in search_index.SEARCH_FIELDS[self.entity] else None

    def row_index(self, field: str) -> int:
        return self._index["cn" if self._is_cn(field) else field]

    def plan(self, sel: Selection) -> "_Plan":
        """What ``sel`` asks of this entity's entries, worked out once per selection."""
        plan = self._plans.get(sel)
        if plan is None:
            plan = _Plan(
                mapped=tuple((a, self.row_index(f)) for a, f in self.attributes if sel.wants(a)),
                object_class=sel.wants("objectClass"),
                identity=tuple(a for a in IDENTITY if sel.wants(a)),
                operational=tuple(a for a in OPERATIONAL if sel.wants(a, operational=True)),
            )
            if len(self._plans) > 256:
                self._plans.clear()
            self._plans[sel] = plan
        return plan

    def make_entry(self, dn: str, row: Sequence[Any], sel: "Selection | _Plan", types_only: bool) -> Entry:
        """The entry of one row (``sel``: a Selection, or its plan worked out once for many rows)."""
        plan = sel if isinstance(sel, _Plan) else self.plan(sel)
        attrs: list[tuple[str, tuple[bytes, ...]]] = []
        if types_only:
            if plan.object_class:
                attrs.append(("objectClass", ()))
            attrs.extend((a, ()) for a, i in plan.mapped if row[i] is not None and row[i] != "")
            attrs.extend((a, ()) for a in plan.identity)
            attrs.extend((a, ()) for a in plan.operational if a not in _TIMESTAMPS or row[_TIMESTAMPS[a]])
            return Entry(dn, tuple(attrs))
        if plan.object_class:
            attrs.append(("objectClass", _RECORD_CLASSES_B))
        # every mapped column is text: None and "" are absent
        attrs += [(attr, (v.encode("utf-8"),)) for attr, i in plan.mapped if (v := row[i])]
        if plan.identity:
            record_id = row[0].encode()
            ident = {"crmEntity": self.entity.encode(), "crmId": record_id, "uid": record_id}
            attrs.extend((a, (ident[a],)) for a in plan.identity)
        for attr in plan.operational:
            if attr in _TIMESTAMPS:
                value = row[_TIMESTAMPS[attr]]
                if value:
                    attrs.append((attr, (_generalized_time(value),)))
            elif attr == "entryUUID":
                attrs.append((attr, (row[0].encode(),)))
            elif attr == "entryDN":
                attrs.append((attr, (dn.encode("utf-8"),)))
            else:
                attrs.append((attr, (_STATIC_OPERATIONAL[attr],)))
        return Entry(dn, tuple(attrs))


class RowEncoder:
    """Row -> the SearchResultEntry op (BER) that ``make_entry`` followed by the server's encoder gives,
    without building the ``Entry``: run on the worker thread, it leaves the reactor only the framing.

    A contains-search returns 100 all-attribute entries; building and then encoding an entry of 22
    attributes costs about 19 us, this about 5 (``bench/encode_bench.py``). Selections with operational attributes
    and typesOnly searches (rare) take ``make_entry`` and the generic encoder.
    """

    def __init__(self, view: "EntityView", plan: "_Plan", dn_tail: str, types_only: bool) -> None:
        self.view, self.plan, self.dn_tail, self.types_only = view, plan, dn_tail, types_only
        self.fast = not types_only and not plan.operational
        self.head = ber.attribute(ber.octets("objectClass"), _RECORD_CLASSES_B) if plan.object_class else b""
        self.mapped = tuple((i, _single_valued(a)) for a, i in plan.mapped)
        entity = view.entity.encode()
        self.identity = tuple((None, ber.attribute(ber.octets(a), (entity,))) if a == "crmEntity"
                              else (_single_valued(a), b"") for a in plan.identity)
        self._names: dict[str, bytes] = {}

    def __call__(self, row: Sequence[Any]) -> bytes:
        dn = "uid=" + row[0] + self.dn_tail
        if not self.fast:
            return self._generic(self.view.make_entry(dn, row, self.plan, self.types_only))
        parts = [self.head]
        append = parts.append
        for i, enc in self.mapped:
            v = row[i]
            if v:  # every mapped column is text: None and "" are absent
                b = v.encode()
                table = enc.table
                if len(b) < len(table):
                    append(table[len(b)])
                    append(b)
                else:
                    append(enc.encode(b))
        if self.identity:
            record_id = row[0].encode()
            for enc, constant in self.identity:
                append(constant if enc is None else enc.encode(record_id))
        return ber.entry_op(dn, b"".join(parts))

    def _generic(self, entry: Entry) -> bytes:
        return ber.entry(entry.dn, entry.attributes, self._names)


@lru_cache(maxsize=None)
def _single_valued(name: str) -> ber.SingleValued:
    """One encoder per attribute name (a fixed schema): its header table is about 10 kB."""
    return ber.SingleValued(name)


@lru_cache(maxsize=1024)
def row_encoder(entity: str, plan: "_Plan", dn_tail: str, types_only: bool) -> RowEncoder:
    """The RowEncoder of a kind of entry, shared by every search that returns it."""
    return RowEncoder(view(entity), plan, dn_tail, types_only)


@dataclass(frozen=True)
class _Plan:
    mapped: tuple[tuple[str, int], ...]
    object_class: bool
    identity: tuple[str, ...]
    operational: tuple[str, ...]


_TIMESTAMPS = {"createTimestamp": 1, "modifyTimestamp": 2}
_STATIC_OPERATIONAL = {"structuralObjectClass": b"inetOrgPerson", "subschemaSubentry": SUBSCHEMA_DN.encode()}
_RECORD_CLASSES_B = tuple(c.encode() for c in RECORD_CLASSES)


@lru_cache(maxsize=None)
def view(entity: str) -> EntityView:
    return EntityView(entity)


def container_entry(dn: str, attributes: dict[str, tuple[str, ...]], sel: Selection, types_only: bool) -> Entry:
    out = []
    for attr, values in attributes.items():
        if sel.wants(attr):
            out.append((attr, () if types_only else tuple(v.encode("utf-8") for v in values)))
    if sel.all_operational or sel.names & OPERATIONAL_LOWER:
        op = {"entryDN": dn, "structuralObjectClass": attributes["objectClass"][-1],
              "subschemaSubentry": SUBSCHEMA_DN}
        for attr, value in op.items():
            if sel.wants(attr, operational=True):
                out.append((attr, () if types_only else (value.encode("utf-8"),)))
    return Entry(dn, tuple(out))
