"""The LDAP part of a user's local data filter (``local_filter_ldap``), as the contacts it matches.

The address book applies it inside every search; synchronisation needs the same set of contacts to decide
which ones go to the user's mailbox. This compiles the filter with the directory's own compiler (so both
agree exactly, three-valued logic and all) and runs it as one query over the contact view.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy.orm import Session

from abook.directory import filters
from abook.directory.entries import view
from abook.directory.query import compile_filter, parsed_local_filter
from abook.store.records import Principal


def local_filter_ids_txn(session: Session, principal: Principal) -> Optional[set[str]]:
    """Ids of the contacts ``principal.local_filter_ldap`` matches; None when the user has no LDAP part.
    An unparsable filter matches nothing (as in the address book)."""
    text = principal.local_filter_ldap
    if not text:
        return None
    parsed = parsed_local_filter(text)
    if parsed is None:
        return set()
    conn = session.connection()
    dialect = conn.dialect.name
    v = view("contact")
    pred = compile_filter("contact", dialect, parsed)
    if pred is filters.FALSE:
        return set()
    sql = filters.render(pred, filters.Compiler(v, dialect))
    from_clause = v.select_sql(dialect).split(" FROM ", 1)[1]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"SELECT {v.table.name}.id FROM {from_clause} WHERE {sql.text}", sql.params)
        return {row[0] for row in cursor.fetchall()}
    finally:
        cursor.close()
