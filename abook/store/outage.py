"""The store going away is an answer, not a crash.

A database that is stopped, restarting, frozen (a hung host, a network partition), busy or full makes
store calls fail with ``StoreOutage`` instead of the driver's error: the LDAP server answers it with
``unavailable`` (52) or ``busy`` (51), the router logs one line and backs the mailbox off.

What counts: the database is out of reach (``unreachable``: PostgreSQL's connection errors, a server
shutting down or starting up, SQLite's cannot-open; a read that did not answer within
``store.timeout_seconds``, ``Store.read``: a frozen PostgreSQL accepts connections and queries and
never answers, which no driver timeout notices); the database cannot take the work now (``busy``: a
statement or lock timeout, a serialization failure, too many connections, SQLite busy or locked, no
free pooled connection within the timeout); or it fails the work whatever it is (PostgreSQL's other
operational errors, SQLite full, read-only, I/O, corrupt). A wrong statement is a bug, never an
outage: it keeps its own error.

``StoreHealth`` follows whether the store is in reach: one warning when it goes out of reach (with the
database's reason, never a password) and one when it answers again, however many calls fail in
between. Busy and failing writes are reported to their callers only: while a disk is full reads still
work, and a log line each way at every write would flap.
"""

from __future__ import annotations

import time
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from twisted.logger import Logger

#: PostgreSQL SQLSTATEs of a database that is there but cannot take the work now: busy (51), not unavailable
_PG_BUSY = {"57014", "55P03", "40001", "40P01", "53300", "53400"}
#: SQLite primary result codes of an outage (busy and locked are busy): BUSY, LOCKED, NOMEM, READONLY,
#: IOERR, CORRUPT, FULL, CANTOPEN, PROTOCOL
_SQLITE_OUTAGE = {5, 6, 7, 8, 10, 11, 13, 14, 15}
_SQLITE_BUSY = {5, 6}
_SQLITE_CANTOPEN = 14
#: PostgreSQL SQLSTATEs of a server going away: admin shutdown, crash shutdown, cannot connect now
_PG_GONE = {"57P01", "57P02", "57P03"}


class StoreOutage(Exception):
    """A store call failed because the store cannot answer now (see the module's docstring).

    ``busy``: the database is there but could not take the work (LDAP busy, 51); else it is out of reach
    or failing (unavailable, 52). The message is one line with the database's reason, without secrets."""

    def __init__(self, reason: str, busy: bool = False, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.busy = busy
        #: the database is out of reach (``StoreHealth`` follows these)
        self.unreachable = unreachable


def reason_of(engine: Engine, e: BaseException) -> str:
    """The database's reason for ``e`` in one line, the store's password blanked out."""
    orig = getattr(e, "orig", None)
    reason = " ".join(str(orig if orig is not None else e).split())
    password = engine.url.password
    if password:
        reason = reason.replace(str(password), "***")
    return reason[:500]


def outage_of(engine: Engine, e: BaseException) -> StoreOutage | None:
    """``e`` as a StoreOutage if it says the store cannot answer now; None for any other error."""
    if isinstance(e, StoreOutage):
        return e
    if isinstance(e, sa_exc.TimeoutError):  # the pool: every connection in use for pool_timeout
        return StoreOutage("no free database connection: " + reason_of(engine, e), busy=True)
    if isinstance(e, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        orig = e.orig
    else:
        dbapi = engine.dialect.dbapi
        if dbapi is None or not isinstance(e, (dbapi.OperationalError, dbapi.InterfaceError)):
            return None
        # the driver's own error, from a raw cursor (the directory's walk): a statement it stopped
        # itself (a search's time limit or budget, which the search answers) is no outage
        if getattr(e, "sqlstate", None) == "57014":
            return None
        orig = e
    if engine.dialect.name == "sqlite":
        code = getattr(orig, "sqlite_errorcode", None)
        if code is None or (code & 0xFF) not in _SQLITE_OUTAGE:
            return None  # a wrong statement ("no such table", a syntax error) is an OperationalError too
        return StoreOutage(reason_of(engine, e), busy=(code & 0xFF) in _SQLITE_BUSY,
                           unreachable=(code & 0xFF) == _SQLITE_CANTOPEN)
    state = getattr(orig, "sqlstate", None)
    # libpq's own errors (refused, reset, timed out) have no SQLSTATE; class 08 is the connection's
    unreachable = state is None or state.startswith("08") or state in _PG_GONE
    return StoreOutage(reason_of(engine, e), busy=state in _PG_BUSY, unreachable=unreachable)


class StoreHealth:
    """Whether the store is in reach, as its calls find out; one log line when it goes out of reach, one
    when it answers again.

    Used on one thread (the reactor's, where a ``Store.run`` Deferred fires). ``begin`` is taken when a
    call starts: a call that started before the outage was noticed and succeeds after says nothing about
    the store being back."""

    log = Logger()

    def __init__(self) -> None:
        #: when the outage in progress was noticed (monotonic), None while the store answers
        self.down_since: float | None = None
        self.failed_calls = 0
        #: outages noticed so far (a call's ``begin`` value)
        self._outages = 0
        #: the last failure's outage
        self.outage = StoreOutage("the store has not failed")

    def begin(self) -> int:
        return self._outages

    def failed(self, outage: StoreOutage) -> None:
        if not outage.unreachable:
            return
        self.failed_calls += 1
        self.outage = outage
        if self.down_since is not None:
            return
        self.down_since = time.monotonic()
        self._outages += 1
        self.failed_calls = 1
        self.log.warn("the store is unavailable: {reason}; requests that need it are answered "
                      "unavailable (52) until it is back", reason=outage.reason)

    def succeeded(self, begun: int) -> None:
        if self.down_since is None or begun != self._outages:
            return
        seconds = time.monotonic() - self.down_since
        self.down_since = None
        self.log.warn("the store is back after {seconds:.1f}s ({failed} calls failed meanwhile)",
                      seconds=seconds, failed=self.failed_calls)

    @property
    def down(self) -> bool:
        return self.down_since is not None



def log_failure(log: Logger, failure: Any, message: str, **fields: Any) -> None:
    """Log a periodic task's failure: with its traceback, unless it is the store's outage, which the store
    logs once (``StoreHealth``); then one debug line, not a traceback every cycle."""
    if failure.check(StoreOutage):
        log.debug(message + ": {error}", error=str(failure.value), **fields)
    else:
        log.failure(message, failure, **fields)
