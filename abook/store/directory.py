"""The directory's database work: run one batch of a search, interruptibly, on a pool thread.

The SQL comes ready-made from ``abook/directory`` (columns, filter and visibility, with positional
parameters); this module adds the keyset and LIMIT, runs it on the raw DB-API cursor of the session's
connection (the cheapest path: a search is a few hundred microseconds) and converts the rows in the
worker, so only frozen values reach the reactor thread.
``Interrupt`` lets the reactor thread stop a running statement: SQLite's ``interrupt()`` aborts it (its
progress handler enforces a time limit's deadline), PostgreSQL gets a cancel request (and a ``statement_timeout`` when a time limit is set).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

from sqlalchemy.orm import Session

#: SQLite virtual-machine instructions between two looks at the deadline (a few milliseconds of work).
#: Each look is a call into Python that must take the interpreter lock from whichever thread holds it,
#: so it is kept rare; cancelling does not wait for it (``Interrupt.cancel`` interrupts the connection).
_PROGRESS_STEPS = 1_000_000
#: PostgreSQL's SQLSTATE for a statement stopped by statement_timeout or a cancel request
_QUERY_CANCELED = "57014"
#: A SQLite batch that has used this much CPU is expensive (ordinary batches use a few milliseconds, a
#: whole-book scan at 20,000 contacts under 60 ms): while other searches run, it yields the CPU for
#: _YIELD_RATIO times what it uses, in sleeps of at most _YIELD_MAX seconds.
_YIELD_AFTER = 0.05
_YIELD_RATIO = 7.0
_YIELD_MAX = 0.2


class Interrupt:
    """A cancel flag shared by the reactor thread (``cancel``) and the worker running a batch.

    ``cost_limit``: CPU seconds one batch (one ``walk_txn`` call) may use on its thread; a statement
    still running past it is stopped and ``over_budget`` is set (on PostgreSQL: a ``statement_timeout``
    of as many wall-clock seconds). Measured as the worker thread's own CPU time, so a busy machine does
    not make a cheap batch look expensive.
    """

    def __init__(self, deadline: float | None = None, cost_limit: float = 0.0,
                 contended: Callable[[], bool] | None = None) -> None:
        self.cancelled = False
        #: time.monotonic() after which running statements are stopped (a search's time limit)
        self.deadline = deadline
        self.cost_limit = cost_limit
        #: a batch used more than ``cost_limit`` and was stopped
        self.over_budget = False
        #: whether other work wants the CPU now (``FairQueue.contention``): an expensive batch then yields
        self.contended = contended
        self._batch_cpu = 0.0
        self._last_cpu = 0.0
        self._lock = threading.Lock()
        self._conn: Any = None
        self._detached = threading.Event()

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def _progress(self) -> int:
        if self.cancelled or self.expired():
            return 1
        cpu = time.thread_time()
        if self.cost_limit and cpu - self._batch_cpu > self.cost_limit:
            self.over_budget = True
            return 1
        if cpu - self._batch_cpu > _YIELD_AFTER and self.contended is not None and self.contended():
            # An expensive batch while others search: stand aside for YIELD_RATIO times the CPU it used
            # since the last look, so it gets about an eighth of the core, not the half the kernel gives
            # each busy thread. (Sleeping releases the interpreter lock; the budget counts CPU, not this.)
            time.sleep(min(_YIELD_MAX, (cpu - self._last_cpu) * _YIELD_RATIO))
        self._last_cpu = time.thread_time()
        return 0

    def attach(self, dbapi_conn: Any) -> None:
        """Called by the worker as a batch begins (its CPU time counts from here)."""
        self._batch_cpu = self._last_cpu = time.thread_time()
        with self._lock:
            self._conn = dbapi_conn
            self._detached.clear()

    def detach(self) -> None:
        with self._lock:
            self._conn = None
            self._detached.set()

    def cancel(self) -> None:
        self.cancelled = True
        with self._lock:
            conn = self._conn
        if conn is not None and hasattr(conn, "interrupt"):  # sqlite3: thread-safe, stops the statement
            conn.interrupt()
        elif conn is not None and hasattr(conn, "cancel"):  # psycopg: a cancel request to the server
            threading.Thread(target=self._cancel_until_detached, args=(conn,), name="abook-db-cancel",
                             daemon=True).start()

    def _cancel_until_detached(self, conn: Any, patience: float = 30.0) -> None:
        """A PostgreSQL cancel request stops only a statement already running: one sent after the worker
        attached but before its execute reached the server is lost. So repeat it until the worker
        detaches (its statement ended) or ``patience`` seconds pass."""
        give_up = time.monotonic() + patience
        while time.monotonic() < give_up:
            with self._lock:
                if self._conn is not conn:
                    return
            try:
                conn.cancel()
            except Exception:  # noqa: BLE001 - the statement may have finished meanwhile
                pass
            if self._detached.wait(0.05):
                return


@dataclass(frozen=True)
class RecordQuery:
    """One segment's records: ``SELECT <columns>[, <sort keys>] FROM ... WHERE <where>`` plus its keyset.

    ``keys`` are the SQL texts of the sort keys (selected after the columns), ``reverse`` their
    directions; rows are ordered by (keys..., id) when ``ordered``, and a cursor (key values..., id)
    resumes after a row. ``convert(row)`` turns a row into a frozen value, on the worker.
    """

    select: str
    where: str
    params: tuple
    id_column: str
    convert: Callable[[Sequence[Any]], Any]
    keys: tuple[str, ...] = ()
    reverse: tuple[bool, ...] = ()
    ordered: bool = True
    placeholder: str = "?"

    def sql(self, cursor: tuple | None, limit: int) -> tuple[str, tuple]:
        where, params = self.where, self.params
        if self.ordered and cursor is not None:
            after, after_params = self._after(cursor)
            where, params = f"({where}) AND {after}", params + after_params
        text = f"{self.select} WHERE {where}"
        if self.ordered:
            order = [f"{k} DESC" if rev else k for k, rev in zip(self.keys, self.reverse)]
            text += " ORDER BY " + ", ".join([*order, self.id_column])
        return f"{text} LIMIT {int(limit)}", params

    def _after(self, cursor: tuple) -> tuple[str, tuple]:
        """Rows strictly after ``cursor`` in (keys..., id) order."""
        exprs = [*self.keys, self.id_column]
        reverse = [*self.reverse, False]
        ph = self.placeholder
        ors, params = [], []
        for i, (expr, rev) in enumerate(zip(exprs, reverse)):
            terms = [f"{exprs[j]} = {ph}" for j in range(i)] + [f"{expr} {'<' if rev else '>'} {ph}"]
            params.extend(cursor[: i + 1])
            ors.append("(" + " AND ".join(terms) + ")")
        return "(" + " OR ".join(ors) + ")", tuple(params)


@contextmanager
def armed_cursor(session: Session, interrupt: Interrupt, timeout_ms: int = 0) -> Iterator[Any]:
    """A raw cursor on the session's connection with ``interrupt`` armed on it for the block: SQLite's
    progress handler (cancel, deadline, CPU budget), or PostgreSQL's ``statement_timeout`` (the lesser of
    ``timeout_ms`` and the budget); disarmed, and the cursor closed, when the block ends."""
    conn = session.connection()
    raw = conn.connection.driver_connection
    sqlite = conn.dialect.name == "sqlite"
    budget_ms = int(interrupt.cost_limit * 1000)
    if sqlite:
        raw.set_progress_handler(interrupt._progress, _PROGRESS_STEPS)
    elif timeout_ms or budget_ms:
        limit = min(t for t in (timeout_ms, budget_ms) if t)
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(limit)}")
    interrupt.attach(raw)
    cur = raw.cursor()
    try:
        yield cur
    finally:
        cur.close()
        interrupt.detach()
        if sqlite:
            raw.set_progress_handler(None, 0)


#: a position in a walk: (segment index, cursor within the segment or None = its start)
Position = tuple[int, Optional[tuple]]


def walk_txn(
    session: Session,
    segments: Sequence[Any],
    start: Position,
    want: int,
    interrupt: Interrupt,
    timeout_ms: int = 0,
) -> tuple[list[tuple[Any, Position]], bool]:
    """Collect up to ``want`` entries from ``start`` on, in segment order; one transaction.

    A segment is a ready value (a container entry), None (nothing), a ``RecordQuery``, or a callable
    returning a ``RecordQuery`` or None (called here, when the walk reaches it). Returns the
    entries, each with the position just after it, and whether the walk reached the end.
    """
    out: list[tuple[Any, Position]] = []
    if interrupt.cancelled:
        return out, True
    with armed_cursor(session, interrupt, timeout_ms) as cur:
        index, cursor = start
        for i in range(index, len(segments)):
            seg = segments[i]
            if callable(seg):  # built on first use, on the worker: segments the walk never reaches cost nothing
                seg = seg()
            if seg is None:
                pass
            elif not isinstance(seg, RecordQuery):
                if cursor is None:
                    out.append((seg, (i + 1, None)))
            else:
                if interrupt.cancelled:
                    return out, True
                n = want - len(out)
                text, params = seg.sql(cursor, n)
                try:
                    cur.execute(text, params)
                    rows = cur.fetchall()
                except Exception as e:
                    if (getattr(e, "sqlstate", None) == _QUERY_CANCELED and int(interrupt.cost_limit * 1000)
                            and not interrupt.cancelled and not interrupt.expired()):
                        # PostgreSQL's statement_timeout fired before the search's deadline: the budget
                        interrupt.over_budget = True
                    raise
                convert = seg.convert
                for row in rows:
                    entry, row_cursor = convert(row)
                    out.append((entry, (i, row_cursor)))
                if len(rows) == n:
                    return out, False
            if len(out) >= want:
                return out, i == len(segments) - 1
            cursor = None
        return out, True
