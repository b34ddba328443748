"""/healthz: 200 while the store answers and the router makes progress; 503, with the reason, when the store
does not answer (an error, or nothing within store_timeout) or no mailbox poll has completed for
stuck_after_intervals poll intervals."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from abook.config import parse_config
from abook.monitor import metrics
from abook.monitor.http import Health, HealthResource
from abook.store import Store, make_engine


class _Never:
    """A runner whose calls never finish: a store that hangs."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, f: Any, *args: Any, **kwargs: Any) -> defer.Deferred:
        self.calls += 1
        return defer.Deferred()


def _root(*intervals: float) -> MultiService:
    root = MultiService()
    if intervals:
        router = Service()
        router.setName("router")
        router.pollers = SimpleNamespace(pollers={  # type: ignore[attr-defined]
            f"m{n}": SimpleNamespace(mailbox=SimpleNamespace(interval=i)) for n, i in enumerate(intervals)})
        router.setServiceParent(root)
    return root


def _get(health: Health) -> tuple[int, str]:
    request = DummyRequest([b""])
    HealthResource(health).render_GET(request)
    assert request.finished
    return request.responseCode or 200, b"".join(request.written).decode()


@pytest.fixture(autouse=True)
def no_progress_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "last_cycle", None)


def test_router_stuck_after_the_intervals_without_a_completed_poll(sqlite_store: Store) -> None:
    config = parse_config({"metrics": {"listen": "tcp:9464:interface=127.0.0.1", "stuck_after_intervals": 3}})
    clock = Clock()
    clock.advance(1000)
    health = Health(config, sqlite_store, clock, _root(30.0, 10.0))
    assert _get(health) == (200, "ok\n")
    clock.advance(29)
    metrics.get().cycle(clock.seconds())  # a poll completed (NullMetrics keeps the time too)
    clock.advance(30)
    assert _get(health) == (200, "ok\n")
    clock.advance(1)
    assert _get(health) == (503, "router stuck: no mailbox poll completed for 31s (more than 30s)\n")
    metrics.get().cycle(clock.seconds())
    assert _get(health) == (200, "ok\n")


def test_no_router_is_never_stuck(sqlite_store: Store) -> None:
    clock = Clock()
    health = Health(parse_config({}), sqlite_store, clock, _root())
    clock.advance(10_000)
    assert _get(health) == (200, "ok\n")


def test_a_store_that_fails_or_hangs_is_unreachable(tmp_path: Path) -> None:
    config = parse_config({"metrics": {"store_timeout": 2.0}})
    clock = Clock()
    missing = Store(make_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'abook.sqlite3'}"))
    code, body = _get(Health(config, missing, clock, _root()))
    assert code == 503 and body.startswith("store unreachable: unable to open database file")

    runner = _Never()
    hung = Store(make_engine(f"sqlite:///{tmp_path / 'abook.sqlite3'}"), runner)
    health = Health(config, hung, clock, _root())
    first, second = DummyRequest([b""]), DummyRequest([b""])
    HealthResource(health).render_GET(first)
    HealthResource(health).render_GET(second)  # shares the check in hand
    assert not first.finished and not second.finished
    clock.advance(2.0)
    for request in (first, second):
        assert request.finished and request.responseCode == 503
        assert b"".join(request.written) == b"store unreachable: no answer within 2s\n"
    third = DummyRequest([b""])
    HealthResource(health).render_GET(third)
    clock.advance(2.0)
    assert third.responseCode == 503
    assert runner.calls == 1  # the hung SELECT 1 is not queued again at every probe
