"""Whole tables for import and export (``transfer/``): the tables by name, their columns as plain values, and
the chunked SELECT / INSERT / UPDATE / DELETE statements the loader and the exporter run.

Reads chunk their ``IN`` lists (``BATCH`` values each) and return plain tuples or read-only row mappings
(column -> value); writes take lists of column -> value dicts, one ``executemany`` per call, so database
triggers (the search index) see ordinary INSERTs and UPDATEs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

from sqlalchemy import (
    Boolean, Column, Connection, Date, DateTime, Integer, String, Table, bindparam, delete, func, insert, select,
    tuple_, update,
)

from abook.store.enums import ACTIVITY_KINDS
from abook.store.models import ENTITY_MODELS, Activity, ActivityParty, BusinessUnit, Role, RolePrivilege, user_roles

BATCH = 1000

_TABLES: dict[str, Table] = {
    **{name: model.__table__ for name, model in ENTITY_MODELS.items()},  # type: ignore[attr-defined]
    "businessunit": BusinessUnit.__table__, "role": Role.__table__, "activity": Activity.__table__,  # type: ignore
    "roleprivilege": RolePrivilege.__table__, "systemuser_roles": user_roles,  # type: ignore[dict-item]
    "activityparty": ActivityParty.__table__,  # type: ignore[dict-item]
}


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    kind: str  # text, int, bool, datetime, date, id (a reference)
    length: int | None
    nullable: bool
    #: the table a reference column points at, else None
    target: str | None
    #: the value an INSERT gives it when a record does not (the mapping's scalar default), else None
    default: Any


def _kind(col: Column[Any]) -> str:
    if col.foreign_keys:
        return "id"
    if isinstance(col.type, Boolean):
        return "bool"
    if isinstance(col.type, Integer):
        return "int"
    if isinstance(col.type, DateTime):
        return "datetime"
    if isinstance(col.type, Date):
        return "date"
    return "text"


def columns(table: str) -> tuple[ColumnInfo, ...]:
    """The table's columns in table order, ``id`` included."""
    out = []
    for col in _TABLES[table].columns:
        target = next(iter(col.foreign_keys)).column.table.name if col.foreign_keys else None
        length = col.type.length if isinstance(col.type, String) else None
        default = col.default.arg if col.default is not None and col.default.is_scalar else None  # type: ignore
        out.append(ColumnInfo(col.name, _kind(col), length, bool(col.nullable), target, default))
    return tuple(out)


