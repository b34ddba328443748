"""Sync leases on a real (SQLite) store: one holder at a time, the shared due time, expiry moves a dead
holder's user on, renewal tells a holder it lost the lease; two services on one store never sync one user
at once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from twisted.internet.task import Clock

from abook.config.sync import SyncConfig
from abook.store.daemons import daemons_txn
from abook.store.sync_leases import claim_sync_txn, release_sync_txn, renew_sync_txn, sync_leases_txn
from abook.sync.service import SyncService
from abook.threads import SyncRunner
from tests.unit.sync.world import World

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_one_holder_at_a_time_and_an_expired_lease_moves(world: World) -> None:
    paul = world.ids["paul"]
    with world.store.transaction() as s:
        assert claim_sync_txn(s, paul, "a", T0, 30).claimed
        refused = claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=10), 30)
        assert (refused.claimed, refused.retry_at) == (False, T0 + timedelta(seconds=30))
        assert sync_leases_txn(s, T0 + timedelta(seconds=10)) == {"a": ["paul"]}
        (daemon,) = daemons_txn(s, T0 + timedelta(seconds=10))  # abook status: a holder without a heartbeat
        assert (daemon.id, daemon.leases) == ("a", ("sync:paul",))
        assert renew_sync_txn(s, (paul,), "a", T0 + timedelta(seconds=20), 30) == ()
        assert not claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=40), 30).claimed  # renewed to 50 s
        # "a" died: once its lease has run out, "b" takes the user; "a" finds out at its next renewal
        assert claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=51), 30).claimed
        assert renew_sync_txn(s, (paul,), "a", T0 + timedelta(seconds=52), 30) == (paul,)


def test_the_due_time_is_shared_and_sync_now_ignores_it(world: World) -> None:
    paul = world.ids["paul"]
    with world.store.transaction() as s:
        assert claim_sync_txn(s, paul, "a", T0, 30).claimed
        release_sync_txn(s, paul, "a", T0 + timedelta(seconds=900))
        refused = claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=60), 30)
        assert (refused.claimed, refused.retry_at) == (False, T0 + timedelta(seconds=900))
        assert claim_sync_txn(s, paul, "cli", T0 + timedelta(seconds=60), 30, due_only=False).claimed
        release_sync_txn(s, paul, "cli", None)  # the schedule stays
        assert not claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=61), 30).claimed
        assert claim_sync_txn(s, paul, "b", T0 + timedelta(seconds=900), 30).claimed


class Held:
    """A mail runner whose calls wait until released: a sync stays in hand."""

    def __init__(self) -> None:
        self.waiting: list = []

    def run(self, f, *args, **kw):  # type: ignore[no-untyped-def]
        from twisted.internet import defer

        d: defer.Deferred = defer.Deferred()
        self.waiting.append((d, f, args, kw))
        return d

    def release(self) -> None:
        while self.waiting:
            d, f, args, kw = self.waiting.pop(0)
            d.callback(f(*args, **kw))


def test_two_services_on_one_store_never_sync_a_user_at_once(world: World) -> None:
    world.contact(owner="paul")
    cfg = SyncConfig.model_validate({"enabled": True, "interval": 900.0, "lease_seconds": 30,
                                     "mailbox": {"type": "dav", "contacts_url": "http://unused/{user}/"}})
    clock, held = Clock(), Held()
    clock.advance(T0.timestamp())
    services = [SyncService(cfg, world.store, clock, mail=held if name == "a" else SyncRunner(),
                            mailbox_factory=lambda user: world.mailboxes[user.name], tick=5.0, holder=name)
                for name in ("a", "b")]
    for service in services:
        service.startService()
    a, b = services
    paul = world.ids["paul"]
    a.start(paul)  # a's sync waits on its mailbox
    assert a.leased == {paul}
    b.start(paul)
    assert b.leased == set() and world.mailboxes["paul"].items["contact"] == {}
    assert b.due[paul] == (T0 + timedelta(seconds=30)).timestamp()  # asks again when a's lease would run out
    clock.advance(10)  # a renews its lease while the sync runs
    b.start(paul)
    assert b.leased == set()
    held.release()
    assert len(world.mailboxes["paul"].items["contact"]) == 1 and a.leased == set()
    b.start(paul)  # synced a moment ago by a: not due for b either
    assert b.due[paul] == a.due[paul]
    for service in services:
        service.stopService()


def test_a_sync_whose_lease_was_taken_stops_before_its_next_write(world: World) -> None:
    from sqlalchemy import update

    from abook.store.sync_leases import SyncLease
    from abook.store.sync_links import SyncIssue

    world.contact(owner="paul")
    cfg = SyncConfig.model_validate({"enabled": True, "interval": 900.0, "lease_seconds": 30,
                                     "mailbox": {"type": "dav", "contacts_url": "http://unused/{user}/"}})
    clock, held = Clock(), Held()
    clock.advance(T0.timestamp())
    a = SyncService(cfg, world.store, clock, mail=held, mailbox_factory=lambda user: world.mailboxes[user.name],
                    tick=5.0, holder="a")
    a.startService()
    paul = world.ids["paul"]
    a.start(paul)
    assert a.leased == {paul}
    with world.store.transaction() as s:  # "a" stalled past its lease; "b" took the user
        s.execute(update(SyncLease).where(SyncLease.systemuser_id == paul).values(holder="b"))
    a.renew()
    assert a.lost == {paul}
    held.release()
    assert world.mailboxes["paul"].items["contact"] == {}  # nothing written by the stale holder
    assert a.leased == set() and a.failures == {}
    with world.store.transaction() as s:
        assert s.query(SyncIssue).count() == 0
        assert s.get(SyncLease, paul).holder == "b"  # its release did not free b's lease
    a.stopService()
