"""Replay: Graph tasks through Microsoft To Do against the Graph responder: the default list, the CRM id in a
linkedResource, crash recovery by it, delta with removals and 410, what To Do keeps of a task."""

from __future__ import annotations

import json

import pytest

from abook.mailbox.errors import CursorInvalid, Unavailable
from tests.fixtures.graph import GraphServer
from tests.graph.pim_harness import GraphPimHarness
from tests.graph.todo_routes import tasks

TASK = {"subject": "Send offer", "startdate": "2026-07-01", "duedate": "2026-07-03T15:30:00Z", "percentcomplete": "40",
        "status": "open", "prioritycode": "high", "description": "by mail"}


@pytest.fixture
def pim(graph_server: GraphServer) -> GraphPimHarness:
    return GraphPimHarness(graph_server)


def test_tasks_go_to_the_default_list_with_the_crm_id_in_a_linked_resource(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("task", TASK, "crm-a")
    t = tasks(pim.responder)[a.id]
    assert t.mailbox == f"{pim.address}|AAMkTasks-{pim.address}"  # wellknownListName defaultList, not flagged
    assert [(x["applicationName"], x["externalId"]) for x in t.linked] == [("abook", "crm-a")]
    (item,) = pim.get_blocking("task", [a.id])
    assert item.crm_id == "crm-a"
    assert item.values == pim.project("task", TASK)
    assert item.values["duedate"] == "2026-07-03" and item.values["percentcomplete"] is None  # days; no percent


def test_an_interrupted_create_is_found_again_by_its_linked_resource(pim: GraphPimHarness) -> None:
    """The create went through but its answer was lost (a crash, a cut connection): the engine's recovery
    finds the task by the CRM id in its linkedResource instead of creating a second one."""
    for n in range(12):  # more than a page of the list
        pim.create_blocking("task", {"subject": f"other {n}"}, f"crm-{n}")
    pim.create_blocking("task", {"subject": "untracked"}, "")
    pim.responder.lose_reply("/todo/lists/")
    with pytest.raises(Unavailable):
        pim.create_blocking("task", TASK, "crm-lost")
    found = pim.find_blocking("task", "crm-lost")
    assert found is not None and tasks(pim.responder)[found.id].data["title"] == "Send offer"
    assert pim.find_blocking("task", "crm-nobody") is None
    assert sum(1 for t in tasks(pim.responder).values()
               if t.mailbox.startswith(pim.address) and t.data.get("title") == "Send offer") == 1


def test_a_crm_id_given_later_needs_what_app_only_permissions_refuse(pim: GraphPimHarness) -> None:
    """To Do lets an app-only client add linked resources only with the task: a CRM id given later (an
    Outlook task linked to a new CRM record) lives in abook's link table only, and the update goes through."""
    a = pim.create_blocking("task", {"subject": "from Outlook"}, "")
    listed = pim.update_blocking("task", a.id, a.etag, {"subject": "renamed"}, "crm-b")
    (item,) = pim.get_blocking("task", [a.id])
    assert (item.values["subject"], item.crm_id, item.etag) == ("renamed", None, listed.etag)
    assert any(r.path.endswith("/linkedResources") and r.method == "POST" for r in pim.responder.requests)


def test_status_importance_and_body_are_written_as_to_do_names_them(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("task", TASK, "crm-a")
    body = json.loads(next(r.body for r in reversed(pim.responder.requests) if r.method == "POST"))
    assert (body["status"], body["importance"], body["body"]) == (
        "inProgress", "high", {"contentType": "text", "content": "by mail"})
    assert body["dueDateTime"] == {"dateTime": "2026-07-03T00:00:00.0000000", "timeZone": "UTC"}
    b = pim.update_blocking("task", a.id, a.etag, {"status": "completed", "completed": "2026-07-02T09:00:00Z"})
    (item,) = pim.get_blocking("task", [a.id])
    assert tasks(pim.responder)[a.id].data["completedDateTime"]  # To Do sets it itself
    assert (item.etag, item.values["status"], item.values["percentcomplete"], item.values["completed"]) == (
        b.etag, "completed", "100", None)


def test_delta_lists_changes_and_removals_and_a_lost_state_is_refused(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("task", {"subject": "A"}, "crm-a")
    b = pim.create_blocking("task", {"subject": "B"}, "crm-b")
    first = pim.changes_blocking("task", None)
    assert {x.id for x in first.changed} == {a.id, b.id} and first.complete
    assert "/todo/lists/" in (first.token or "") and "$deltatoken" in (first.token or "")
    a2 = pim.update_blocking("task", a.id, a.etag, {"subject": "A2"})
    pim.delete_blocking("task", b.id, b.etag)
    changes = pim.changes_blocking("task", first.token)
    assert {x.id: x.etag for x in changes.changed} == {a.id: a2.etag} and changes.deleted == (b.id,)
    pim.forget_tokens()
    with pytest.raises(CursorInvalid):
        pim.changes_blocking("task", changes.token)


def test_to_do_tasks_do_not_show_the_regarding_record(pim: GraphPimHarness) -> None:
    """No property of abook's on a To Do task could say which line of the notes is abook's own."""
    values = {**TASK, "regarding": "Acme Ltd"}
    a = pim.create_blocking("task", values, "crm-a")
    (item,) = pim.get_blocking("task", [a.id])
    assert item.values == pim.project("task", values) and item.values["regarding"] is None
    assert tasks(pim.responder)[a.id].data["body"]["content"] == "by mail"
