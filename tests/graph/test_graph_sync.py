"""Replay: the sync engine keeping CRM contacts in step with Exchange Online contacts through the Graph
backend and the responder: created once, an unchanged sync only reads the delta, an Outlook edit comes
back, a lost delta state means a full listing without duplicates; config builds the backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from abook.config import parse_config
from abook.mailbox.pim.graph import GraphPimStore
from abook.mailbox.pim.graph_events import Window
from abook.store import models
from abook.store.users import SyncUser
from abook.sync.setup import open_mailbox_blocking
from tests.fixtures.graph import CLIENT_ID, TENANT, GraphServer
from tests.graph.event_routes import events
from tests.graph.pim_harness import GraphPimHarness, RecordedGraphPim
from tests.graph.todo_routes import tasks
from tests.unit.sync.conftest import new_world
from tests.unit.sync.machine import SyncMachine
from tests.unit.sync.world import World


@pytest.fixture
def graph_world(graph_server: GraphServer, tmp_path: Path) -> World:
    box = GraphPimHarness(graph_server)
    w = new_world(tmp_path, mailboxes={"paul": box})
    with w.store.transaction() as s:
        s.get(models.SystemUser, w.ids["paul"]).internalemailaddress = box.address
    return w


def test_contacts_sync_through_graph(graph_world: World, graph_server: GraphServer) -> None:
    w, r = graph_world, graph_server.responder
    box = w.mailboxes["paul"]
    cid = w.contact(emailaddress1="ann@example.org", telephone1="+1 555 0100", description="two\nlines")
    w.sync("paul", entities=("contact",))
    (contact,) = r.store.in_folder(box.address, "contacts")
    assert contact.data["personalNotes"] == "two\nlines"
    mark = len(r.requests)
    reports = w.sync("paul", entities=("contact",))
    assert reports["contact"].writes == 0
    assert {x.split("?")[0] for x in r.since(mark) if not x.endswith("/token")} == {
        f"GET /users/{box.address}/contactFolders/contacts/contacts/delta"}  # reads only the delta
    box.user_update("contact", contact.id, {"jobtitle": "Chief"})  # Outlook edits it
    w.sync("paul", entities=("contact",))
    assert w.crm_contact(cid).jobtitle == "Chief"
    r.expire_delta(box.address)
    report = w.sync("paul", entities=("contact",))["contact"]
    assert report.full_listing and report.writes == 0
    assert len(r.store.in_folder(box.address, "contacts")) == 1
    w.store.dispose()


@pytest.fixture
def pim_world(graph_server: GraphServer, tmp_path: Path) -> World:
    """Paul's mailbox on the responder, its calendar window moving with the world's clock."""
    clock: list[World] = []
    box = GraphPimHarness(graph_server, lambda: clock[0].now)
    w = new_world(tmp_path, mailboxes={"paul": box})
    clock.append(w)
    with w.store.transaction() as s:
        s.get(models.SystemUser, w.ids["paul"]).internalemailaddress = box.address
    return w


def test_appointments_sync_through_graph_and_leaving_the_window_deletes_nothing(pim_world: World,
                                                                                graph_server: GraphServer) -> None:
    w, r = pim_world, graph_server.responder
    box = w.mailboxes["paul"]
    aid = w.appointment("paul", attendees=("laura",), subject="Review", location="Room 1")
    w.sync("paul", entities=("appointment",))
    (event,) = [e for e in events(r).values() if e.mailbox == box.address]
    assert event.data["subject"] == "Review" and [a["emailAddress"]["address"] for a in event.data["attendees"]] == [
        "laura@example.com"]  # a future meeting the organiser's sync creates: invited
    mark = len(r.requests)
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0
    assert {x.split("?")[0] for x in r.since(mark) if not x.endswith("/token")} == {
        f"GET /users/{box.address}/calendarView/delta"}  # an unchanged sync reads the delta only
    box.user_update("appointment", event.id, {"subject": "Review (moved)"})  # Outlook edits it
    w.sync("paul", entities=("appointment",))
    assert w.activity(aid).subject == "Review (moved)"
    far = w.now + timedelta(days=800)  # Outlook moves it far beyond the window: Graph reports it removed
    box.user_update("appointment", event.id, {"when": f"{far:%Y-%m-%dT%H:00:00Z}/{far + timedelta(hours=1):%Y-%m-%dT%H:00:00Z}"})
    report = w.sync("paul", entities=("appointment",))["appointment"]
    a = w.activity(aid)
    assert a is not None and a.scheduledstart == far.replace(minute=0, second=0, microsecond=0), report.actions
    w.edit_activity(aid, scheduledstart=w.now + timedelta(days=2), scheduledend=w.now + timedelta(days=2, hours=1))
    w.sync("paul", entities=("appointment",))  # back inside the window
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0  # (the delta has seen abook's write)
    w.now += timedelta(days=400)  # the window moves on: the meeting is now before its start
    report = w.sync("paul", entities=("appointment",))["appointment"]
    assert report.writes == 0 and w.activity(aid) is not None and not event.deleted
    assert [link.state for link in w.links("paul", "appointment")] == ["linked"]
    r.expire_delta(box.address)  # Exchange forgot the delta state: a fresh round, nothing duplicated or deleted
    report = w.sync("paul", entities=("appointment",))["appointment"]
    assert report.writes == 0 and report.token_saved
    assert len([e for e in events(r).values() if e.mailbox == box.address and not e.deleted]) == 1
    w.store.dispose()


def test_tasks_sync_through_graph(pim_world: World, graph_server: GraphServer) -> None:
    w, r = pim_world, graph_server.responder
    box = w.mailboxes["paul"]
    tid = w.task("paul", subject="Send offer", description="by mail")
    w.sync("paul", entities=("task",))
    (task,) = [t for t in tasks(r).values() if t.mailbox.startswith(box.address + "|")]
    assert task.data["title"] == "Send offer" and task.linked[0]["externalId"] == tid
    assert w.sync("paul", entities=("task",))["task"].writes == 0
    box.user_update("task", task.id, {"status": "completed"})  # completed in To Do
    w.sync("paul", entities=("task",))
    a = w.activity(tid)
    assert a is not None and a.statecode == 1
    r.expire_delta(box.address)
    report = w.sync("paul", entities=("task",))["task"]
    assert report.full_listing and report.writes == 0
    assert len([t for t in tasks(r).values() if t.mailbox.startswith(box.address + "|")]) == 1
    w.store.dispose()


def test_sync_mailbox_of_type_graph_is_built_for_each_user(graph_server: GraphServer) -> None:
    r = graph_server.responder
    config = parse_config({"sync": {"mailbox": {"type": "graph", "ca_file": graph_server.ca_file,
                                                "calendar_days_back": 10, "calendar_days_ahead": 90,
                                                "calendar_window_step_days": 1, "graph": {
        "tenant": TENANT, "client_id": CLIENT_ID, "client_secret": "x", "authority_host": r.base,
        "graph_url": r.graph_url}}}})
    box = open_mailbox_blocking(config.sync.mailbox, SyncUser("u1", "paul", "paul@example.com"))
    assert isinstance(box, GraphPimStore) and box.address == "paul@example.com" and box.entities == ("contact", "appointment", "task")
    assert box.events.window == Window(back=10, ahead=90, step=1)


class GraphSyncMachine(SyncMachine):
    server: GraphServer = None  # type: ignore[assignment]
    make_mailbox = classmethod(lambda cls, user: RecordedGraphPim(cls.server))  # type: ignore[assignment]


GraphSyncMachine.TestCase.settings = settings(max_examples=8, stateful_step_count=15, deadline=None,
                                              derandomize=True, database=None,  # replayable in CI: test_machine.py
                                              suppress_health_check=list(HealthCheck))


def test_sync_machine_on_graph_replay(graph_server: GraphServer) -> None:
    """The sync state machine (random edits on both sides, failing writes, lost delta states, crashes)."""
    GraphSyncMachine.server = graph_server
    GraphSyncMachine.TestCase().runTest()


def test_sync_mailbox_of_type_graph_needs_its_table() -> None:
    from abook.errors import ConfigError

    with pytest.raises(ConfigError, match=r'type "graph" needs a \[sync.mailbox.graph\] table'):
        parse_config({"sync": {"mailbox": {"type": "graph"}}})


def test_the_regarding_record_shows_in_graph_events_and_loops_nothing(pim_world: World, graph_server: GraphServer) -> None:
    from tests.unit.sync.test_regarding import _account

    w, r = pim_world, graph_server.responder
    box = w.mailboxes["paul"]
    acme = _account(w, "Acme Ltd")
    meeting = w.appointment(description="Agenda:\n1. prices", regarding_type="account", regarding_id=acme)
    w.sync("paul", entities=("appointment",))
    (event,) = [e for e in events(r).values() if e.mailbox == box.address]
    assert event.data["body"]["content"] == "Agenda:\n1. prices\n\nRegarding: Acme Ltd"
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0  # no loop
    box.user_update("appointment", event.id, {"description": "Agenda:\n1. prices\n2. dates"})  # Outlook
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 1
    a = w.activity(meeting)
    assert a is not None and a.description == "Agenda:\n1. prices\n2. dates"  # without abook's line
    assert event.data["body"]["content"] == "Agenda:\n1. prices\n2. dates\n\nRegarding: Acme Ltd"
    w.edit_activity(meeting, regarding_id=_account(w, "Other GmbH"))
    w.sync("paul", entities=("appointment",))
    assert event.data["body"]["content"] == "Agenda:\n1. prices\n2. dates\n\nRegarding: Other GmbH"
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0
    w.store.dispose()


def test_a_tracked_outlook_series_comes_in_one_crm_appointment_per_occurrence(pim_world: World,
                                                                              graph_server: GraphServer) -> None:
    w, r = pim_world, graph_server.responder
    box = w.mailboxes["paul"]
    created = box.client.json("POST", f"/users/{box.address}/calendar/events", json={
        "subject": "Stand-up", "start": {"dateTime": "2026-06-22T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-06-22T09:15:00", "timeZone": "W. Europe Standard Time"},
        "categories": ["Tracked to CRM"],
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                       "range": {"type": "numbered", "startDate": "2026-06-22", "numberOfOccurrences": 3}}})
    report = w.sync("paul", entities=("appointment",))["appointment"]
    assert not report.failed, report.failed
    links = [link for link in w.links("paul", "appointment") if link.state == "linked"]
    records = sorted((w.activity(link.crm_id) for link in links), key=lambda a: a.scheduledstart)
    uid = events(r)[created["id"]].uid
    assert [(a.subject, a.seriesid, f"{a.scheduledstart:%m-%d %H:%M}") for a in records] == [
        ("Stand-up", uid, "06-22 07:00"), ("Stand-up", uid, "06-29 07:00"), ("Stand-up", uid, "07-06 07:00")]
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0
    w.store.dispose()


def test_an_event_deleted_while_the_delta_state_was_lost_is_seen_as_deleted(pim_world: World,
                                                                            graph_server: GraphServer) -> None:
    """A fresh calendarView round reports no deletions (it covers the window, not the calendar): after a 410
    the engine looks up every linked event the round did not show, so the one Outlook deleted meanwhile
    follows the delete table (the organiser's pending meeting goes from the CRM) and the others stay."""
    w, r = pim_world, graph_server.responder
    box = w.mailboxes["paul"]
    kept = w.appointment("paul", subject="Kept")
    far = w.appointment("paul", subject="Far", start=w.now + timedelta(days=700))  # beyond the window
    gone = w.appointment("paul", subject="Gone")
    w.sync("paul", entities=("appointment",))
    w.sync("paul", entities=("appointment",))  # a later delta has listed abook's creates: nothing left to verify
    assert not any(link.verify for link in w.links("paul", "appointment"))
    by_subject = {e.data["subject"]: e for e in events(r).values() if e.mailbox == box.address}
    r.expire_delta(box.address)
    box.delete_blocking("appointment", by_subject["Gone"].id, None)  # Outlook deletes it meanwhile
    report = w.sync("paul", entities=("appointment",))["appointment"]
    assert report.counts.get("delete_crm") == 1, report.actions
    assert w.activity(gone) is None and w.activity(kept) is not None and w.activity(far) is not None
    assert sorted(link.crm_id for link in w.links("paul", "appointment")) == sorted([kept, far])
    assert w.sync("paul", entities=("appointment",))["appointment"].writes == 0
    w.store.dispose()
