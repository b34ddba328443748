"""Substring, prefix and equality search over names and mail that never scans a table.

What the directory searches is described here once, as SQL text templates over one entity's table
(``{t}`` is replaced by a table qualifier: ``""`` in index definitions, ``"new."`` in triggers,
``"contact."`` in queries), so the index definitions and the queries that must hit them agree.

* **Folding.** Names and mail compare case-insensitively. PostgreSQL's ``lower()`` folds Unicode (UTF-8
  database with a UTF-8 ctype); SQLite's built-in ``lower()`` folds ASCII only, so every SQLite
  connection gets a deterministic ``abook_fold(x)`` (Python's ``str.lower``), registered by
  ``store.make_engine`` through ``register_sqlite_functions``. ``fold_sql(dialect)`` names the function.
* **NUL.** SQLite's LIKE and FTS5 read a value only up to its first NUL, so ``LIKE '%' || char(0) || '%'``
  matches every value. A substring filter whose parts hold a NUL is matched on SQLite by
  ``abook_substrings(folded value, parts as JSON)`` (``substrings_match`` in Python: exact, and only
  ever used for such filters); PostgreSQL text cannot hold a NUL, so there such a filter matches nothing.
* **Equality and prefixes**: a B-tree expression index on ``fold(expr)`` for every searchable field
  (``ix_dir_<entity>_<field>``; on PostgreSQL the email fields reuse the models' ``lower()`` indexes).
  SQLite: prefixes are ranges ``>= 'jo' AND < 'jp'`` (a LIKE on an expression never uses an index);
  PostgreSQL: ``LIKE 'jo%'`` is served by the trigram GIN index below.
* **Contains** (``*rog*``): SQLite: one FTS5 table per entity, ``dirsearch_<entity>``, trigram tokenizer
  (case-insensitive), one column per searchable field, ``rowid`` = the entity row's rowid, kept in
  step by AFTER INSERT/UPDATE/DELETE triggers (so bulk imports need no special code). Queried with
  ``MATCH`` for fragments of three characters or more. PostgreSQL: ``pg_trgm`` GIN indexes on
  ``lower(expr)`` (``ix_dirtrgm_<entity>_<field>``) serve ``LIKE '%rog%'`` and ``LIKE 'jo%'``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from abook.store.models import EMAIL_FIELDS

PEOPLE = ("contact", "lead", "systemuser")


def cn_template(entity: str) -> str:
    """The SQL (template) of an entity's cn: never empty for a listed record (which has a primary email)."""
    primary = EMAIL_FIELDS[entity][0]
    if entity in PEOPLE:
        return (
            "coalesce(nullif(trim({t}fullname), ''), "
            "nullif(trim(coalesce({t}firstname, '') || ' ' || coalesce({t}lastname, '')), ''), "
            "{t}" + primary + ", {t}id)"
        )
    return "coalesce(nullif(trim({t}name), ''), {t}" + primary + ", {t}id)"


#: entity -> searchable field -> SQL template. The key "cn" is the derived common name; the others are
#: CRM field names as in attributes.py. Only these fields are indexed.
SEARCH_FIELDS: dict[str, dict[str, str]] = {}
for _entity, (_primary, _others) in EMAIL_FIELDS.items():
    _fields = {"cn": cn_template(_entity)}
    if _entity in PEOPLE:
        _fields["firstname"] = "{t}firstname"
        _fields["lastname"] = "{t}lastname"
    for _f in (_primary, *_others):
        _fields[_f] = "{t}" + _f
    if _entity in PEOPLE:
        _fields["jobtitle"] = "{t}jobtitle"
    SEARCH_FIELDS[_entity] = _fields


_EMAILS = {entity: (primary, *others) for entity, (primary, others) in EMAIL_FIELDS.items()}


def field_sql(entity: str, field: str, qualifier: str = "") -> str:
    return SEARCH_FIELDS[entity][field].format(t=qualifier)


def fts_table(entity: str) -> str:
    return f"dirsearch_{entity}"


def owns(name: str) -> bool:
    """Whether a table or index is the search index's own (FTS5 tables and their shadow tables,
    ``ix_dir_*`` and ``ix_dirtrgm_*`` indexes), not one the models describe."""
    if name.startswith(("ix_dir_", "ix_dirtrgm_")):
        return True
    return any(name == fts_table(e) or name.startswith(fts_table(e) + "_") for e in SEARCH_FIELDS)


def fold_sql(dialect: str) -> str:
    return "abook_fold" if dialect == "sqlite" else "lower"


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def substrings_match(value: str, initial: str | None, anys: list[str] | tuple[str, ...], final: str | None) -> bool:
    """Whether ``value`` is ``initial``, then each of ``anys`` in order, then ``final`` (RFC 4511 substrings),
    every part matched literally; the caller folds value and parts alike."""
    pos = 0
    if initial is not None:
        if not value.startswith(initial):
            return False
        pos = len(initial)
    end = len(value)
    if final is not None:
        if end - pos < len(final) or not value.endswith(final):
            return False
        end -= len(final)
    for part in anys:
        i = value.find(part, pos, end)
        if i < 0:
            return False
        pos = i + len(part)
    return True


