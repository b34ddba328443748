"""Replay: Graph appointments (calendarView/delta over a rolling window) against the Graph responder: the
window and how it moves, events leaving it, recurring series, time zones, invitations, 410 and 429."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from abook.mailbox.errors import CursorInvalid, RateLimited
from abook.mailbox.pim.graph_common import CRM_ID
from abook.mailbox.pim.graph_events import UID, Window
from tests.fixtures.graph import GraphServer
from tests.graph.event_routes import events
from tests.graph.pim_harness import CLOCK, GraphPimHarness

MEETING = {"when": "2026-03-10T09:00:00Z/2026-03-10T10:00:00Z", "timezone": "Europe/Berlin", "subject": "Review",
           "attendees": "required:laura@example.com;optional:guest@elsewhere.example", "uid": "m-1@abook"}


class Clock:
    def __init__(self) -> None:
        self.now = CLOCK

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pim(graph_server: GraphServer, clock: Clock) -> GraphPimHarness:
    return GraphPimHarness(graph_server, clock)


def _outlook_creates(pim: GraphPimHarness, body: dict[str, Any]) -> str:
    """Another client (Outlook) creates an event, straight at the responder."""
    r = pim.client.json("POST", f"/users/{pim.address}/calendar/events", json=body)
    return str(r["id"])


def test_the_window_moves_in_whole_steps() -> None:
    w = Window(back=30, ahead=365, step=7)
    monday = date(2026, 3, 2)
    starts = {w.at(monday + timedelta(days=n)) for n in range(7)}
    assert len(starts) <= 2  # within one week the window moves at most once
    start, end = w.at(monday)
    days = (datetime.fromisoformat(end[:10]) - datetime.fromisoformat(start[:10])).days
    assert days == 30 + 365 + 7 and start <= "2026-01-31" and end >= "2027-03-02"


def test_the_delta_asks_for_the_window_and_utc_times(pim: GraphPimHarness) -> None:
    mark = len(pim.responder.requests)
    token = pim.changes_blocking("appointment", None).token
    (first, *_rest) = [r for r in pim.responder.requests[mark:] if r.path.endswith("/calendarView/delta")]
    start, end = Window().at(CLOCK.date())
    assert first.query["startDateTime"] == [start] and first.query["endDateTime"] == [end]
    assert 'outlook.timezone="UTC"' in first.headers["Prefer"] and 'IdType="ImmutableId"' in first.headers["Prefer"]
    assert token is not None and token.startswith(f"{start} {end} https://")


def test_an_event_moved_out_of_the_window_is_a_change_not_a_deletion(pim: GraphPimHarness) -> None:
    moved = pim.create_blocking("appointment", MEETING, "crm-moved")
    gone = pim.create_blocking("appointment", {**MEETING, "uid": "m-2@abook"}, "crm-gone")
    token = pim.changes_blocking("appointment", None).token
    far = pim.update_blocking("appointment", moved.id, moved.etag, {"when": "2029-01-01T09:00:00Z/2029-01-01T10:00:00Z"})
    pim.delete_blocking("appointment", gone.id, gone.etag)
    assert token is not None
    raw = pim.client.json("GET", token.split(" ", 2)[2], prefer='outlook.timezone="UTC"')
    assert {x["id"] for x in raw["value"] if "@removed" in x} == {moved.id, gone.id}  # as Graph reports them
    changes = pim.changes_blocking("appointment", token)
    assert {x.id: x.etag for x in changes.changed} == {moved.id: far.etag}  # looked up: still there
    assert changes.deleted == (gone.id,) and not changes.complete


def test_when_the_window_moves_the_old_round_is_finished_and_a_fresh_one_started(pim: GraphPimHarness,
                                                                                  clock: Clock) -> None:
    early = pim.create_blocking("appointment", {**MEETING, "when": "2026-02-02T09:00:00Z/2026-02-02T10:00:00Z"},
                                "crm-early")
    gone = pim.create_blocking("appointment", MEETING, "crm-gone")
    token = pim.changes_blocking("appointment", None).token
    assert token is not None
    pim.delete_blocking("appointment", gone.id, gone.etag)
    clock.now = CLOCK + timedelta(days=21)  # "early" is now before the window's start
    later = pim.create_blocking("appointment", {**MEETING, "when": "2027-03-20T09:00:00Z/2027-03-20T10:00:00Z"},
                                "crm-later")  # beyond the old window's end, inside the new one
    mark = len(pim.responder.requests)
    changes = pim.changes_blocking("appointment", token)
    deltas = [r for r in pim.responder.requests[mark:] if r.path.endswith("/calendarView/delta")]
    assert "$deltatoken" in deltas[0].query and "startDateTime" in deltas[-1].query  # old round, then fresh
    assert changes.deleted == (gone.id,)  # seen by finishing the old round
    assert early.id not in changes.deleted  # merely out of the window: no deletion
    assert later.id in {x.id for x in changes.changed} and not changes.complete
    new_start, new_end = Window().at(clock.now.date())
    assert changes.token is not None and changes.token.startswith(f"{new_start} {new_end} ")
    assert pim.changes_blocking("appointment", changes.token).changed == ()  # quiet from then on


def test_a_lost_delta_state_is_refused_and_a_fresh_round_reports_no_deletions(pim: GraphPimHarness) -> None:
    pim.create_blocking("appointment", MEETING, "crm-a")
    token = pim.changes_blocking("appointment", None).token
    pim.forget_tokens()
    with pytest.raises(CursorInvalid):
        pim.changes_blocking("appointment", token)
    fresh = pim.changes_blocking("appointment", None)
    assert len(fresh.changed) == 1 and fresh.deleted == () and not fresh.complete


def test_a_short_throttle_on_the_delta_is_waited_out_a_long_one_is_rate_limited(pim: GraphPimHarness) -> None:
    pim.create_blocking("appointment", MEETING, "crm-a")
    pim.responder.throttle("/calendarView/delta", status=429, retry_after=1)
    assert len(pim.changes_blocking("appointment", None).changed) == 1
    pim.responder.throttle("/calendarView/delta", status=429, retry_after=120)
    with pytest.raises(RateLimited) as e:
        pim.changes_blocking("appointment", None)
    assert e.value.retry_after == 120


def test_a_recurring_series_is_one_item_per_occurrence(pim: GraphPimHarness) -> None:
    """As on EWS and CalDAV (the CRM keeps one record per occurrence): calendarView's occurrences are the
    items, each with the series' UID and its original start; writing one makes its exception only, and a
    series deleted in Outlook is each occurrence's deletion."""
    master = _outlook_creates(pim, {
        "subject": "Weekly", "start": {"dateTime": "2026-03-02T08:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-03-02T08:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                       "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 4}}})
    first = pim.changes_blocking("appointment", None)
    ids = [x.id for x in first.changed]
    assert len(ids) == 4 and master not in ids  # the occurrences, not the master
    items = pim.get_blocking("appointment", ids)
    uid = events(pim.responder)[master].uid
    assert [i.uid for i in items] == [f"{uid}#202603{d:02d}T070000Z" for d in (2, 9, 16, 23)]
    assert items[1].values["when"] == "2026-03-09T07:00:00Z/2026-03-09T07:30:00Z"
    two = pim.update_blocking("appointment", items[1].id, items[1].etag, {"subject": "Weekly (moved room)"})
    again = pim.changes_blocking("appointment", first.token)
    etags = {x.id: x.etag for x in again.changed}
    assert etags[items[1].id] == two.etag and all(etags[i.id] == i.etag for i in items if i.id != items[1].id)
    (moved,) = pim.get_blocking("appointment", [items[1].id])
    assert moved.values["subject"] == "Weekly (moved room)" and items[2].values["subject"] == "Weekly"
    pim.delete_blocking("appointment", items[3].id, None)  # one occurrence
    gone = pim.changes_blocking("appointment", again.token)
    assert gone.deleted == (items[3].id,) and pim.get_blocking("appointment", [items[3].id]) == []
    with pim.responder.lock:  # Outlook deletes the whole series
        events(pim.responder)[master].deleted = True
        pim.responder.store.tick()
    last = pim.changes_blocking("appointment", gone.token)
    assert set(last.deleted) == {i.id for i in items[:3]}