def _chunks(seq: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class TableIO:
    """The statements of one import or export, on one connection (the caller's transaction or snapshot)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- connection tuning ----------------------------------------------------------------------------

    def grow_sqlite_cache(self) -> int | None:
        """SQLite's default 2 MB page cache thrashes on a big import's index updates (a third of the time):
        up to 256 MiB for this connection; returns the size to restore, None on other databases."""
        if self.conn.dialect.name != "sqlite":
            return None
        before = self.conn.exec_driver_sql("PRAGMA cache_size").scalar()
        self.conn.exec_driver_sql("PRAGMA cache_size=-262144")
        return int(before) if before is not None else None

    def restore_sqlite_cache(self, size: int) -> None:
        self.conn.exec_driver_sql(f"PRAGMA cache_size={int(size)}")

    # -- reads ----------------------------------------------------------------------------------------

    def pairs_in(self, table: str, column: str, values: Sequence[Any], *, folded: bool = False,
                 by_id: bool = False) -> list[tuple[str, Any]]:
        """(id, value) of the rows whose ``column`` is one of ``values``; ``folded``: compared and returned
        lower-cased; ``by_id``: in id order within each chunk."""
        t = _TABLES[table]
        col: Any = func.lower(t.c[column]) if folded else t.c[column]
        out: list[tuple[str, Any]] = []
        for chunk in _chunks(list(values)):
            stmt = select(t.c.id, col).where(col.in_(chunk))
            out += [(i, v) for i, v in self.conn.execute(stmt.order_by(t.c.id) if by_id else stmt)]
        return out

    def ids_in(self, table: str, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` the table holds."""
        t = _TABLES[table]
        found: set[str] = set()
        for chunk in _chunks(list(ids)):
            found.update(i for (i,) in self.conn.execute(select(t.c.id).where(t.c.id.in_(chunk))))
        return found

    def rows_in(self, table: str, ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        """id -> the stored row, for those of ``ids`` the table holds."""
        t = _TABLES[table]
        out: dict[str, Mapping[str, Any]] = {}
        for chunk in _chunks(list(ids)):
            for rec in self.conn.execute(select(t).where(t.c.id.in_(chunk))):
                out[rec.id] = rec._mapping
        return out

    def ids_named(self, table: str, column: str, key: str) -> set[str]:
        """The ids whose ``column``, lower-cased, is ``key``."""
        t = _TABLES[table]
        return {i for (i,) in self.conn.execute(select(t.c.id).where(func.lower(t.c[column]) == key))}

    def value_of(self, table: str, column: str, record_id: str, missing: Any = None) -> Any:
        """One column of one row, or ``missing`` when there is no such row."""
        t = _TABLES[table]
        found = list(self.conn.execute(select(t.c[column]).where(t.c.id == record_id)))
        return found[0][0] if found else missing

    def children(self, table: str, parent: str, key: str, value: str | None,
                 parents: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """parent id -> {key: value (None without a value column)} of a child table (role privileges, user
        roles), for the given parents or for all."""
        t = _TABLES[table]
        cols = [t.c[parent], t.c[key]] + ([t.c[value]] if value else [])
        out: dict[str, dict[str, Any]] = {}
        stmts = ([select(*cols)] if parents is None
                 else [select(*cols).where(t.c[parent].in_(chunk)) for chunk in _chunks(list(parents))])
        for stmt in stmts:
            for rec in self.conn.execute(stmt):
                out.setdefault(rec[0], {})[rec[1]] = rec[2] if value else None
        return out

    def parties(self, activity_ids: Sequence[str] | None = None) -> dict[str, list[tuple[Any, ...]]]:
        """activity id -> its parties in party order, each (mask, address used, party type, party id, display
        name), for the given activities or for all."""
        t = _TABLES["activityparty"]
        cols = (t.c.activity_id, t.c.participationtypemask, t.c.addressused, t.c.party_type, t.c.party_id,
                t.c.display_name)
        stmts = ([select(*cols).order_by(t.c.id)] if activity_ids is None
                 else [select(*cols).where(t.c.activity_id.in_(chunk)).order_by(t.c.id)
                       for chunk in _chunks(list(activity_ids))])
        out: dict[str, list[tuple[Any, ...]]] = {}
        for stmt in stmts:
            for rec in self.conn.execute(stmt):
                out.setdefault(rec[0], []).append(tuple(rec[1:]))
        return out

    def values_of(self, table: str, column: str, ids: Sequence[str]) -> dict[str, Any]:
        """id -> ``column`` of those of ``ids`` the table holds (a user's name for each owner id)."""
        t = _TABLES[table]
        out: dict[str, Any] = {}
        for chunk in _chunks(list(ids)):
            out.update((i, v) for i, v in self.conn.execute(select(t.c.id, t.c[column]).where(t.c.id.in_(chunk))))
        return out

    def names(self, table: str) -> dict[str, str]:
        """id -> name of every row (accounts, business units)."""
        t = _TABLES[table]
        return {i: n for i, n in self.conn.execute(select(t.c.id, t.c.name))}

    def scan(self, table: str) -> Iterator[Mapping[str, Any]]:
        """Every row in id order, streamed (activities: those that are not email, which travel with their
        messages)."""
        t = _TABLES[table]
        stmt = select(t).order_by(t.c.id)
        if table == "activity":
            stmt = stmt.where(t.c.activitytypecode.in_(ACTIVITY_KINDS))
        for rec in self.conn.execution_options(yield_per=500).execute(stmt):
            yield rec._mapping

    # -- writes ---------------------------------------------------------------------------------------

    def insert(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            self.conn.execute(insert(_TABLES[table]), list(rows))

    def update(self, table: str, cols: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
        """UPDATE ``cols`` of each row by its ``_id`` (every row gives exactly ``cols`` and ``_id``)."""
        t = _TABLES[table]
        stmt = update(t).where(t.c.id == bindparam("_id")).values({c: bindparam(c + "_v") for c in cols if c != "_id"})
        self.conn.execute(stmt, [{(k if k == "_id" else k + "_v"): v for k, v in d.items()} for d in rows])

    def delete_in(self, table: str, column: str, values: Sequence[Any]) -> None:
        t = _TABLES[table]
        self.conn.execute(delete(t).where(t.c[column].in_(list(values))))

    def delete_pairs(self, table: str, parent: str, key: str, pairs: Sequence[tuple[Any, Any]]) -> None:
        t = _TABLES[table]
        self.conn.execute(delete(t).where(tuple_(t.c[parent], t.c[key]).in_(list(pairs))))
