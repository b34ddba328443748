"""A recurring series created in a mailbox comes into the CRM as one appointment per occurrence (docs/sync.md,
"Recurring series"), on the in-memory mailbox: deleted and modified occurrences respected, wall-clock times
exact across DST, idempotent, deletes following the delete table, and the window moving with the calendar."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import select

from abook.mailbox.pim.memory import MemoryMailbox
from abook.store import models
from tests.unit.sync.world import World

TRACKED = ("Tracked to CRM",)
BERLIN = ZoneInfo("Europe/Berlin")


def _series(world: World, rrule: str = "FREQ=WEEKLY;COUNT=5", start: datetime | None = None) -> tuple[MemoryMailbox, str]:
    box = MemoryMailbox(clock=lambda: world.now)
    world.mailboxes["paul"] = box
    start = start or datetime(2026, 10, 13, 9, 0, tzinfo=BERLIN)  # DST ends on 25 October in Berlin
    when = f"{start.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}/{(start + timedelta(hours=1)).astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"
    item = box.user_create("appointment", {"when": when, "timezone": "Europe/Berlin", "subject": "Weekly",
                                           "organizer": "paul@example.com"}, TRACKED, uid="weekly-1", rrule=rrule)
    return box, item


def _crm(world: World) -> list[models.Activity]:
    with world.store.transaction() as s:
        rows = list(s.scalars(select(models.Activity).where(models.Activity.activitytypecode == "appointment")
                              .order_by(models.Activity.originalstart)))
        for r in rows:
            s.expunge(r)
        return rows


def _local(t: datetime) -> str:
    return t.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M")


def test_a_series_comes_in_as_one_appointment_per_occurrence_with_exceptions(world: World) -> None:
    world.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box, item = _series(world)
    box.user_delete_occurrence(item, "20261020T070000Z")  # the second one, deleted
    moved = datetime(2026, 11, 3, 11, 30, tzinfo=BERLIN)  # the fourth, moved to 11:30 and renamed
    box.user_update_occurrence(item, "20261103T080000Z", {
        "subject": "Moved", "when": f"{moved.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}/"
                                    f"{(moved + timedelta(hours=1)).astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"})
    world.sync(entities=("appointment",))
    rows = _crm(world)
    assert [(_local(r.scheduledstart), _local(r.scheduledend), r.subject) for r in rows] == [
        ("2026-10-13 09:00", "2026-10-13 10:00", "Weekly"),
        ("2026-10-27 09:00", "2026-10-27 10:00", "Weekly"),  # after the DST change: still 09:00 in Berlin
        ("2026-11-03 11:30", "2026-11-03 12:30", "Moved"),
        ("2026-11-10 09:00", "2026-11-10 10:00", "Weekly"),
    ]
    assert {r.seriesid for r in rows} == {"weekly-1"} and all(r.timezone == "Europe/Berlin" for r in rows)
    assert [_local(r.originalstart) for r in rows][2] == "2026-11-03 09:00"
    links = world.links(entity="appointment")
    assert sorted(link.mailbox_id for link in links) == sorted(box.occurrences(item))

    box.calls.clear()
    report = world.sync(entities=("appointment",))["appointment"]
    assert report.writes == 0 and not box.writes() and len(_crm(world)) == 4  # idempotent


def test_an_occurrence_deleted_in_the_mailbox_follows_the_delete_table(world: World) -> None:
    world.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box, item = _series(world)
    world.sync(entities=("appointment",))
    assert len(_crm(world)) == 5
    box.user_delete_occurrence(item, "20261027T080000Z")  # a pending one: the organiser deleted it
    report = world.sync(entities=("appointment",))["appointment"]
    assert report.counts.get("delete_crm") == 1 and report.writes == 1
    assert "2026-10-27 09:00" not in [_local(r.scheduledstart) for r in _crm(world)]
    assert len(_crm(world)) == 4 and len(world.links(entity="appointment")) == 4


def test_an_occurrence_edited_in_the_crm_becomes_an_exception_in_the_mailbox(world: World) -> None:
    world.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box, item = _series(world)
    world.sync(entities=("appointment",))
    third = next(r for r in _crm(world) if _local(r.scheduledstart) == "2026-10-27 09:00")
    fourth = next(r for r in _crm(world) if _local(r.scheduledstart) == "2026-11-03 09:00")
    world.edit_activity(third.id, location="Room 2")
    world.edit_activity(fourth.id, location="Room 3")  # two occurrences of one series written in one sync
    box.calls.clear()
    report = world.sync(entities=("appointment",))["appointment"]
    assert not report.failed and box.writes() == ["update", "update"]
    got = box.occurrences(item)
    assert got[f"{item}#20261027T080000Z"]["location"] == "Room 2"
    assert got[f"{item}#20261103T080000Z"]["location"] == "Room 3"
    assert sum(1 for v in got.values() if v["location"]) == 2
    box.calls.clear()
    assert world.sync(entities=("appointment",))["appointment"].writes == 0 and not box.writes()


def test_the_window_moves_with_the_calendar(world: World) -> None:
    """An endless series comes in up to the horizon; days later, the occurrences that came into the horizon
    follow, and those that fell behind the window keep their links and their CRM records."""
    world.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box, item = _series(world, "FREQ=DAILY", start=datetime(2026, 10, 1, 9, 0, tzinfo=BERLIN))
    box.horizon_days = 10
    world.sync(entities=("appointment",))
    assert len(_crm(world)) == 10  # 1 to 10 October
    world.now += timedelta(days=3)
    report = world.sync(entities=("appointment",))["appointment"]
    assert report.counts.get("create_crm") == 3 and not report.counts.get("delete_crm")
    assert not report.counts.get("unlink") and len(_crm(world)) == 13
    assert len(world.links(entity="appointment")) == 13
    assert world.sync(entities=("appointment",))["appointment"].writes == 0
    first = _crm(world)[0]  # 1 October: behind the window now, still linked; a CRM edit still reaches it
    world.edit_activity(first.id, location="Archive")
    report = world.sync(entities=("appointment",))["appointment"]
    assert not report.failed and report.counts == {"update": 1}
    assert box.items["appointment"][item].overrides["20261001T070000Z"]["location"] == "Archive"


def test_the_window_is_configured_per_deployment() -> None:
    from abook.config.sync import SyncMailboxTemplate
    from abook.store.users import SyncUser
    from abook.sync.setup import open_mailbox_blocking

    template = SyncMailboxTemplate.model_validate({
        "type": "dav", "calendar_url": "http://127.0.0.1:9/{user}/calendar/", "password": "secret",
        "recurrence_horizon_days": 30, "recurrence_lookback_days": 7})
    box = open_mailbox_blocking(template, SyncUser("id", "paul", "paul@example.com"))
    assert (box.horizon_days, box.lookback_days) == (30, 7)  # type: ignore[attr-defined]
    assert SyncMailboxTemplate.model_validate({"type": "dav", "calendar_url": "http://x/"}).recurrence_horizon_days == 365
