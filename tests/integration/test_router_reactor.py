"""The router on the real reactor with its real thread pools: stopping mid-poll finishes the work in hand."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest_twisted
from sqlalchemy import func, select
from twisted.internet import defer, reactor

from abook.config import parse_config
from abook.mailbox.interfaces import MessageRef
from abook.routing.service import RouterService
from abook.store import Store, make_engine, schema
from abook.store.models import Activity, MailboxState
from abook.tap import AbookService
from abook.threads import ThreadPoolRunner, ThreadPoolService
from tests.fakes.mail_source import FakeMailSource
from tests.unit.routing.conftest import message, seed_org


class GatedSource(FakeMailSource):
    """Fetches wait at a gate; the first one tells the reactor thread it has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.entered: defer.Deferred = defer.Deferred()
        self.gate = threading.Event()
        self._told = False

    def fetch_blocking(self, ref: MessageRef, limit: int | None = None) -> bytes:
        if not self._told:
            self._told = True
            reactor.callFromThread(self.entered.callback, None)  # type: ignore[attr-defined]
        assert self.gate.wait(30), "the test never opened the gate"
        return super().fetch_blocking(ref)


@pytest_twisted.ensureDeferred
async def test_stop_during_a_poll_commits_the_batch_then_stops_the_pools(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'abook.sqlite3'}"
    setup = Store(make_engine(url))
    schema.upgrade(setup.engine)
    seed_org(setup)
    config = parse_config({"store": {"url": url},
                           "mailboxes": [{"name": "jane", "type": "imap", "owner": "jane.doe", "interval": 0.1}]})
    source = GatedSource()
    for n in range(3):
        source.deliver(message(n))
    db_pool = ThreadPoolService("db", 1, 2)
    store = Store(make_engine(url), ThreadPoolRunner(reactor, db_pool.pool))
    root = AbookService(config, store, reactor)
    db_pool.setServiceParent(root)
    router = RouterService(config, store, reactor, source_factory=lambda mb: source)
    router.setServiceParent(root)
    root.startService()
    await source.entered
    stopping = root.stopService()  # SIGTERM arrives while a fetch is in hand
    source.gate.set()
    await stopping
    assert not router.pool.pool.started and not db_pool.pool.started
    with setup.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Activity)) == 3
        row = s.get(MailboxState, "jane")
        assert (row.cursor, row.lease_holder) == ("3", None)
    assert source.tracked == {1, 2, 3} and source.closed == 1
    setup.dispose()
