"""Cancelling a search (abandon, time limit) stops the database work and sends nothing more."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.python.threadpool import ThreadPool

from abook.directory.api import Entry
from abook.store import Store, make_engine
from abook.store.directory import Interrupt, RecordQuery, walk_txn
from abook.threads import ThreadPoolRunner
from tests.helpers import wait_until
from tests.unit.directory.conftest import Searcher

ENDLESS = RecordQuery(
    select="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
    where="x < 0", params=(), id_column="x", convert=tuple, ordered=False,
)


def test_interrupt_stops_a_running_statement(store: Store) -> None:
    interrupt = Interrupt()
    outcome: list[Any] = []

    def work() -> None:
        try:
            with store.transaction() as session:
                outcome.append(walk_txn(session, [ENDLESS], (0, None), 1, interrupt))
        except Exception as e:  # noqa: BLE001 - the interrupted statement's error is the outcome
            outcome.append(e)

    worker = threading.Thread(target=work)
    worker.start()
    wait_until(lambda: interrupt._conn is not None, 10, "the statement to start")
    interrupt.cancel()
    worker.join(10)
    assert not worker.is_alive(), "the statement was not interrupted"
    assert len(outcome) == 1 and isinstance(outcome[0], Exception)
    assert "interrupt" in str(outcome[0]).lower() or "cancel" in str(outcome[0]).lower()


def test_a_cancelled_flag_skips_the_work(store: Store) -> None:
    interrupt = Interrupt()
    interrupt.cancel()
    with store.transaction() as session:
        assert walk_txn(session, [ENDLESS], (0, None), 1, interrupt) == ([], True)


@pytest_twisted.ensureDeferred
async def test_cancelling_the_search_deferred(org_store: tuple) -> None:
    base_store, org = org_store
    pool = ThreadPool(1, 1, name="test-db")
    pool.start()
    store = Store(make_engine(str(base_store.engine.url.render_as_string(hide_password=False))),
                  ThreadPoolRunner(reactor, pool))
    try:
        search = Searcher(store, org)
        sent: list[Entry] = []
        d = search.directory.search(search.spec(), sent.append)
        d.cancel()
        with pytest.raises(defer.CancelledError):
            await d
        assert sent == []
        # the directory still answers the next search on the same pool
        done = await search.directory.search(search.spec("(mail=jane.doe@example.com)"), sent.append)
        assert done.result_code == 0 and len(sent) == 1
    finally:
        pool.stop()  # joins the worker: its last job hands its result over with callFromThread
        store.dispose()


def test_a_statement_running_past_the_time_limit_is_stopped(store: Store) -> None:
    import time

    interrupt = Interrupt(deadline=time.monotonic() + 0.2)
    with pytest.raises(Exception) as err:
        with store.transaction() as session:
            walk_txn(session, [ENDLESS], (0, None), 1, interrupt, timeout_ms=200)
    assert interrupt.expired()
    assert "interrupt" in str(err.value).lower() or "timeout" in str(err.value).lower()


def test_a_search_past_its_time_limit_fails_with_time_limit_exceeded(search: Searcher) -> None:
    from ldaptor.protocols.ldap import ldaperrors

    err = search.fails(time_limit=1e-9)
    assert isinstance(err, ldaperrors.LDAPTimeLimitExceeded)


def test_a_cancel_sent_before_the_statement_starts_still_stops_it(
    request: pytest.FixtureRequest, tmp_path: Any
) -> None:
    """PostgreSQL drops a cancel request that arrives before the statement: the interrupt repeats it
    until the worker detaches, so a cancel in that window is never lost."""
    from tests.helpers import new_store

    pg = new_store("postgres", request, tmp_path)
    interrupt = Interrupt()
    try:
        with pg.transaction() as session:
            raw = session.connection().connection.driver_connection
            interrupt.attach(raw)
            interrupt.cancel()  # nothing runs yet: a single cancel request would be lost here
            started = time.monotonic()
            with pytest.raises(Exception, match="(?i)cancel"):
                raw.execute("SELECT pg_sleep(20)")
            assert time.monotonic() - started < 10
            interrupt.detach()
    finally:
        pg.dispose()


def test_a_batch_over_its_cost_limit_is_stopped(store: Store) -> None:
    """The cost budget: CPU time of the worker thread on SQLite, a statement_timeout on PostgreSQL; the
    search's own deadline has not passed, so the search will answer adminLimitExceeded, not a time limit."""
    interrupt = Interrupt(deadline=time.monotonic() + 60, cost_limit=0.2)
    started = time.monotonic()
    with pytest.raises(Exception) as err:
        with store.transaction() as session:
            walk_txn(session, [ENDLESS], (0, None), 1, interrupt, timeout_ms=60_000)
    assert interrupt.over_budget and not interrupt.expired() and not interrupt.cancelled
    assert time.monotonic() - started < 10
    assert "interrupt" in str(err.value).lower() or "timeout" in str(err.value).lower()


def test_a_batch_within_its_cost_limit_is_left_alone(store: Store) -> None:
    interrupt = Interrupt(cost_limit=0.2)
    counted = RecordQuery(select="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) "
                                 "SELECT x FROM c", where="x > 0", params=(), id_column="x", convert=lambda r: (r, ()),
                          ordered=False)
    with store.transaction() as session:
        items, done = walk_txn(session, [counted], (0, None), 5000, interrupt)
    assert len(items) == 2000 and done and not interrupt.over_budget


def test_an_expensive_batch_yields_the_cpu_while_others_search() -> None:
    """Past 50 ms of CPU in a batch, each look of SQLite's progress handler sleeps seven times the CPU
    used since the last one when others want the CPU (``contended``); before that, it does not even ask."""
    looks: list[bool] = []
    busy = [False]

    def contended() -> bool:
        looks.append(busy[0])
        return busy[0]

    interrupt = Interrupt(cost_limit=10.0, contended=contended)
    interrupt.attach(None)
    assert interrupt._progress() == 0 and looks == []  # a cheap batch so far: nothing asked
    interrupt._batch_cpu -= 0.2  # as if the batch had used 0.2 s of CPU, 20 ms of it since the last look
    interrupt._last_cpu -= 0.02
    t = time.monotonic()
    assert interrupt._progress() == 0
    assert looks == [False] and time.monotonic() - t < 0.05  # alone: no pause
    busy[0] = True
    interrupt._last_cpu -= 0.02
    t = time.monotonic()
    assert interrupt._progress() == 0
    assert looks == [False, True] and time.monotonic() - t >= 0.14  # 7 x 20 ms aside
    interrupt.detach()
