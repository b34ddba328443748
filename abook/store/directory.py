"""The directory's database work: run one batch of a search, interruptibly, on a pool thread.

The statement comes ready-made from ``abook/directory`` (filter, visibility, keyset, LIMIT); this module
only runs it and converts the rows in the worker, so only frozen values reach the reactor thread.
``Interrupt`` lets the reactor thread stop a running statement: SQLite's progress handler aborts it at
the next check, PostgreSQL gets a cancel request (and a ``statement_timeout`` when a time limit is set).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence, TypeVar

from sqlalchemy import Executable
from sqlalchemy.orm import Session

T = TypeVar("T")

#: SQLite virtual-machine instructions between two looks at the cancel flag
_PROGRESS_STEPS = 20000


class Interrupt:
    """A cancel flag shared by the reactor thread (``cancel``) and the worker running a batch."""

    def __init__(self) -> None:
        self.cancelled = False
        self._lock = threading.Lock()
        self._conn: Any = None

    def _progress(self) -> int:
        return 1 if self.cancelled else 0

    def attach(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._conn = dbapi_conn

    def detach(self) -> None:
        with self._lock:
            self._conn = None

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            conn = self._conn
        if conn is not None and hasattr(conn, "cancel"):  # psycopg: a cancel request to the server
            try:
                conn.cancel()
            except Exception:  # noqa: BLE001 - the statement may have finished meanwhile
                pass


def fetch_txn(
    session: Session,
    stmt: Executable,
    convert: Callable[[Sequence[Any]], T],
    interrupt: Interrupt,
    timeout_ms: int = 0,
) -> list[T]:
    """Run one search batch; the rows come back converted by ``convert`` (frozen values)."""
    if interrupt.cancelled:
        return []
    conn = session.connection()
    raw = conn.connection.driver_connection
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        raw.set_progress_handler(interrupt._progress, _PROGRESS_STEPS)
    elif timeout_ms:
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
    interrupt.attach(raw)
    try:
        rows = conn.execute(stmt).all()
    finally:
        interrupt.detach()
        if sqlite:
            raw.set_progress_handler(None, 0)
    return [convert(r) for r in rows]
