"""``Store.read`` over read replicas: a replica serves reads; one that cannot be opened is left out and the
primary answers the same read without an error, and the store itself is not marked unavailable; a wrong
statement is a bug, not the replica's outage, and fails as it is; a cancelled read is not run again."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from abook.store import Store, make_engine
from abook.store.replicas import RETRY_SECONDS
from tests.helpers import failure_result_of, success_result_of


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observe(event: dict) -> None:
        if str(event.get("log_namespace", "")).startswith("abook.store.replicas"):
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def _db(path: Path, value: str) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (v TEXT)"))
        c.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
    engine.dispose()
    return url


def _which(session) -> str:  # type: ignore[no-untyped-def]
    return session.execute(text("SELECT v FROM t")).scalar_one()


def test_a_replica_serves_reads_and_a_failing_one_falls_back_to_the_primary(tmp_path: Path, logged) -> None:
    now = [100.0]
    store = Store(make_engine(_db(tmp_path / "p.sqlite3", "primary")),
                  read_engines=[make_engine(_db(tmp_path / "r.sqlite3", "replica")),
                                make_engine(f"sqlite:///{tmp_path / 'gone' / 'r2.sqlite3'}")])
    store.replicas._clock = lambda: now[0]
    assert success_result_of(store.read(_which)) == "replica"
    assert success_result_of(store.read(_which)) == "primary"  # the second replica cannot be opened
    assert not store.health.down
    assert sum("read replica" in line and "failed a read" in line for line in logged) == 1
    # left out meanwhile: the first replica serves every read
    assert [success_result_of(store.read(_which)) for _ in range(3)] == ["replica"] * 3
    assert success_result_of(store.run(_which)) == "primary"  # writes and the router: the primary
    now[0] += RETRY_SECONDS
    (tmp_path / "gone").mkdir()
    _db(tmp_path / "gone" / "r2.sqlite3", "replica 2")
    assert sorted(success_result_of(store.read(_which)) for _ in range(2)) == ["replica", "replica 2"]
    assert any("answers again" in line for line in logged)
    store.dispose()


def test_a_wrong_statement_fails_as_it_is_and_a_cancelled_read_is_not_retried(tmp_path: Path) -> None:
    store = Store(make_engine(_db(tmp_path / "p.sqlite3", "primary")),
                  read_engines=[make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")])
    f = failure_result_of(store.read(_which), OperationalError)  # no table t there: a bug, not an outage
    assert "no such table" in str(f.value)
    assert store.replicas.replicas[0].down_until == 0.0

    class Held:
        calls: list = []

        def run(self, fn, *args, **kw):  # type: ignore[no-untyped-def]
            d: defer.Deferred = defer.Deferred()
            self.calls.append((d, fn))
            return d

    held = Held()
    store._runner = held
    d = store.read(_which)
    d.cancel()
    failure_result_of(d, defer.CancelledError)
    assert len(held.calls) == 1  # not run again on the primary
    store.dispose()