def test_times_are_written_in_the_items_zone_and_read_in_utc(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("appointment", MEETING, "crm-a")
    body = json.loads(next(r.body for r in reversed(pim.responder.requests) if r.method == "POST"))
    assert body["start"] == {"dateTime": "2026-03-10T10:00:00", "timeZone": "W. Europe Standard Time"}
    e = events(pim.responder)[a.id]
    assert e.zone == "W. Europe Standard Time"
    (item,) = pim.get_blocking("appointment", [a.id])
    assert item.values["when"] == MEETING["when"] and item.values["timezone"] == "Europe/Berlin"
    moved = pim.update_blocking("appointment", a.id, a.etag, {"when": "2026-04-10T08:00:00Z/2026-04-10T09:00:00Z"})
    body = json.loads(pim.responder.requests[-1].body)  # the new times, in the event's zone (summer time now)
    assert body["start"] == {"dateTime": "2026-04-10T10:00:00", "timeZone": "W. Europe Standard Time"}
    (item,) = pim.get_blocking("appointment", [a.id])
    assert (item.etag, item.values["when"], item.values["timezone"]) == (
        moved.etag, "2026-04-10T08:00:00Z/2026-04-10T09:00:00Z", "Europe/Berlin")
    allday = pim.create_blocking("appointment", {"when": "2026-03-29/2026-03-31", "subject": "Fair"}, "crm-b")
    (item,) = pim.get_blocking("appointment", [allday.id])
    assert item.values["when"] == "2026-03-29/2026-03-31" and events(pim.responder)[allday.id].all_day


def test_attendees_are_written_only_when_the_engine_notifies(pim: GraphPimHarness) -> None:
    """Graph invites every attendee of an event it creates: a meeting the engine does not announce (an
    attendee's copy, a past one) is created without them."""
    quiet = pim.create_blocking("appointment", MEETING, "crm-q")
    loud = pim.create_blocking("appointment", {**MEETING, "uid": "m-2@abook"}, "crm-l", notify=True)
    assert "attendees" not in events(pim.responder)[quiet.id].data
    (item,) = pim.get_blocking("appointment", [loud.id])
    assert item.values["attendees"] == "optional:guest@elsewhere.example;required:laura@example.com"
    assert item.values["organizer"] == pim.address


def test_the_crm_id_and_uid_travel_in_extended_properties(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("appointment", MEETING, "crm-a")
    e = events(pim.responder)[a.id]
    assert e.extended[CRM_ID.lower()] == "crm-a" and e.extended[UID.lower()] == "m-1@abook"
    (item,) = pim.get_blocking("appointment", [a.id])
    assert (item.crm_id, item.uid) == ("crm-a", "m-1@abook")
    outlook = _outlook_creates(pim, {"subject": "x", "start": {"dateTime": "2026-03-05T08:00:00", "timeZone": "UTC"},
                                     "end": {"dateTime": "2026-03-05T09:00:00", "timeZone": "UTC"}})
    (item,) = pim.get_blocking("appointment", [outlook])
    assert item.uid == events(pim.responder)[outlook].uid and item.crm_id is None  # Exchange's iCalUId
    found = pim.find_blocking("appointment", "crm-a")
    assert found is not None and found.id == a.id and pim.find_blocking("appointment", "crm-none") is None


def test_the_regarding_record_is_a_line_in_the_notes_split_off_again_when_read(pim: GraphPimHarness) -> None:
    values = {**MEETING, "description": "agenda", "regarding": "Acme, Inc."}
    a = pim.create_blocking("appointment", values, "crm-a")
    e = events(pim.responder)[a.id]
    assert e.data["body"]["content"] == "agenda\n\nRegarding: Acme, Inc."  # what Outlook shows
    (item,) = pim.get_blocking("appointment", [a.id])
    assert item.values == pim.project("appointment", values)
    assert (item.values["description"], item.values["regarding"]) == ("agenda", "Acme, Inc.")
    b = pim.update_blocking("appointment", a.id, item.etag, {"regarding": "Contoso"})  # the notes keep the agenda
    pim.update_blocking("appointment", a.id, b.etag, {"description": "new agenda"})  # the line stays
    (item,) = pim.get_blocking("appointment", [a.id])
    assert (item.values["description"], item.values["regarding"]) == ("new agenda", "Contoso")
    assert e.data["body"]["content"] == "new agenda\n\nRegarding: Contoso"
