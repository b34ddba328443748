"""Replay: a real ``abook serve`` polling an Exchange Online mailbox through Graph (the responder in this
process), killed at every step of a poll, tracks each message exactly once and marks it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from abook.store.models import Email, MailboxState
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.graph.harness import CATEGORY, GraphHarness
from tests.helpers import wait_until
from tests.integration.test_router_imap import _counts, _init, _serve, _stop
from tests.unit.routing.conftest import message, seed_org


def _table(h: GraphHarness, server: GraphServer) -> str:
    r = h.responder
    return (f'[[mailboxes]]\nname = "jane"\ntype = "graph"\nowner = "jane.doe"\nbatch_size = 2\ninterval = 0.3\n'
            f'ca_file = "{server.ca_file}"\n[mailboxes.graph]\ntenant = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
            f'client_secret = "{CLIENT_SECRET}"\nmailbox = "{h.address}"\nauthority_host = "{r.base}"\n'
            f'graph_url = "{r.graph_url}"\n')


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after_fetch", "after_commit", "before_mark", "after_mark"])
def test_daemon_killed_at_each_step_tracks_each_graph_message_exactly_once(tmp_path: Path, graph_server: GraphServer,
                                                                           step: str) -> None:
    h = GraphHarness(graph_server)
    cfg, store = _init(tmp_path, _table(h, graph_server))
    seed_org(store)
    for n in range(5):
        h.deliver(message(n))
    crashed = _serve(cfg, tmp_path / "crash.log", crash_at=step)
    assert crashed.wait(timeout=60) == 1, (tmp_path / "crash.log").read_text()
    assert _counts(store) == ((0 if step == "after_fetch" else 2), 0)
    daemon = _serve(cfg, tmp_path / "run.log")
    inbox = h.responder.store.in_folder(h.address, "inbox")
    try:
        wait_until(lambda: _counts(store) == (5, 5), timeout=60, what="5 messages tracked and marked")
        wait_until(lambda: all(CATEGORY in m.categories for m in inbox), timeout=30,
                   what="every message to carry the tracked category")
    finally:
        _stop(daemon)
    assert len(inbox) == 5 and not any(m.is_read for m in inbox)
    with store.transaction() as s:
        assert s.scalar(select(func.count(func.distinct(Email.message_id)))) == 5
        row = s.get(MailboxState, "jane")
        assert (row.messages_tracked, row.lease_holder, row.last_error) == (5, None, None)
        assert "$deltatoken" in row.cursor
    assert CLIENT_SECRET not in (tmp_path / "run.log").read_text() + (tmp_path / "crash.log").read_text()
