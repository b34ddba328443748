"""What counts as the store going away (``store/outage.py``), on a real SQLite file: a locked database is
busy, a wrong statement is a bug and keeps its own error; the outage is logged once each way; a read
past ``store.timeout_seconds`` fails as unavailable, one cancelled before a thread took it never runs,
and while the store is out of reach one read at a time goes through."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher

from abook.store import Store, make_engine
from abook.store.outage import StoreOutage
from tests.helpers import failure_result_of, success_result_of


@pytest.fixture
def logged() -> list[str]:
    from twisted.logger import formatEvent

    lines: list[str] = []

    def observe(event: dict) -> None:
        if str(event.get("log_namespace", "")).startswith("abook.store.outage"):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def _select(session, sql: str) -> object:
    result = session.execute(text(sql))
    return result.scalar() if result.returns_rows else None


def test_a_locked_sqlite_store_is_busy_and_not_an_outage_to_log(tmp_path: Path, logged: list[str]) -> None:
    """A writer holding the lock (an import) makes writes busy (51) for as long; reads go on, nothing flaps."""
    path = tmp_path / "s.sqlite3"
    store = Store(make_engine(f"sqlite:///{path}", timeout=0.05))
    success_result_of(store.run(_select, "CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(path)
    other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        for _ in range(3):
            f = failure_result_of(store.run(_select, "INSERT INTO t VALUES (1)"), StoreOutage)
            assert f.value.busy and not f.value.unreachable and "locked" in f.value.reason
    finally:
        other.rollback()
        other.close()
    success_result_of(store.run(_select, "INSERT INTO t VALUES (1)"))
    assert logged == [] and not store.health.down


def test_a_store_out_of_reach_is_logged_once_each_way(tmp_path: Path, logged: list[str]) -> None:
    where = tmp_path / "not yet"
    store = Store(make_engine(f"sqlite:///{where / 's.sqlite3'}"))
    for _ in range(3):
        f = failure_result_of(store.run(_select, "SELECT 1"), StoreOutage)
        assert f.value.unreachable and not f.value.busy
    where.mkdir()  # the volume is back
    assert success_result_of(store.run(_select, "SELECT 1")) == 1
    assert len(logged) == 2, logged
    assert "the store is unavailable: unable to open database file" in logged[0]
    assert "the store is back" in logged[1] and "3 calls failed" in logged[1]


def test_a_wrong_statement_is_no_outage(tmp_path: Path, logged: list[str]) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"))
    failure_result_of(store.run(_select, "SELECT nothing FROM nowhere"), OperationalError)
    assert not store.health.down and logged == []


def test_a_call_past_the_timeout_is_unavailable_and_one_cancelled_early_never_runs(tmp_path: Path) -> None:
    clock = task.Clock()
    ran: list[int] = []

    class Held:
        """A runner whose calls wait until the test lets them run (a frozen database)."""

        def __init__(self) -> None:
            self.waiting: list[tuple] = []

        def run(self, f, *args, **kwargs) -> defer.Deferred:
            d: defer.Deferred = defer.Deferred()
            self.waiting.append((d, f))
            return d

    runner = Held()
    store = Store(make_engine(f"sqlite:///{tmp_path / 's.sqlite3'}"), runner, clock=clock, timeout=2.0)
    d = store.read(lambda s: ran.append(1))
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.2)
    f = failure_result_of(d, StoreOutage)
    assert not f.value.busy and "did not answer within 2s" in f.value.reason and store.health.down
    # while the store is out of reach one read at a time finds out whether it is back; the others fail at once
    probe = store.read(lambda s: ran.append(2))
    f = failure_result_of(store.read(lambda s: ran.append(3)), StoreOutage)
    assert "did not answer" in f.value.reason and len(runner.waiting) == 2
    for waiting, work in runner.waiting:  # the threads take them up, after the first caller gave up
        try:
            waiting.callback(work())
        except defer.CancelledError as e:
            waiting.errback(e)
    assert ran == [2]  # the first never ran; the probe did, and found the store back
    assert success_result_of(probe) is None and not store.health.down
