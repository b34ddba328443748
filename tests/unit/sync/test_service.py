"""SyncService on a fake clock: every enabled user once per interval, spread, never two syncs of one user at
once, mailbox errors recorded and backed off, a tick that fails never stops the loop."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from abook.config.sync import SyncConfig
from abook.mailbox.errors import Unavailable
from abook.store import models
from abook.store.sync_links import sync_state_txn
from abook.sync.service import SyncService, spread
from abook.threads import SyncRunner
from tests.unit.sync.world import World


class HeldRunner:
    """Runs at once, except while ``hold`` is set: then each call waits for ``release``."""

    def __init__(self) -> None:
        self.hold = False
        self.waiting: list[tuple[defer.Deferred, Any, tuple]] = []

    def run(self, f: Any, *args: Any, **kw: Any) -> defer.Deferred:
        if not self.hold:
            return defer.maybeDeferred(f, *args, **kw)
        d: defer.Deferred = defer.Deferred()
        self.waiting.append((d, f, args))
        return d

    def release(self) -> None:
        self.hold = False
        while self.waiting:
            d, f, args = self.waiting.pop(0)
            d.callback(f(*args))


def _service(world: World, clock: Clock, mail: Any = None, **config: Any) -> SyncService:
    cfg = SyncConfig.model_validate({"enabled": True, "interval": 900.0, "rescan_interval": 60.0,
                                     "mailbox": {"type": "dav", "contacts_url": "http://unused/{user}/"}, **config})
    return SyncService(cfg, world.store, clock, mail=mail or SyncRunner(),
                       mailbox_factory=lambda user: world.mailboxes[user.name], tick=5.0)


def test_each_user_is_synced_once_per_interval_at_their_own_offset(world: World) -> None:
    world.contact(owner="paul")
    world.contact(owner="laura")
    clock = Clock()
    service = _service(world, clock)
    service.startService()
    offsets = {name: spread(world.ids[name], 900.0) for name in ("paul", "laura")}
    first = min(offsets.values())
    clock.advance(first + 5)
    early = min(offsets, key=offsets.get)  # type: ignore[arg-type]
    assert len(world.mailboxes[early].items["contact"]) == 1
    for _ in range(200):  # one interval in 5 s ticks
        clock.advance(5)
    assert all(len(world.mailboxes[n].items["contact"]) == 1 for n in ("paul", "laura"))
    runs = {n: world.mailboxes[n].calls.count("changes") for n in ("paul", "laura")}
    for _ in range(180):  # one more interval: one more run each (three entities each listed once)
        clock.advance(5)
    assert {n: world.mailboxes[n].calls.count("changes") - runs[n] for n in runs} == {"paul": 3, "laura": 3}
    service.stopService()
    assert not clock.getDelayedCalls()


def test_never_two_syncs_of_one_user_at_once(world: World) -> None:
    world.contact(owner="paul")
    with world.store.transaction() as s:
        s.get(models.SystemUser, world.ids["laura"]).sync_enabled = False
    clock, mail = Clock(), HeldRunner()
    service = _service(world, clock, mail=mail, interval=10.0, rescan_interval=1000.0)
    service.startService()
    mail.hold = True
    first = service.start(world.ids["paul"])
    assert service.start(world.ids["paul"]) is first  # the running one, not a second
    for _ in range(10):
        clock.advance(5)
    assert len(service.in_progress) == 1 and world.mailboxes["paul"].calls == []
    mail.release()
    assert service.in_progress == {}
    assert len(world.mailboxes["paul"].items["contact"]) == 1
    service.stopService()


def test_mailbox_errors_are_recorded_and_backed_off(world: World) -> None:
    world.contact(owner="paul")
    with world.store.transaction() as s:
        s.get(models.SystemUser, world.ids["laura"]).sync_enabled = False
    clock = Clock()
    service = _service(world, clock, interval=400.0, max_backoff=1000.0)
    box = world.mailboxes["paul"]
    box.fail_next("changes", Unavailable("dav.example.com: ConnectionError"), times=3)
    service.startService()
    clock.advance(spread(world.ids["paul"], 400.0) + 5)
    with world.store.transaction() as s:
        state = sync_state_txn(s, world.ids["paul"], "contact")
    assert "ConnectionError" in state.last_error and state.consecutive_failures == 1 and state.next_attempt_at
    tries = [clock.seconds()]
    while box.failures:
        before = box.calls.count("changes")
        clock.advance(5)
        if box.calls.count("changes") > before:
            tries.append(clock.seconds())
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    # interval / 4, then doubled, seen on a clock stepped by 5 s (the times are floats: allow their rounding)
    assert 100 - 1e-6 <= gaps[0] <= 110 and 200 - 1e-6 <= gaps[1] <= 210
    for _ in range(100):
        clock.advance(5)
    assert len(box.items["contact"]) == 1
    with world.store.transaction() as s:
        assert sync_state_txn(s, world.ids["paul"], "contact").last_error is None
    service.stopService()


def test_a_failing_tick_does_not_stop_the_loop(world: World) -> None:
    clock = Clock()
    service = _service(world, clock)
    calls = []

    def broken(now: float) -> defer.Deferred:
        calls.append(now)
        raise RuntimeError("the store went away")

    service._rescan = broken  # type: ignore[method-assign]
    service.startService()  # the first tick runs at once
    clock.advance(5)
    clock.advance(5)
    assert calls == [0.0, 5.0, 10.0]  # every tick tried again: the loop lives on
    assert service._loop is not None and service._loop.running
    service.stopService()


def test_the_daemon_runs_the_sync_service_only_when_enabled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from abook.config import parse_config
    from abook.store import make_engine, schema
    from abook.tap import build_service

    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    schema.upgrade(engine)
    engine.dispose()
    base = {"store": {"url": f"sqlite:///{tmp_path / 'a.sqlite3'}"}, "router": {"enabled": False},
            "ldap": {"listen": []}}
    off = build_service(parse_config(base), Clock())
    assert "sync" not in [s.name for s in off]
    on = build_service(parse_config({**base, "sync": {"enabled": True, "mailbox": {
        "type": "dav", "contacts_url": "https://dav.example.com/{user}/contacts/"}}}), Clock())
    (service,) = [s for s in on if s.name == "sync"]
    assert isinstance(service, SyncService) and service.engine.ldap_ids is not None
    off.store.dispose()
    on.store.dispose()
