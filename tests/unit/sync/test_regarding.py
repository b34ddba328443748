"""The CRM's regarding record shown in mailbox items (docs/sync.md, "Regarding"): an appointment's and a
task's notes end with "Regarding: <name>"; the line is abook's, never read back (CRM -> mailbox only),
and it loops nothing: the notes the user edits come back without it, and a sync after a sync writes
nothing. ``regarding_scenario`` runs on every backend (memory here; Radicale and the EWS replay in
tests/integration/test_dav_regarding.py and tests/ews/test_pim_regarding.py)."""

from __future__ import annotations

from typing import Any, Callable

from abook.store import models
from tests.unit.sync.world import World

#: (mailbox, entity, item id) -> the notes as a mail client shows them
Notes = Callable[[Any, str, str], str]


def _account(world: World, name: str) -> str:
    with world.store.transaction() as s:
        a = models.Account(name=name, owner_id=world.ids["paul"], owningbusinessunit_id=world.unit)
        s.add(a)
        s.flush()
        return a.id


def _item(box: Any, entity: str) -> str:
    (item_id,) = box.items[entity]
    return item_id


def regarding_scenario(world: World, notes: Notes) -> None:
    box = world.mailboxes["paul"]
    acme = _account(world, "Acme Ltd")
    meeting = world.appointment(description="Agenda:\n1. prices", regarding_type="account", regarding_id=acme)
    task = world.task(subject="Send offer", regarding_type="account", regarding_id=acme)
    assert all(not r.failed for r in world.sync(entities=("appointment", "task")).values())
    event_id, task_id = _item(box, "appointment"), _item(box, "task")
    assert notes(box, "appointment", event_id) == "Agenda:\n1. prices\n\nRegarding: Acme Ltd"
    assert notes(box, "task", task_id) == "Regarding: Acme Ltd"
    assert box.values("appointment")[event_id]["description"] == "Agenda:\n1. prices"  # the line is not notes
    assert box.values("appointment")[event_id]["regarding"] == "Acme Ltd"

    box.calls.clear()
    reports = world.sync(entities=("appointment", "task"))
    assert all(r.writes == 0 for r in reports.values()) and not box.writes()  # no loop

    # the user edits the notes in the mailbox: the CRM gets them without abook's line, one write in all
    box.user_update("appointment", event_id, {"description": "Agenda:\n1. prices\n2. dates"})
    box.calls.clear()
    report = world.sync(entities=("appointment",))["appointment"]
    assert report.writes == 1 and not box.writes()
    assert world.activity(meeting).description == "Agenda:\n1. prices\n2. dates"
    assert notes(box, "appointment", event_id) == "Agenda:\n1. prices\n2. dates\n\nRegarding: Acme Ltd"
    assert world.sync(entities=("appointment",))["appointment"].writes == 0

    # the regarding record changes in the CRM: the line follows; the CRM's notes stay as they were
    other = _account(world, "Other GmbH")
    world.edit_activity(meeting, regarding_id=other)
    world.edit_activity(task, regarding_type=None, regarding_id=None)
    box.calls.clear()
    reports = world.sync(entities=("appointment", "task"))
    assert box.writes() == ["update", "update"] and all(not r.failed for r in reports.values())
    assert notes(box, "appointment", event_id) == "Agenda:\n1. prices\n2. dates\n\nRegarding: Other GmbH"
    assert notes(box, "task", task_id) == ""
    assert world.activity(meeting).description == "Agenda:\n1. prices\n2. dates"
    box.calls.clear()
    assert all(r.writes == 0 for r in world.sync(entities=("appointment", "task")).values()) and not box.writes()


def test_the_regarding_record_is_shown_in_memory_items(world: World) -> None:
    from abook.mailbox.pim.schema import with_regarding

    def notes(box: Any, entity: str, item_id: str) -> str:
        v = box.values(entity)[item_id]
        return with_regarding(v["description"], v["regarding"]) or ""

    regarding_scenario(world, notes)


def test_a_regarding_edited_in_the_mailbox_is_not_copied_back(world: World) -> None:
    box = world.mailboxes["paul"]
    acme = _account(world, "Acme Ltd")
    meeting = world.appointment(regarding_type="account", regarding_id=acme)
    world.sync(entities=("appointment",))
    item = _item(box, "appointment")
    box.user_update("appointment", item, {"regarding": "Someone else"})
    box.calls.clear()
    assert world.sync(entities=("appointment",))["appointment"].writes == 0
    got = world.activity(meeting)
    assert (got.regarding_type, got.regarding_id) == ("account", acme)
    other = _account(world, "Other GmbH")
    world.edit_activity(meeting, regarding_id=other)  # its own side's next change of it overwrites it
    world.sync(entities=("appointment",))
    assert box.values("appointment")[item]["regarding"] == "Other GmbH"
