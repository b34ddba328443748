"""docs/sync.md section 3, the delete table, through the Graph backend and the responder: the same cases and
expectations as tests/unit/sync/test_delete_table.py (written from the table), with contacts, Exchange
Online events and To Do tasks instead of the in-memory mailbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.store import models
from tests.fixtures.graph import GraphServer
from tests.graph.event_routes import events
from tests.graph.pim_harness import RecordedGraphPim
from tests.unit.sync.conftest import new_world
from tests.unit.sync.test_delete_table import CASES, expected, linked_case
from tests.unit.sync.world import World


@pytest.mark.parametrize("entity,side,role,state,when", CASES)
def test_delete_table_on_graph(graph_server: GraphServer, tmp_path: Path, entity: str, side: str, role: str,
                               state: str, when: str) -> None:
    clock: list[World] = []
    mailbox = RecordedGraphPim(graph_server)
    mailbox.events.clock = lambda: clock[0].now
    w = new_world(tmp_path, mailboxes={"paul": mailbox, "laura": RecordedGraphPim(graph_server)})
    clock.append(w)
    store = w.store
    with store.transaction() as s:
        s.get(models.SystemUser, w.ids["paul"]).internalemailaddress = mailbox.address
    rid, model, link = linked_case(w, mailbox, entity, role, state, when)
    if entity == "appointment" and role == "owner":  # Graph has no silent invite: attendees only when notifying
        invited = bool(events(graph_server.responder)[link.mailbox_id].data.get("attendees"))
        assert invited == (when == "future" and state == "open")  # only an open future meeting invites
    if side == "mailbox":
        mailbox.user_delete(entity, link.mailbox_id)
    else:
        w.delete(model, rid)
    w.sync("paul", entities=(entity,))
    with store.transaction() as s:
        crm_kept = s.get(model, rid) is not None
    mailbox_kept = link.mailbox_id in mailbox.items[entity]
    assert (crm_kept, mailbox_kept) == expected(entity, side, role, state, when)
    assert [link for link in w.links("paul", entity) if link.state == "linked"] == []
    store.dispose()
