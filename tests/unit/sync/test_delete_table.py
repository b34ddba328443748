"""docs/sync.md section 3, the delete table (invariant 12): entity x side x owner/organiser x open/completed x
past/future, each row a named case. The expectation is written from the table, not from the planner."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from abook.store import models
from abook.store.enums import ActivityState
from tests.unit.sync.conftest import new_world
from tests.unit.sync.world import World


def expected(entity: str, side: str, role: str, state: str, when: str) -> tuple[bool, bool]:
    """(CRM record still there, mailbox item still there) after the delete and a sync."""
    pending = state == "open" and when == "future"
    if side == "mailbox":
        if entity == "appointment":
            return not (role == "owner" and pending), False
        if entity == "task":
            return state != "open", False
        return True, False  # a contact deleted in the mailbox is kept in the CRM
    if entity == "contact":
        return False, role == "owner"  # removed from non-owners' mailboxes; the owner's copy stays
    if entity == "appointment":
        return False, not (role == "owner" and pending)
    return False, state == "completed"  # a task stays in the mailbox only if completed there


CASES = [
    pytest.param(*case, id="-".join(case))
    for case in itertools.product(("contact", "appointment", "task"), ("mailbox", "crm"), ("owner", "other"),
                                  ("open", "completed"), ("past", "future"))
    if not (case[0] == "task" and case[2] == "other")  # only the owner's tasks reach a mailbox
]


def linked_case(w: World, mailbox: Any, entity: str, role: str, state: str, when: str) -> tuple[str, Any, Any]:
    """One row's record, synced into Paul's ``mailbox`` and linked: (record id, its model, the link)."""
    owner = "paul" if role == "owner" else "laura"
    shift = timedelta(days=2) if when == "future" else -timedelta(days=2)
    if entity == "contact":
        with w.store.transaction() as s:
            s.get(models.SystemUser, w.ids["paul"]).local_filter_scope = "organisation"
        rid = w.contact(owner=owner)
        model: Any = models.Contact
    elif entity == "appointment":
        statecode = int(ActivityState.completed if state == "completed" else ActivityState.scheduled)
        start = w.now + shift
        rid = w.appointment(organiser=owner, attendees=("paul",) if role == "other" else ("x@elsewhere.example",),
                            start=start, statecode=statecode)
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
    return rid, model, link


@pytest.mark.parametrize("entity,side,role,state,when", CASES)
def test_delete_table(tmp_path: Path, entity: str, side: str, role: str, state: str, when: str) -> None:
    w = new_world(tmp_path)
    store = w.store
    mailbox = w.mailboxes["paul"]
    rid, model, link = linked_case(w, mailbox, entity, role, state, when)
    if side == "mailbox":
        mailbox.user_delete(entity, link.mailbox_id)
    else:
        w.delete(model, rid)
    mailbox.calls.clear()
    w.sync("paul", entities=(entity,))
    with store.transaction() as s:
        crm_kept = s.get(model, rid) is not None
    mailbox_kept = link.mailbox_id in mailbox.items[entity]
    assert (crm_kept, mailbox_kept) == expected(entity, side, role, state, when)
    assert [link for link in w.links("paul", entity) if link.state == "linked"] == []
    assert "invite" not in mailbox.calls
    cancelled = "cancel" in mailbox.calls
    assert cancelled == (entity == "appointment" and side == "crm" and role == "owner" and state == "open"
                         and when == "future")
    store.dispose()


def test_a_contact_deleted_in_the_mailbox_comes_back_when_the_crm_record_next_changes(world: World) -> None:
    cid = world.contact()
    world.sync()
    (item,) = world.mailboxes["paul"].items["contact"]
    world.mailboxes["paul"].user_delete("contact", item)
    world.sync()
    world.sync()
    assert not world.mailboxes["paul"].items["contact"]  # not re-created by itself
    world.edit_contact(cid, jobtitle="Promoted")
    world.sync()
    (values,) = world.mailboxes["paul"].values("contact").values()
    assert values["jobtitle"] == "Promoted"


def test_deleting_open_tasks_in_the_crm_is_configurable(tmp_path: Path) -> None:
    from abook.sync.model import Policy

    w = new_world(tmp_path, policies={"contact": Policy("contact"), "appointment": Policy("appointment"),
                               "task": Policy("task", delete_open_tasks=False)})
    store = w.store
    tid = w.task()
    w.sync(entities=("task",))
    (item,) = w.mailboxes["paul"].items["task"]
    w.mailboxes["paul"].user_delete("task", item)
    w.sync(entities=("task",))
    assert w.activity(tid) is not None
    store.dispose()
