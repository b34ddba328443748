"""The store facade: the only door to the database.

Store access has two faces over the same ``*_txn`` functions (each takes a SQLAlchemy ``Session`` first):

* ``Store.run(fn, *args)``: on the daemon, ``fn`` runs in a short transaction on the bounded ``db`` thread
  pool and the Deferred fires on the reactor thread with its result. Only plain frozen values
  (``store/records.py``) may be returned, never ORM instances.
* ``Store.transaction()``: a context manager for command-line tools and tests that have no reactor.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from twisted.internet import defer
from twisted.python.failure import Failure

from abook.errors import UserError
from abook.monitor import metrics
from abook.store import search_index
from abook.store.outage import StoreHealth, StoreOutage, outage_of, reason_of
from abook.store.replicas import Replica, Replicas
from abook.threads import IBlockingRunner, SyncRunner

T = TypeVar("T")


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False, timeout: float | None = None) -> Engine:
    """Create an engine for a store URL (``sqlite:///path`` or ``postgresql+psycopg://...``; a plain
    ``postgresql://`` means psycopg too, the driver abook installs). It connects at first use: nothing is
    created until then (a SQLite file and its directory: ``schema.upgrade``).

    ``timeout`` (the daemon's ``store.timeout_seconds``) bounds each wait on the database: PostgreSQL's
    connect timeout and ``statement_timeout``, a free pooled connection, and SQLite's busy timeout.
    None (command-line tools: an import or an export may run long statements): SQLite waits 30 s for a
    lock, PostgreSQL as long as it takes."""
    busy_ms = 30_000 if timeout is None else max(1, int(timeout * 1000))
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": busy_ms / 1000})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Temporary b-trees (an IN (SELECT ...) list, a sort) in memory: on file-backed temp storage
            # each one gets a pager of its own whose page cache is malloc'ed and freed per statement, and
            # address resolution's 12 IN lists cost 0.45 ms instead of 0.04 (heap grown and trimmed each time)
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()
            search_index.register_sqlite_functions(dbapi_conn)

        return engine
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy's default would be psycopg2, which abook does not use
        parsed = parsed.set(drivername="postgresql+psycopg")
    extra: dict[str, Any] = {}
    if timeout is not None:
        # libpq counts whole seconds, at least 2; the statement timeout is the server's, in ms. What the
        # URL sets itself (?connect_timeout=, ?options=-c ...) is kept: the URL's options come last and win
        query = parsed.query
        options = " ".join(filter(None, [f"-c statement_timeout={busy_ms}", _one(query.get("options"))]))
        extra["connect_args"] = {"connect_timeout": _one(query.get("connect_timeout")) or max(2, math.ceil(timeout)),
                                 "options": options}
        extra["pool_timeout"] = timeout
    return create_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, **extra)


def _one(value: Any) -> Any:
    """A URL query value (a tuple when the key is repeated: the last one)."""
    return value[-1] if isinstance(value, tuple) else value


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite store (None: not SQLite, or in memory)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    return Path(engine.url.database)


class StoreUnavailable(UserError):
    """The store cannot be opened: its database server does not answer, or refuses us, or the SQLite file
    cannot be opened. One line naming the store (never its password) and the database's reason."""


@contextmanager
def reaching(engine: Engine) -> Iterator[None]:
    """Turn a failure to connect to the store, inside the block, into StoreUnavailable."""
    try:
        yield
    except (OperationalError, InterfaceError) as e:
        reason = reason_of(engine, e)
        where = sqlite_file(engine)
        if where is not None:
            raise StoreUnavailable(f"cannot open the SQLite store {where}: {reason}") from None
        url = engine.url.render_as_string(hide_password=True)
        raise StoreUnavailable(f"cannot connect to the store {url} (store.url): {reason}") from None


def transaction_cache(session: Session, name: str) -> dict[Any, Any]:
    """A dict named ``name`` that lives as long as the session's current transaction: reads memoised in it
    are never served to a later transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(name)
    if cached is None or cached[0] is not transaction:
        cached = session.info[name] = (transaction, {})
    return cached[1]  # type: ignore[no-any-return]


def ping_txn(session: Session) -> None:
    """One round trip to the database (``/healthz``): raises when it cannot answer."""
    session.execute(text("SELECT 1"))


def ensure_transaction(session: Session) -> None:
    """Begin the session's database transaction now if the driver has not yet.

    pysqlite defers BEGIN until the first write, so a SAVEPOINT issued before any write would open (and its
    RELEASE commit) a transaction of its own, cutting the caller's transaction in two."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", True):
        connection.exec_driver_sql("BEGIN")


#: any error the database raised: a caller that isolates a step in a savepoint lets these through
DatabaseError = SQLAlchemyError
#: a write broke a unique or foreign key constraint (e.g. another transaction inserted the same key first)
DuplicateKey = IntegrityError
#: the database refused a value (too long, out of range, not valid in its encoding)
RefusedValue = DataError


def savepoint(session: Session) -> Any:
    """A nested transaction (SAVEPOINT) as a context manager: leaving it by an exception rolls back only
    what ran inside it."""
    return session.begin_nested()


class Store:
    """``clock`` and ``timeout`` (the daemon's reactor and ``store.timeout_seconds``) give ``read`` its
    deadline; without them it has none. ``read_engines``: hot standbys that ``read`` prefers
    (``store.read_urls``, store/replicas.py)."""

    def __init__(self, engine: Engine, runner: IBlockingRunner | None = None, clock: Any = None,
                 timeout: float | None = None, read_engines: list[Engine] | None = None) -> None:
        self.engine = engine
        self.replicas = Replicas(list(read_engines or ()))
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        self._runner = runner or SyncRunner()
        self.clock = clock
        self.timeout = timeout
        self.health = StoreHealth()
        #: a read is finding out whether the unreachable store is back (``read``)
        self._probing = False

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.sessionmaker.begin() as session:
            return fn(session, *args, **kwargs)

    def _on_replica(self, replica: Replica, fn: Callable[..., Any], *args: Any) -> defer.Deferred:
        """``fn`` in a transaction on a replica, on the same pool; its failures say nothing of the primary."""
        gave_up: list[bool] = []
        outer: defer.Deferred = defer.Deferred(lambda _d: gave_up.append(True))

        def work() -> Any:
            if gave_up:  # cancelled (timed out, or the caller gave up) before a thread took it up
                raise defer.CancelledError()
            with replica.sessionmaker.begin() as session:
                return fn(session, *args)

        def done(result: Any) -> None:
            if not outer.called:
                outer.errback(result) if isinstance(result, Failure) else outer.callback(result)

        self._runner.run(work).addBoth(done)
        return outer

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``fn(session, *args, **kwargs)`` in one transaction off the reactor thread.

        Fails with ``StoreOutage`` when the store cannot answer (``outage``); other errors pass as they
        are. Cancelled before a thread took it up, the transaction never starts."""
        begun = self.health.begin()
        gave_up: list[bool] = []  # a list, not a threading.Event: appending is atomic and costs nothing

        def work() -> T:
            if gave_up:
                raise defer.CancelledError()
            return self._in_transaction(fn, *args, **kwargs)

        outer: defer.Deferred = defer.Deferred(lambda _d: gave_up.append(True))

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                outage = outage_of(self.engine, result.value)
                if outage is not None:
                    self.health.failed(outage)
                    if outage is not result.value:
                        result = Failure(outage)
            else:
                self.health.succeeded(begun)
            if outer.called:  # cancelled: the caller gave up on it
                return
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)

        self._runner.run(work).addBoth(done)
        return outer

    def read(self, fn: Callable[..., T], *args: Any) -> defer.Deferred:
        """``run`` for a read whose caller answers a client (an LDAP bind or search), which must not wait
        on a frozen database: it fails with ``StoreOutage`` if it has not answered within ``timeout``
        seconds (the thread may wait on; a read has nothing to commit). While the store is out of reach,
        one read at a time goes to the database to find out whether it is back, and the others fail at
        once with the outage, so a queue of reads never waits out the deadline one after another.

        With read replicas, a replica serves it; one that fails it (store/replicas.py) is left out for a
        while and the read runs on the primary instead."""
        replica = self.replicas.pick() if self.replicas else None
        if replica is None:
            return self._read_primary(fn, *args)
        d = self._on_replica(replica, fn, *args)
        if self.timeout and self.clock is not None:
            d.addTimeout(self.timeout, self.clock, onTimeoutCancel=lambda r, t: Failure(_ReplicaTimeout()))

        def served(result: Any) -> Any:
            self.replicas.succeeded(replica)
            metrics.get().replica_reads.labels("replica").inc()
            return result

        def fall_back(failure: Failure) -> Any:
            if failure.check(defer.CancelledError):
                return failure  # the caller gave up (the search was abandoned): nothing to fall back for
            if failure.check(_ReplicaTimeout):
                reason = f"no answer within {self.timeout:g}s (store.timeout_seconds)"
            else:
                outage = outage_of(replica.engine, failure.value)
                if outage is None:
                    return failure  # a wrong statement fails on the primary too: no outage of the replica
                reason = outage.reason
            self.replicas.failed(replica, reason)
            metrics.get().replica_reads.labels("primary").inc()
            return self._read_primary(fn, *args)

        return d.addCallbacks(served, fall_back)

    def _read_primary(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        health = self.health
        if health.down and self.timeout and self.clock is not None:  # (a probe without a deadline could hang)
            if self._probing:
                return defer.fail(health.outage)
            self._probing = True
            d = self._bounded(self.run(fn, *args, **kwargs))

            def probed(result: Any) -> Any:
                self._probing = False
                return result

            return d.addBoth(probed)
        return self._bounded(self.run(fn, *args, **kwargs))

    @property
    def reader(self) -> "_Reader":
        """This store as a runner (``scheduling.FairQueue``) whose calls are ``read``s."""
        return _Reader(self)

    def _bounded(self, d: defer.Deferred) -> defer.Deferred:
        if not self.timeout or self.clock is None:
            return d
        timeout = self.timeout
        started = time.monotonic()

        def expired(result: Any, _timeout: float) -> Any:
            if isinstance(result, Failure) and result.check(defer.CancelledError):
                if self.health.last_success > started:
                    # other calls got answers meanwhile: the database is there, this one was slow (a loaded
                    # machine, a heavy query): busy (51), and no reason to turn reads away
                    return Failure(StoreOutage(f"the database is slow: no answer within {timeout:g}s", busy=True))
                outage = StoreOutage(f"the database did not answer within {timeout:g}s (store.timeout_seconds)",
                                     unreachable=True)
                self.health.failed(outage)
                return Failure(outage)
            return result

        return d.addTimeout(timeout, self.clock, onTimeoutCancel=expired)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessionmaker.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.replicas.dispose()


class _ReplicaTimeout(Exception):
    """A replica did not answer a read within ``store.timeout_seconds``."""


class _Reader:
    def __init__(self, store: Store) -> None:
        self.run = store.read
