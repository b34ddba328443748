"""A recurring series in a real Radicale calendar (RRULE, EXDATE, a RECURRENCE-ID override), written by
another client, comes into the CRM as one appointment per occurrence with exact times across DST; a
second sync changes nothing; occurrences deleted or edited on either side follow the rules."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
from sqlalchemy import select

from abook.store import models
from tests.contract.pim_harness import RadicaleMailbox
from tests.fixtures.radicale import Radicale
from tests.unit.sync.conftest import new_world
from tests.unit.sync.world import World

BERLIN = ZoneInfo("Europe/Berlin")
ST_JOHNS = ZoneInfo("America/St_Johns")  # UTC-3:30, DST ends on 1 November (Berlin: 25 October)

SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//another client//EN
BEGIN:VEVENT
UID:weekly-review@client
DTSTAMP:20260901T000000Z
DTSTART;TZID=Europe/Berlin:20261013T090000
DTEND;TZID=Europe/Berlin:20261013T100000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20261020T090000
SUMMARY:Weekly review
CATEGORIES:Tracked to CRM
ORGANIZER:mailto:paul@example.com
END:VEVENT
BEGIN:VEVENT
UID:weekly-review@client
DTSTAMP:20260901T000000Z
RECURRENCE-ID;TZID=Europe/Berlin:20261103T090000
DTSTART;TZID=America/St_Johns:20261103T070000
DTEND;TZID=America/St_Johns:20261103T083000
SUMMARY:Review (moved)
LOCATION:Room 7
ORGANIZER:mailto:paul@example.com
END:VEVENT
END:VCALENDAR
"""


def _setup(radicale_server: Radicale, tmp_path: Path) -> tuple[World, RadicaleMailbox, str]:
    box = RadicaleMailbox(radicale_server)
    w = new_world(tmp_path, mailboxes={"paul": box, "laura": RadicaleMailbox(radicale_server)})
    w.now = datetime(2026, 10, 1, 12, 0, tzinfo=timezone.utc)
    box.clock = lambda: w.now
    href = "/" + box._collection("appointment").split("://", 1)[1].split("/", 1)[1] + "weekly.ics"
    assert box.http.put(box._url("appointment", href), data=SERIES.encode(),
                        headers={"Content-Type": "text/calendar"}).status_code in (201, 204)
    return w, box, href


def _crm(w: World) -> list[tuple[str, str, str, str | None]]:
    with w.store.transaction() as s:
        rows = s.scalars(select(models.Activity).where(models.Activity.activitytypecode == "appointment")
                         .order_by(models.Activity.scheduledstart))
        return [(r.scheduledstart.astimezone(BERLIN).strftime("%m-%d %H:%M"),
                 r.scheduledend.astimezone(BERLIN).strftime("%m-%d %H:%M"), r.subject, r.location) for r in rows]


def test_a_caldav_series_comes_in_one_record_per_occurrence(radicale_server: Radicale, tmp_path: Path) -> None:
    w, box, href = _setup(radicale_server, tmp_path)
    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and report.counts == {"create_crm": 5}
    assert _crm(w) == [
        ("10-13 09:00", "10-13 10:00", "Weekly review", None),
        ("10-27 09:00", "10-27 10:00", "Weekly review", None),  # after Berlin's DST change: 09:00 still
        # the override, written in St John's time (UTC-2:30 until 1 November, then UTC-3:30)
        ("11-03 11:30", "11-03 13:00", "Review (moved)", "Room 7"),
        ("11-10 09:00", "11-10 10:00", "Weekly review", None),
        ("11-17 09:00", "11-17 10:00", "Weekly review", None),
    ]
    with w.store.transaction() as s:
        rows = list(s.scalars(select(models.Activity).where(models.Activity.activitytypecode == "appointment")))
        assert {r.seriesid for r in rows} == {"weekly-review@client"}
        assert sorted(r.originalstart.astimezone(BERLIN).strftime("%m-%d %H:%M") for r in rows)[2] == "11-03 09:00"
    links = w.links(entity="appointment")
    assert sorted(link.mailbox_id for link in links) == sorted(
        f"{href}#{rid}" for rid in ("20261013T070000Z", "20261027T080000Z", "20261103T080000Z",
                                    "20261110T080000Z", "20261117T080000Z"))
    before = _crm(w)
    box.calls.clear()
    again = w.sync(entities=("appointment",))["appointment"]
    assert again.writes == 0 and not box.writes() and _crm(w) == before  # no duplicates, no writes
    w.store.dispose()


