"""SIGHUP's mailbox reload on a Clock: removed mailboxes stop, changed ones restart with their new settings,
added ones start, the others go on undisturbed."""

from __future__ import annotations

from abook.config import parse_config
from tests.unit.routing.conftest import message
from tests.unit.routing.test_poller import JANE, _activities

SUPPORT = {"name": "support", "type": "imap", "owner": "queue:support@example.com", "interval": 60.0}
BOB = {"name": "bob", "type": "imap", "owner": "bob", "interval": 60.0}


def test_reload_stops_removed_restarts_changed_and_starts_added_mailboxes(store, org, make_router) -> None:
    router = make_router([JANE, SUPPORT])
    jane, support = router.service.pollers["jane"], router.service.pollers["support"]
    new = parse_config({"mailboxes": [{**JANE, "interval": 10.0}, BOB]}).mailboxes
    results: list = []
    router.service.reload(new).addBoth(results.append)
    assert results == ["mailboxes: 1 added, 1 removed, 1 changed"]
    assert sorted(router.service.pollers) == ["bob", "jane"]
    assert router.service.pollers["jane"] is not jane and router.service.pollers["jane"].mailbox.interval == 10.0
    assert not support._loop.running and not jane._loop.running  # noqa: SLF001
    router.sources["jane"].deliver(message(1))
    router.advance(10)  # the new interval is in force
    assert _activities(store) == 1
    router.stop()
