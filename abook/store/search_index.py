"""Substring and prefix search over names and mail that never scans a table.

SQLite: an FTS5 table with the trigram tokenizer; PostgreSQL: pg_trgm GIN indexes.
(Filled in by the LDAP work; ``install`` is called by the initial migration.)
"""

from __future__ import annotations

from sqlalchemy import Connection


def install(bind: Connection) -> None:
    """Create the search index structures for this dialect."""


def uninstall(bind: Connection) -> None:
    """Drop what install created."""