def test_occurrences_deleted_and_edited_on_either_side(radicale_server: Radicale, tmp_path: Path) -> None:
    w, box, href = _setup(radicale_server, tmp_path)
    w.sync(entities=("appointment",))
    # another client deletes the 10 November occurrence (an EXDATE): the organiser's pending appointment goes
    text = box.http.get(box._url("appointment", href)).text
    assert "EXDATE;TZID=Europe/Berlin:20261020T090000\r\n" in text, text
    text = text.replace("EXDATE;TZID=Europe/Berlin:20261020T090000\r\n",
                        "EXDATE;TZID=Europe/Berlin:20261020T090000,20261110T090000\r\n")
    assert box.http.put(box._url("appointment", href), data=text.encode(),
                        headers={"Content-Type": "text/calendar"}).status_code in (201, 204)
    report = w.sync(entities=("appointment",))["appointment"]
    assert report.counts == {"delete_crm": 1} and [r[0] for r in _crm(w)] == [
        "10-13 09:00", "10-27 09:00", "11-03 11:30", "11-17 09:00"]

    # the CRM edits one occurrence and deletes another: an override and an EXDATE in the series
    with w.store.transaction() as s:
        rows = {r.scheduledstart.astimezone(BERLIN).strftime("%m-%d"): r.id for r in s.scalars(
            select(models.Activity).where(models.Activity.activitytypecode == "appointment"))}
    w.edit_activity(rows["10-27"], location="Room 2")
    w.edit_activity(rows["11-17"], location="Room 3")
    box.calls.clear()
    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and box.writes() == ["update", "update"]  # two occurrences of one resource
    w.delete(models.Activity, rows["11-17"])
    box.calls.clear()
    report = w.sync(entities=("appointment",))["appointment"]
    assert not report.failed and box.writes() == ["delete"]
    values = box.values("appointment")
    assert sorted(v["when"][:16] for v in values.values()) == ["2026-10-13T07:00", "2026-10-27T08:00",
                                                                "2026-11-03T10:30"]
    assert values[f"{href}#20261027T080000Z"]["location"] == "Room 2"

    # a third-party client sees the series as abook left it
    client = caldav.DAVClient(url=radicale_server.url, username=box.user, password=box._session.auth[1])
    cal = client.calendar(url=box.collections["appointment"])
    (event,) = cal.events()
    comps = [c for c in event.icalendar_instance.walk("VEVENT")]
    master = next(c for c in comps if c.get("recurrence-id") is None)
    exdates = master.get("exdate")
    excluded = sorted(d.dt.astimezone(BERLIN).strftime("%m-%d %H:%M") for e in
                      (exdates if isinstance(exdates, list) else [exdates]) for d in e.dts)
    assert excluded == ["10-20 09:00", "11-10 09:00", "11-17 09:00"]
    overrides = {c["recurrence-id"].dt.astimezone(BERLIN).strftime("%m-%d %H:%M"):
                 (c["dtstart"].dt.astimezone(BERLIN).strftime("%H:%M"), str(c.get("location")))
                 for c in comps if c.get("recurrence-id") is not None}
    assert overrides == {"10-27 09:00": ("09:00", "Room 2"), "11-03 09:00": ("11:30", "Room 7")}
    box.calls.clear()
    assert w.sync(entities=("appointment",))["appointment"].writes == 0 and not box.writes()
    w.store.dispose()
