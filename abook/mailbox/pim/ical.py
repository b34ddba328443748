"""iCalendar VEVENT / VTODO <-> canonical appointment and task values, through ``icalendar``.

* Timed events are written in their time zone (``DTSTART;TZID=Europe/Berlin``, the VTIMEZONE added from
  the IANA data) so clients show the wall-clock time the organiser chose, and read back to the same UTC
  instant; without a zone, in UTC. All-day events are DATE values, end exclusive; their zone travels in
  ``X-ABOOK-TZID`` (a DATE has none).
* Show-as is TRANSP (OPAQUE busy, TRANSPARENT free); PRIORITY 1 high, 5 normal, 9 low (RFC 5545).
* Organiser and attendees are ``mailto:`` addresses; ROLE REQ-PARTICIPANT / OPT-PARTICIPANT.
* The CRM's regarding record: its name as the last line of DESCRIPTION ("Regarding: Acme"), and in
  ``X-ABOOK-REGARDING``, which tells abook's line from the user's when reading.
* Tasks: DTSTART and DUE (both DATE or both UTC DATE-TIME), COMPLETED, PERCENT-COMPLETE, STATUS
  (NEEDS-ACTION / IN-PROCESS / COMPLETED).
Writing keeps what abook does not map (alarms, other clients' properties); categories and the CRM id
stay unless abook sets them.
* A recurring event (RRULE, with EXDATEs and RECURRENCE-ID overrides) is read as its occurrences
  (``read_occurrences``, expanded by ``recurring_ical_events``; see ``series.py``); writing one occurrence
  updates or adds its override, deleting one adds an EXDATE.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
import recurring_ical_events

from abook.mailbox.pim import series
from abook.mailbox.pim.interfaces import CRMID_PROPERTY
from abook.mailbox.pim.schema import (
    Values,
    normalise,
    parse_moment,
    parse_parties,
    parse_when,
    parties_text,
    split_regarding,
    with_regarding,
)

PRIORITY_TO_ICAL = {"high": 1, "normal": 5, "low": 9}
_EVENT_PROPS = ("dtstart", "dtend", "duration", "summary", "location", "description", "priority", "organizer",
                "attendee", "transp", "x-abook-tzid", "x-abook-regarding")
_TODO_PROPS = ("dtstart", "due", "duration", "completed", "percent-complete", "status", "priority", "summary",
               "description", "x-abook-regarding")
TZ_PROPERTY = "X-ABOOK-TZID"
#: the regarding record's name, shown as the last line of DESCRIPTION (schema.with_regarding)
REGARDING_PROPERTY = "X-ABOOK-REGARDING"


def _priority(value: Any) -> Optional[str]:
    try:
        p = int(value)
    except (TypeError, ValueError):
        return None
    if p == 0:
        return None
    return "high" if p <= 4 else "normal" if p == 5 else "low"


def _text(component: Any, name: str) -> Optional[str]:
    value = component.get(name)
    return str(value) if value is not None else None


def _address(value: Any) -> str:
    text = str(value)
    return text[7:] if text.lower().startswith("mailto:") else text


def _zone_name(dt: Any) -> Optional[str]:
    tz = getattr(dt, "tzinfo", None)
    if tz is None or tz.utcoffset(dt) is None:
        return None
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key in (None, "UTC", "Etc/UTC") or tz is timezone.utc:
        return None
    return str(key)


def _moment(value: Any) -> date | datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)  # floating: as UTC
    return value


def read_calendar(text: str) -> list[tuple[str, dict[str, Optional[str]], Optional[str], tuple[str, ...], Optional[str]]]:
    """Each VEVENT/VTODO of a resource: (entity, canonical values, CRM id, categories, UID).
    Overridden occurrences (RECURRENCE-ID) are left out: one item is one record here."""
    cal = icalendar.Calendar.from_ical(text)
    out = []
    for comp in cal.walk():
        if comp.name not in ("VEVENT", "VTODO") or comp.get("recurrence-id") is not None:
            continue
        categories: list[str] = []
        for cats in comp.get("categories", []) if isinstance(comp.get("categories"), list) else \
                ([comp["categories"]] if comp.get("categories") is not None else []):
            categories += [str(c) for c in cats.cats]
        crm_id = _text(comp, CRMID_PROPERTY)
        uid = _text(comp, "uid")
        if comp.name == "VEVENT":
            out.append(("appointment", _event_values(comp), crm_id, tuple(categories), uid))
        else:
            out.append(("task", _todo_values(comp), crm_id, tuple(categories), uid))
    return out


def _event_values(comp: Any) -> dict[str, Optional[str]]:
    start = comp.get("dtstart")
    when = zone = None
    if start is not None:
        s = _moment(start.dt)
        end_prop = comp.get("dtend")
        if end_prop is not None:
            e = _moment(end_prop.dt)
        elif comp.get("duration") is not None:
            e = s + comp["duration"].dt
        else:
            e = s
        if isinstance(s, datetime):
            zone = _zone_name(s)
            when = f"{_utc(s)}/{_utc(e)}"  # type: ignore[arg-type]
        else:
            zone = _text(comp, TZ_PROPERTY)
            when = f"{s.isoformat()}/{e.isoformat()}"
    attendees = []
    for a in comp.get("attendee", []) if isinstance(comp.get("attendee"), list) else \
            ([comp["attendee"]] if comp.get("attendee") is not None else []):
        role = str(a.params.get("ROLE", "REQ-PARTICIPANT")).upper()
        attendees.append(("optional" if role == "OPT-PARTICIPANT" else "required", _address(a)))
    transp = (_text(comp, "transp") or "OPAQUE").upper()
    return normalise("appointment", {
        "when": when, "timezone": zone, "subject": _text(comp, "summary"), "location": _text(comp, "location"),
        "description": split_regarding(_text(comp, "description"), _text(comp, REGARDING_PROPERTY)),
        "regarding": _text(comp, REGARDING_PROPERTY), "prioritycode": _priority(comp.get("priority")),
        "organizer": _address(comp["organizer"]).lower() if comp.get("organizer") is not None else None,
        "attendees": parties_text(attendees), "showas": "free" if transp == "TRANSPARENT" else "busy",
        "uid": _text(comp, "uid"),
    })


def _utc(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _todo_values(comp: Any) -> dict[str, Optional[str]]:
    def moment(name: str) -> Optional[str]:
        prop = comp.get(name)
        if prop is None:
            return None
        m = _moment(prop.dt)
        return _utc(m) if isinstance(m, datetime) else m.isoformat()

    status = (_text(comp, "status") or "NEEDS-ACTION").upper()
    percent = comp.get("percent-complete")
    done = status == "COMPLETED" or (percent is not None and int(percent) >= 100)
    return normalise("task", {
        "subject": _text(comp, "summary"), "regarding": _text(comp, REGARDING_PROPERTY),
        "description": split_regarding(_text(comp, "description"), _text(comp, REGARDING_PROPERTY)),
        "startdate": moment("dtstart"), "duedate": moment("due"), "completed": moment("completed"),
        "percentcomplete": 100 if done else (int(percent) if percent is not None else None),
        "status": "completed" if done else "open", "prioritycode": _priority(comp.get("priority")),
    })


def _zone(name: Optional[str]) -> Optional[ZoneInfo]:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def write_calendar(entity: str, values: Values, *, uid: str, crm_id: Optional[str], base: Optional[str] = None) -> str:
    """An iCalendar resource holding one VEVENT (appointment) or VTODO (task) with ``values``."""
    kind = "VEVENT" if entity == "appointment" else "VTODO"
    if base is not None:
        cal = icalendar.Calendar.from_ical(base)
        comp = next(c for c in cal.walk() if c.name == kind and c.get("recurrence-id") is None)
        current = _event_values(comp) if entity == "appointment" else _todo_values(comp)
        merged = normalise(entity, {**current, **values})
        for name in _EVENT_PROPS if entity == "appointment" else _TODO_PROPS:
            comp.pop(name, None)
        for sub in list(cal.subcomponents):
            if sub.name == "VTIMEZONE":
                cal.subcomponents.remove(sub)
    else:
        cal = icalendar.Calendar()
        cal.add("prodid", "-//abook//sync//EN")
        cal.add("version", "2.0")
        comp = icalendar.Event() if entity == "appointment" else icalendar.Todo()
        comp.add("uid", uid)
        comp.add("dtstamp", datetime.now(timezone.utc))
        cal.add_component(comp)
        merged = normalise(entity, values)
    if entity == "appointment":
        _write_event(comp, merged)
    else:
        _write_todo(comp, merged)
    if merged.get("prioritycode"):
        comp.add("priority", PRIORITY_TO_ICAL[merged["prioritycode"]])  # type: ignore[index]
    if crm_id:
        comp.pop(CRMID_PROPERTY, None)
        comp.add(CRMID_PROPERTY, crm_id)
    cal.add_missing_timezones()
    return cal.to_ical().decode("utf-8")


def _write_event(comp: Any, v: Values) -> None:
    if v.get("when"):
        start, end = parse_when(v["when"])  # type: ignore[arg-type]
        zone = _zone(v.get("timezone"))
        if isinstance(start, datetime):
            comp.add("dtstart", start.astimezone(zone) if zone else start)
            comp.add("dtend", end.astimezone(zone) if zone else end)  # type: ignore[union-attr]
        else:
            comp.add("dtstart", start)
            comp.add("dtend", end)
            if v.get("timezone"):
                comp.add(TZ_PROPERTY, v["timezone"])
    for name, prop in (("subject", "summary"), ("location", "location")):
        if v.get(name):
            comp.add(prop, v[name])
    _write_notes(comp, v)
    if v.get("organizer"):
        comp.add("organizer", f"mailto:{v['organizer']}")
    for role, address in parse_parties(v.get("attendees")):
        comp.add("attendee", f"mailto:{address}",
                 parameters={"ROLE": "OPT-PARTICIPANT" if role == "optional" else "REQ-PARTICIPANT"})
    comp.add("transp", "TRANSPARENT" if v.get("showas") == "free" else "OPAQUE")


def _write_notes(comp: Any, v: Values) -> None:
    notes = with_regarding(v.get("description"), v.get("regarding"))
    if notes:
        comp.add("description", notes)
    if v.get("regarding"):
        comp.add(REGARDING_PROPERTY, v["regarding"])


def _write_todo(comp: Any, v: Values) -> None:
    for name, prop in (("startdate", "dtstart"), ("duedate", "due"), ("completed", "completed")):
        if v.get(name):
            comp.add(prop, parse_moment(v[name]))  # type: ignore[arg-type]
    if v.get("subject"):
        comp.add("summary", v["subject"])
    _write_notes(comp, v)
    done = v.get("status") == "completed"
    percent = 100 if done else v.get("percentcomplete")
    if percent is not None:
        comp.add("percent-complete", int(percent))
    comp.add("status", "COMPLETED" if done else ("IN-PROCESS" if percent and int(percent) > 0 else "NEEDS-ACTION"))


def with_crm_id(text: str, crm_id: str) -> str:
    cal = icalendar.Calendar.from_ical(text)
    for comp in cal.walk():
        if comp.name in ("VEVENT", "VTODO"):
            comp.pop(CRMID_PROPERTY, None)
            comp.add(CRMID_PROPERTY, crm_id)
    return cal.to_ical().decode("utf-8")


# ---------------------------------------------------------------------------------------------------------
# Recurring series: one item per occurrence (series.py), expanded by recurring_ical_events


def _master(cal: Any) -> Any:
    return next((c for c in cal.walk("VEVENT") if c.get("recurrence-id") is None), None)


def _categories(comp: Any) -> tuple[str, ...]:
    value = comp.get("categories")
    out: list[str] = []
    for cats in value if isinstance(value, list) else ([value] if value is not None else []):
        out += [str(c) for c in cats.cats]
    return tuple(out)


def _expanded(cal: Any, win: series.Window) -> dict[str, Any]:
    """recurrence id -> the occurrence's VEVENT (an override where there is one), starting in the window."""
    out = {}
    for ev in recurring_ical_events.of(cal).between(win.start, win.end):
        rid_prop = ev.get("recurrence-id")
        original = _moment(rid_prop.dt if rid_prop is not None else ev["dtstart"].dt)
        first = original if isinstance(original, datetime) else datetime.combine(original, datetime.min.time(),
                                                                                  timezone.utc)
        if win.start <= first < win.end:
            out[series.rid_text(original)] = ev
    return out


