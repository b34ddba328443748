"""docs/sync.md section 3, the delete table, through the Graph backend and the responder: the same cases and
expectations as tests/unit/sync/test_delete_table.py (written from the table), with contacts, Exchange
Online events and To Do tasks instead of the in-memory mailbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from abook.store import models
from abook.store.enums import ActivityState
from tests.fixtures.graph import GraphServer
from tests.graph.event_routes import events
from tests.graph.pim_harness import RecordedGraphPim
from tests.unit.sync.conftest import new_world
from tests.unit.sync.test_delete_table import CASES, expected
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
    owner = "paul" if role == "owner" else "laura"
    shift = timedelta(days=2) if when == "future" else -timedelta(days=2)
    if entity == "contact":
        with store.transaction() as s:
            s.get(models.SystemUser, w.ids["paul"]).local_filter_scope = "organisation"
        rid = w.contact(owner=owner)
        model = models.Contact
    elif entity == "appointment":
        statecode = int(ActivityState.completed if state == "completed" else ActivityState.scheduled)
        start = w.now + shift
        rid = w.appointment(organiser=owner, attendees=("paul",) if role == "other" else
                            ("x@elsewhere.example",), start=start, statecode=statecode)
        model = models.Activity
        if role == "other":  # the attendee's copy arrives from the organiser's server, with its UID
            mailbox.user_create("appointment", {"subject": "Meeting", "when": f"{start:%Y-%m-%dT%H:%M:%SZ}/"
                                f"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"}, uid=f"{rid}@abook")
    else:
        statecode = int(ActivityState.completed if state == "completed" else ActivityState.open)
        rid = w.task(owner="paul", statecode=statecode, scheduledend=w.now + shift)
        model = models.Activity
    w.sync("paul", entities=(entity,))
    (link,) = [link for link in w.links("paul", entity) if link.state == "linked"]
    assert link.crm_id == rid
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