@lru_cache(maxsize=64)
def _parts(parts: str) -> tuple[str | None, tuple[str, ...], str | None]:
    initial, anys, final = json.loads(parts)
    return initial, tuple(anys), final


def _substrings(value: Any, parts: str) -> int:
    return int(isinstance(value, str) and substrings_match(value, *_parts(parts)))


def substrings_sql(folded: str, placeholder: str = "?") -> str:
    """SQLite: the predicate ``abook_substrings`` (``substrings_match``) with the parts as a JSON parameter."""
    return f"abook_substrings({folded}, {placeholder})"


def substrings_param(initial: str | None, anys: list[str], final: str | None) -> str:
    return json.dumps([initial, anys, final])


def register_sqlite_functions(dbapi_conn: Any) -> None:
    """Give a SQLite connection the functions the schema's indexes and triggers use, and
    ``abook_substrings`` (substring filters holding a NUL)."""
    dbapi_conn.create_function("abook_fold", 1, _fold, deterministic=True)
    dbapi_conn.create_function("abook_substrings", 2, _substrings, deterministic=True)


def _statements(dialect: str) -> list[str]:
    out: list[str] = []
    fold = fold_sql(dialect)
    for entity, fields in SEARCH_FIELDS.items():
        for field, template in fields.items():
            expr = template.format(t="")
            name = f"ix_dir_{entity}_{field}"
            if dialect == "sqlite":
                out.append(f"CREATE INDEX {name} ON {entity} ({fold}({expr}))")
            elif field not in _EMAILS[entity]:  # the models already index lower(email) on PostgreSQL
                out.append(f'CREATE INDEX {name} ON "{entity}" (({fold}({expr})))')
        if dialect == "sqlite":
            cols = ", ".join(fields)
            table = fts_table(entity)
            values = ", ".join(t.format(t="new.") for t in fields.values())
            out.append(f"CREATE VIRTUAL TABLE {table} USING fts5({cols}, tokenize='trigram')")
            insert = f"INSERT INTO {table}(rowid, {cols}) VALUES (new.rowid, {values});"
            delete = f"DELETE FROM {table} WHERE rowid = old.rowid;"
            out.append(f"CREATE TRIGGER {table}_ai AFTER INSERT ON {entity} BEGIN {insert} END")
            out.append(f"CREATE TRIGGER {table}_ad AFTER DELETE ON {entity} BEGIN {delete} END")
            out.append(f"CREATE TRIGGER {table}_au AFTER UPDATE ON {entity} BEGIN {delete} {insert} END")
            out.append(_fill(entity))
    return out


def _fill(entity: str) -> str:
    fields = SEARCH_FIELDS[entity]
    return (f"INSERT INTO {fts_table(entity)}(rowid, {', '.join(fields)}) SELECT rowid, "
            + ", ".join(t.format(t="") for t in fields.values()) + f" FROM {entity}")


def rebuild(bind: Connection) -> None:
    """Refill the SQLite trigram tables from their entities.

    The FTS rows are keyed by the entity rows' rowid, which SQLite's VACUUM may renumber (the tables
    have text primary keys): run this after a VACUUM. PostgreSQL needs nothing.
    """
    if bind.dialect.name != "sqlite":
        return
    for entity in SEARCH_FIELDS:
        bind.execute(text(f"DELETE FROM {fts_table(entity)}"))
        bind.execute(text(_fill(entity)))


def _trigram_statements() -> list[str]:
    out = []
    for entity, fields in SEARCH_FIELDS.items():
        for field, template in fields.items():
            expr = template.format(t="")
            out.append(f'CREATE INDEX ix_dirtrgm_{entity}_{field} ON "{entity}" USING gin ((lower({expr})) gin_trgm_ops)')
    return out


def install(bind: Connection) -> None:
    """Create the search index structures for this dialect."""
    dialect = bind.dialect.name
    for stmt in _statements(dialect):
        bind.execute(text(stmt))
    if dialect == "postgresql":
        try:
            with bind.begin_nested():
                bind.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except DBAPIError:  # no privilege: prefixes and equality stay indexed, contains-searches scan
            return
        for stmt in _trigram_statements():
            bind.execute(text(stmt))


def uninstall(bind: Connection) -> None:
    """Drop what install created."""
    dialect = bind.dialect.name
    for entity, fields in SEARCH_FIELDS.items():
        for field in fields:
            bind.execute(text(f"DROP INDEX IF EXISTS ix_dir_{entity}_{field}"))
            if dialect == "postgresql":
                bind.execute(text(f"DROP INDEX IF EXISTS ix_dirtrgm_{entity}_{field}"))
        if dialect == "sqlite":
            table = fts_table(entity)
            for suffix in ("ai", "ad", "au"):
                bind.execute(text(f"DROP TRIGGER IF EXISTS {table}_{suffix}"))
            bind.execute(text(f"DROP TABLE IF EXISTS {table}"))
