"""Sync through the EWS backend, replayed (tests/ews/pim_responder.py): impersonation, reads only when
nothing changed, invitations and cancellations only from the organiser's sync of a future meeting, a lost
sync state, and the state machine with a few examples."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from abook.store import models
from tests.ews.pim_harness import EwsPimHarness
from tests.ews.pim_responder import PimResponder
from tests.unit.sync.conftest import new_world
from tests.unit.sync.machine import SyncMachine
from tests.unit.sync.world import World


@pytest.fixture
def ews_world(ews_pim_responder: PimResponder, tmp_path: Path) -> World:
    boxes = {u: EwsPimHarness(ews_pim_responder) for u in ("paul", "laura")}
    w = new_world(tmp_path, mailboxes=boxes)
    with w.store.transaction() as s:  # each user's mailbox is their Exchange address
        for name, box in boxes.items():
            s.get(models.SystemUser, w.ids[name]).internalemailaddress = box.address
    return w


def _since(responder: PimResponder, mark: int) -> list[str]:
    return [r.operation for r in responder.requests[mark:]]


def test_a_sync_impersonates_the_user_and_an_unchanged_one_only_reads(ews_world: World,
                                                                     ews_pim_responder: PimResponder) -> None:
    w = ews_world
    cid = w.contact(emailaddress1="ann@example.org", telephone1="+1 555 0100", description="two\nlines")
    w.task(subject="Send offer")
    mark = len(ews_pim_responder.requests)
    w.sync("paul")
    ops = _since(ews_pim_responder, mark)
    assert ops.count("CreateItem") == 2
    assert {r.impersonated for r in ews_pim_responder.requests[mark:]} == {w.mailboxes["paul"].address}
    mark = len(ews_pim_responder.requests)
    reports = w.sync("paul")
    assert all(r.writes == 0 for r in reports.values())
    assert set(_since(ews_pim_responder, mark)) == {"SyncFolderItems"}  # reads only, and only listings
    (item,) = ews_pim_responder.items_in(w.mailboxes["paul"].address, "contacts")
    ews_pim_responder.user_update(item.id, "JobTitle", "Chief")  # Outlook edits it
    w.sync("paul", entities=("contact",))
    assert w.crm_contact(cid).jobtitle == "Chief"
    w.store.dispose()


def test_only_the_organisers_sync_of_a_future_meeting_notifies(ews_world: World, ews_pim_responder: PimResponder) -> None:
    w = ews_world
    future = w.appointment(organiser="paul", attendees=("laura",))
    w.appointment(organiser="paul", attendees=("laura",), start=w.now - timedelta(days=2))
    mark = len(ews_pim_responder.notifications)
    w.sync("paul", entities=("appointment",))
    w.sync("laura", entities=("appointment",))
    sent = ews_pim_responder.notifications[mark:]
    assert sorted(mode for op, _, mode in sent if op == "create") == ["SendToAllAndSaveCopy", "SendToNone"]
    assert w.mailboxes["laura"].writes() == []  # the attendee's sync creates nothing
    w.delete(models.Activity, future)
    w.sync("paul", entities=("appointment",))
    assert [mode for op, _, mode in ews_pim_responder.notifications[mark:] if op == "delete"] == ["SendToAllAndSaveCopy"]
    w.store.dispose()


def test_a_rejected_sync_state_means_a_full_listing_without_duplicates(ews_world: World,
                                                                       ews_pim_responder: PimResponder) -> None:
    w = ews_world
    for i in range(3):
        w.contact(lastname=f"C{i}")
    w.sync("paul", entities=("contact",))
    ews_pim_responder.forget_states()
    report = w.sync("paul", entities=("contact",))["contact"]
    assert report.full_listing and report.writes == 0
    assert len(ews_pim_responder.items_in(w.mailboxes["paul"].address, "contacts")) == 3
    w.store.dispose()


class EwsSyncMachine(SyncMachine):
    responder: PimResponder = None  # type: ignore[assignment]
    make_mailbox = classmethod(lambda cls, user: EwsPimHarness(cls.responder))  # type: ignore[assignment]


EwsSyncMachine.TestCase.settings = settings(max_examples=8, stateful_step_count=15, deadline=None,
                                            derandomize=True, database=None,  # replayable in CI: test_machine.py
                                            suppress_health_check=list(HealthCheck))


def test_sync_machine_on_ews_replay(ews_pim_responder: PimResponder) -> None:
    EwsSyncMachine.responder = ews_pim_responder
    EwsSyncMachine.TestCase().runTest()
