"""Two daemons sharing one database never poll the same mailbox at once (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from abook.store import mailboxes as state
from abook.routing.batch import BatchSpec, Fetched, LeaseLost, commit_batch_txn
from abook.config.model import TrackingConfig
from abook.store.records import Owner
from tests.unit.routing.conftest import HeldRunner, message

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)


def test_lease_is_exclusive_until_released_or_expired(store, org) -> None:
    with store.transaction() as s:
        state.ensure_state_txn(s, "jane", "imap", Owner("systemuser", org.jane))
    with store.transaction() as s:
        assert state.claim_lease_txn(s, "jane", "daemon-a", T0, 300) is not None
    with store.transaction() as s:
        assert state.claim_lease_txn(s, "jane", "daemon-b", T0 + timedelta(seconds=10), 300) is None
    with store.transaction() as s:  # the holder renews
        assert state.claim_lease_txn(s, "jane", "daemon-a", T0 + timedelta(seconds=20), 300) is not None
    with store.transaction() as s:  # daemon-a died: its lease expires
        assert state.claim_lease_txn(s, "jane", "daemon-b", T0 + timedelta(seconds=400), 300) is not None
    spec = BatchSpec(mailbox="jane", holder="daemon-a", role="router", owner=Owner("systemuser", org.jane),
                     tracking=TrackingConfig(), lease_seconds=300, loop_max=20, loop_window=timedelta(minutes=10))
    with pytest.raises(LeaseLost):  # a late batch of the old holder commits nothing
        with store.transaction() as s:
            commit_batch_txn(s, spec, (Fetched("1", message(1)),), "1", T0 + timedelta(seconds=401))
    with store.transaction() as s:
        state.release_lease_txn(s, "jane", "daemon-b")
    with store.transaction() as s:
        assert state.claim_lease_txn(s, "jane", "daemon-a", T0 + timedelta(seconds=402), 300) is not None


def test_second_daemon_skips_a_mailbox_being_polled(store, org, make_router) -> None:
    """Daemon A's poll is in hand (its mail call has not returned); daemon B's ticks read nothing."""


    jane = {"name": "jane", "type": "imap", "owner": "jane.doe", "interval": 60.0}
    held = HeldRunner()
    a = make_router([jane], holder="daemon-a", start=False, mail=held)
    a.sources["jane"].deliver(message(1))
    a.service.startService()
    b = make_router([jane], holder="daemon-b", sources=a.sources)
    b.advance(60)
    assert a.sources["jane"].calls == []  # B never touched the mailbox
    held.release_all()
    assert a.sources["jane"].tracked == {1}
    b.advance(60)  # now B may poll it: nothing new, nothing twice
    assert a.sources["jane"].calls.count("fetch") == 1
    a.stop(release=held.release_all)
    b.stop()
