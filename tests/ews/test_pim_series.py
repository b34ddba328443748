"""An Exchange recurring master with a deleted and a modified occurrence, replayed (tests/ews/pim_responder.py),
comes into the CRM as one appointment per occurrence at exact times across DST; a second sync changes
nothing; a CRM edit of one occurrence becomes an exception through its OccurrenceItemId; an occurrence
deleted in the mailbox follows the delete table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from abook.store import models
from tests.ews.pim_harness import EwsPimHarness
from tests.ews.pim_responder import PimResponder, _t
from tests.unit.sync.conftest import new_world

BERLIN = ZoneInfo("Europe/Berlin")
WEEKLY = ("<t:WeeklyRecurrence><t:Interval>1</t:Interval><t:DaysOfWeek>Tuesday</t:DaysOfWeek>"
          "<t:FirstDayOfWeek>Monday</t:FirstDayOfWeek></t:WeeklyRecurrence>"
          "<t:NumberedRecurrence><t:StartDate>2026-10-13</t:StartDate><t:NumberOfOccurrences>5</t:NumberOfOccurrences>"
          "</t:NumberedRecurrence>")


def _crm(w) -> list[tuple[str, str, str, str | None]]:  # type: ignore[no-untyped-def]
    with w.store.transaction() as s:
        rows = s.scalars(select(models.Activity).where(models.Activity.activitytypecode == "appointment")
                         .order_by(models.Activity.scheduledstart))
        return [(r.scheduledstart.astimezone(BERLIN).strftime("%m-%d %H:%M"),
                 r.scheduledend.astimezone(BERLIN).strftime("%m-%d %H:%M"), r.subject, r.location) for r in rows]


def test_an_exchange_series_comes_in_one_record_per_occurrence(ews_pim_responder: PimResponder, tmp_path: Path) -> None:
    box = EwsPimHarness(ews_pim_responder)
    w = new_world(tmp_path, mailboxes={"paul": box, "laura": EwsPimHarness(ews_pim_responder)})
    with w.store.transaction() as s:
        s.get(models.SystemUser, w.ids["paul"]).internalemailaddress = box.address
    w.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box.clock = lambda: w.now
    start = datetime(2026, 10, 13, 9, 0, tzinfo=BERLIN)  # Tuesdays; DST ends on 25 October
    master = box.user_create("appointment", {
        "when": f"{start.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}/"
                f"{(start + timedelta(hours=1)).astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}",
        "timezone": "Europe/Berlin", "subject": "Weekly review"}, ("Tracked to CRM",))
    assert ews_pim_responder.pim[master].element.find(_t("StartTimeZone")) is not None
    ews_pim_responder.make_recurring(master, WEEKLY)
    ews_pim_responder.user_delete_occurrence(master, 2)  # 20 October
    ews_pim_responder.user_modify_occurrence(master, 4, timedelta(hours=2, minutes=30), "Moved")  # 3 November

    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and report.counts == {"create_crm": 4}
    assert _crm(w) == [
        ("10-13 09:00", "10-13 10:00", "Weekly review", None),
        ("10-27 09:00", "10-27 10:00", "Weekly review", None),  # wall-clock time kept across DST
        ("11-03 11:30", "11-03 12:30", "Moved", None),
        ("11-10 09:00", "11-10 10:00", "Weekly review", None),
    ]
    with w.store.transaction() as s:
        rows = {r.scheduledstart.astimezone(BERLIN).strftime("%m-%d"): r for r in s.scalars(
            select(models.Activity).where(models.Activity.activitytypecode == "appointment"))}
        assert {r.seriesid for r in rows.values()} == {ews_pim_responder.pim[master].element.findtext(_t("UID"))}
        ids = {day: r.id for day, r in rows.items()}
    assert sorted(link.mailbox_id for link in w.links(entity="appointment")) == sorted(
        f"{master}#{rid}" for rid in ("20261013T070000Z", "20261027T080000Z", "20261103T080000Z", "20261110T080000Z"))
    box.calls.clear()
    again = w.sync(entities=("appointment",))["appointment"]
    assert again.writes == 0 and not box.writes() and len(_crm(w)) == 4  # idempotent

    # the CRM edits one occurrence: Exchange makes it an exception; nothing flows back after
    w.edit_activity(ids["10-27"], location="Room 2")
    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and report.counts == {"update": 1}
    exceptions = [i for i in ews_pim_responder.pim.values() if i.folder == "exceptions" and i.deleted is None]
    assert sorted(e.element.findtext(_t("Location")) or "" for e in exceptions) == ["", "Room 2"]
    box.calls.clear()
    assert w.sync(entities=("appointment",))["appointment"].writes == 0 and not box.writes()

    # the CRM deletes that occurrence (pending, organised here): its exception goes, the master lists it deleted
    w.delete(models.Activity, ids["10-27"])
    box.calls.clear()
    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and report.counts == {"delete_mailbox": 1} and box.writes() == ["delete"]
    deleted = ews_pim_responder.pim[master].element.find(_t("DeletedOccurrences"))
    assert sorted(d.findtext(_t("Start")) for d in deleted) == ["2026-10-20T07:00:00Z", "2026-10-27T08:00:00Z"]
    box.calls.clear()
    assert w.sync(entities=("appointment",))["appointment"].writes == 0 and not box.writes()
    assert len(_crm(w)) == 3

    # Outlook deletes the 10 November occurrence: the organiser's pending appointment is deleted in the CRM
    ews_pim_responder.user_delete_occurrence(master, 5)
    report = w.sync(entities=("appointment",))["appointment"]
    assert report.counts == {"delete_crm": 1} and [r[0] for r in _crm(w)] == ["10-13 09:00", "11-03 11:30"]
    w.store.dispose()


def test_an_occurrence_is_deleted_by_its_index(ews_pim_responder: PimResponder) -> None:
    """An occurrence that is no exception is deleted through an OccurrenceItemId (master + instance index)."""
    box = EwsPimHarness(ews_pim_responder)
    box.clock = lambda: datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    start = datetime(2026, 10, 13, 9, 0, tzinfo=BERLIN)
    master = box.user_create("appointment", {
        "when": f"{start.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}/"
                f"{(start + timedelta(hours=1)).astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}",
        "timezone": "Europe/Berlin", "subject": "Weekly review"})
    ews_pim_responder.make_recurring(master, WEEKLY)
    listed = {x.id: x.etag for x in box.changes_blocking("appointment", None).changed}
    third = f"{master}#20261027T080000Z"  # after the DST change: 08:00 UTC
    assert len(listed) == 5 and third in listed
    box.delete_blocking("appointment", third, listed[third])
    deleted = ews_pim_responder.pim[master].element.find(_t("DeletedOccurrences"))
    assert [d.findtext(_t("Start")) for d in deleted] == ["2026-10-27T08:00:00Z"]
    after = {x.id for x in box.changes_blocking("appointment", None).changed}
    assert after == set(listed) - {third}
