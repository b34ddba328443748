"""The sort keys of sorted searches and Virtual List View, and the indexes that serve them.

A sort key is a folded field (``search_index.fold_sql``): the common name (cn and displayName) as is (a
listed record always has one), any other field with empty and absent values last (``HIGH``). On
PostgreSQL the key compares byte-wise (``COLLATE "C"``), as SQLite's does, so both stores order alike.

``sort_key_sql`` writes the key; the directory's queries and the ``ix_dir_vlv_*`` indexes (migration
0007_vlv_sort) both use it, so the expressions agree and the database can walk the index in order. Each
index holds the key, the id (the tie-breaker of every sorted query), the columns the visibility
predicate reads (state, owner, owning business unit, primary email) and the columns the key is computed
from (SQLite counts an index as covering only if it holds every column an expression reads), so counting
a user's list, counting the entries before a value and skipping to a window read the index alone. On PostgreSQL those columns are ``INCLUDE`` columns: the
planner can read them in an index-only scan but never picks the index for a condition on them (with
them as key columns it chose a full scan of this index over the trigram index for contains-searches).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from abook.store import search_index
from abook.store.models import EMAIL_FIELDS

#: sorts after every value: entries without the sort attribute come last
HIGH = "\U0010ffff"

#: entity -> field -> index name: cn for every book; surname, given name and mail for the people books
_INDEXED: dict[str, tuple[str, ...]] = {
    "contact": ("cn", "lastname", "firstname", "emailaddress1"),
    "lead": ("cn", "lastname", "firstname", "emailaddress1"),
    "systemuser": ("cn", "lastname", "firstname", "internalemailaddress"),
    "account": ("cn",),
    "queue": ("cn",),
    "equipment": ("cn",),
}
_BU_OWNED = {"queue", "systemuser", "equipment"}


def sort_key_sql(entity: str, field: str, dialect: str, qualifier: str) -> str:
    """The sort key of ``field`` ("cn" or a column) of ``entity``, columns prefixed with ``qualifier``."""
    fold = search_index.fold_sql(dialect)
    if field == "cn":
        key = f"{fold}({search_index.field_sql(entity, 'cn', qualifier)})"
    else:
        key = f"coalesce({fold}(nullif({qualifier}{field}, '')), '{HIGH}')"
    return key if dialect == "sqlite" else key + ' COLLATE "C"'


def missing_key_sql(dialect: str) -> str:
    """The sort key of an attribute an entity does not have: after every value."""
    return f"'{HIGH}'" if dialect == "sqlite" else f"'{HIGH}' COLLATE \"C\""


def _covering(entity: str, field: str) -> list[str]:
    """The id, the visibility predicate's columns and the columns the key is computed from."""
    cols = ["id", "statecode"]
    cols += ["business_unit_id"] if entity in _BU_OWNED else ["owner_id", "owningbusinessunit_id"]
    cols.append(EMAIL_FIELDS[entity][0])
    sources = (["fullname", "firstname", "lastname"] if entity in search_index.PEOPLE else ["name"]) if field == "cn" else [field]
    return cols + [c for c in sources if c not in cols]


def index_name(entity: str, field: str) -> str:
    return f"ix_dir_vlv_{entity}_{field}"


def statements(dialect: str) -> list[str]:
    out = []
    for entity, fields in _INDEXED.items():
        for field in fields:
            key = sort_key_sql(entity, field, dialect, "")
            if dialect == "sqlite":
                cols = ", ".join([key, *_covering(entity, field)])
            else:  # visibility columns as INCLUDE: an index-only count, never a condition for other searches
                cols = f"({key}), id) INCLUDE ({', '.join(_covering(entity, field)[1:])}"
            out.append(f'CREATE INDEX {index_name(entity, field)} ON "{entity}" ({cols})')
    return out


def install(bind: Connection) -> None:
    for stmt in statements(bind.dialect.name):
        bind.execute(text(stmt))


def uninstall(bind: Connection) -> None:
    for entity, fields in _INDEXED.items():
        for field in fields:
            bind.execute(text(f"DROP INDEX IF EXISTS {index_name(entity, field)}"))