def read_occurrences(text: str, win: series.Window) -> Optional[list[tuple[str, dict[str, Optional[str]], tuple[str, ...]]]]:
    """A recurring event's occurrences in ``win``: (recurrence id, canonical values, categories); None when the
    resource holds no recurring event. Occurrences carry the series' categories (it is tracked as a whole)."""
    cal = icalendar.Calendar.from_ical(text)
    master = _master(cal)
    if master is None or master.get("rrule") is None:
        return None
    uid = _text(master, "uid")
    categories = _categories(master)
    out = []
    for rid, ev in sorted(_expanded(cal, win).items()):
        values = _event_values(ev)
        values["uid"] = series.occurrence_uid(uid, rid)
        out.append((rid, values, categories))
    return out


def _original(master: Any, rid: str) -> date | datetime:
    original = series.parse_rid(rid)
    start = master["dtstart"].dt
    if isinstance(original, datetime) and isinstance(start, datetime) and start.tzinfo is not None:
        return original.astimezone(start.tzinfo)
    return original


def write_occurrence(text: str, rid: str, values: Values, win: series.Window) -> str:
    """The resource with one occurrence changed: its override (RECURRENCE-ID) is updated, or made from the
    occurrence as the series gives it."""
    cal = icalendar.Calendar.from_ical(text)
    override = next((c for c in cal.walk("VEVENT") if c.get("recurrence-id") is not None
                     and series.rid_text(_moment(c["recurrence-id"].dt)) == rid), None)
    if override is None:
        override = _expanded(cal, win).get(rid)
        if override is None:
            raise KeyError(rid)
        cal.add_component(override)
    merged = normalise("appointment", {**_event_values(override), **values})
    for name in _EVENT_PROPS:
        override.pop(name, None)
    _write_event(override, merged)
    if merged.get("prioritycode"):
        override.add("priority", PRIORITY_TO_ICAL[merged["prioritycode"]])  # type: ignore[index]
    for sub in list(cal.subcomponents):
        if sub.name == "VTIMEZONE":
            cal.subcomponents.remove(sub)
    cal.add_missing_timezones()
    return cal.to_ical().decode("utf-8")


def delete_occurrence(text: str, rid: str) -> str:
    """The resource with one occurrence deleted: an EXDATE on the series, its override (if any) removed."""
    cal = icalendar.Calendar.from_ical(text)
    master = _master(cal)
    for c in list(cal.subcomponents):
        if c.name == "VEVENT" and c.get("recurrence-id") is not None and series.rid_text(_moment(c["recurrence-id"].dt)) == rid:
            cal.subcomponents.remove(c)
    if master is not None:
        master.add("exdate", _original(master, rid))
    return cal.to_ical().decode("utf-8")
