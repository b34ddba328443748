"""The store facade: the only door to the database.

Store access has two faces over the same ``*_txn`` functions (each takes a SQLAlchemy ``Session`` first):

* ``Store.run(fn, *args)``: on the daemon, ``fn`` runs in a short transaction on the bounded ``db`` thread
  pool and the Deferred fires on the reactor thread with its result. Only plain frozen values
  (``store/records.py``) may be returned, never ORM instances.
* ``Store.transaction()``: a context manager for command-line tools and tests that have no reactor.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from twisted.internet import defer

from abook.errors import UserError
from abook.store import search_index
from abook.threads import IBlockingRunner, SyncRunner

T = TypeVar("T")


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False) -> Engine:
    """Create an engine for a store URL (``sqlite:///path`` or ``postgresql+psycopg://...``; a plain
    ``postgresql://`` means psycopg too, the driver abook installs). It connects at first use: nothing is
    created until then (a SQLite file and its directory: ``schema.upgrade``)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
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
    return create_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)


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
        reason = " ".join(str(e.orig if e.orig is not None else e).split())
        password = engine.url.password
        if password:
            reason = reason.replace(str(password), "***")
        where = sqlite_file(engine)
        if where is not None:
            raise StoreUnavailable(f"cannot open the SQLite store {where}: {reason}") from None
        url = engine.url.render_as_string(hide_password=True)
        raise StoreUnavailable(f"cannot connect to the store {url} (store.url): {reason}") from None


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


class Store:
    def __init__(self, engine: Engine, runner: IBlockingRunner | None = None) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        self._runner = runner or SyncRunner()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.sessionmaker.begin() as session:
            return fn(session, *args, **kwargs)

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``fn(session, *args, **kwargs)`` in one transaction off the reactor thread."""
        return self._runner.run(self._in_transaction, fn, *args, **kwargs)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessionmaker.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
