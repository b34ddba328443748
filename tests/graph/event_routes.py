"""The Graph responder's calendar (learn.microsoft.com "event resource type", "event: delta", "Create event",
"Update event", "Delete event", "dateTimeTimeZone", "Prefer: outlook.timezone"):

- ``GET /users/{id}/calendarView/delta?startDateTime=..&endDateTime=..`` (see pim_delta.py): the single
  events, occurrences and exceptions overlapping the window; never a series master;
- ``POST /users/{id}/calendar/events`` (a ``recurrence`` with a ``numbered`` range makes a series);
  ``GET /users/{id}/calendar/events?$filter=singleValueExtendedProperties/Any(...)``;
- ``GET``/``PATCH``/``DELETE /users/{id}/events/{id}`` (a series master, an occurrence or a single event;
  ``PATCH``/``DELETE`` with ``If-Match`` -> 412 when stale). A PATCH replaces each property it names.

Times are kept in UTC with the zone they were written in (``originalStartTimeZone``, a Windows name when
one was given or mapped). A reply gives ``start``/``end`` in the zone ``Prefer: outlook.timezone`` asks for,
else in the event's own; an all-day event is midnight to midnight in whatever zone it is shown in.
``body`` is text when ``Prefer: outlook.body-content-type="text"`` asks for it, else HTML.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from html import escape
from typing import TYPE_CHECKING, Any, Optional
from zoneinfo import ZoneInfo

from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP, MS_TIMEZONE_TO_IANA_MAP

from tests.graph import pim_delta
from tests.graph.store import new_id

if TYPE_CHECKING:
    from tests.graph.responder import GraphResponder, Reply

_FIND = re.compile(r"^singleValueExtendedProperties/Any\(ep: ep/id eq '(.*)' and ep/value eq '(.*)'\)$")
_TZ = re.compile(r'outlook\.timezone="([^"]+)"')


def _zone(name: str) -> Any:
    if name in ("UTC", "Etc/UTC", "tzone://Microsoft/Utc"):
        return timezone.utc
    return ZoneInfo(MS_TIMEZONE_TO_IANA_MAP.get(name, name))


def _windows(name: str) -> str:
    return name if name in MS_TIMEZONE_TO_IANA_MAP else IANA_TO_MS_TIMEZONE_MAP.get(name, (name,))[0]


@dataclass
class Event:
    id: str
    mailbox: str
    seq: int
    data: dict[str, Any] = field(default_factory=dict)
    #: UTC start and end (all-day: midnight UTC of the dates)
    start: datetime = datetime.min.replace(tzinfo=timezone.utc)
    end: datetime = datetime.min.replace(tzinfo=timezone.utc)
    all_day: bool = False
    zone: str = "UTC"
    occurrences: int = 0  # a series master: this many weekly occurrences
    #: a series' modified occurrences (n -> the occurrence as its own event) and deleted ones
    exceptions: dict[int, "Event"] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    extended: dict[str, str] = field(default_factory=dict)
    deleted: bool = False
    change_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    uid: str = field(default_factory=lambda: "040000008200E00074C5B7101A82E008" + uuid.uuid4().hex.upper())

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def instances(self) -> list[tuple[str, datetime, datetime, int]]:
        """(id, start, end, n) of what a calendarView shows: itself, or a series' occurrences."""
        if not self.occurrences:
            return [(self.id, self.start, self.end, -1)]
        out = []
        for n in range(self.occurrences):
            if n not in self.cancelled:
                x = self.exceptions.get(n)
                out.append((f"{self.id}_OCC{n}", x.start if x else self.start + timedelta(weeks=n),
                            x.end if x else self.end + timedelta(weeks=n), n))
        return out

    def occurrence(self, n: int) -> "Event":
        """Occurrence ``n`` as an event of its own (its exception, once one was made)."""
        if n in self.exceptions:
            return self.exceptions[n]
        return Event(f"{self.id}_OCC{n}", self.mailbox, self.seq, dict(self.data), self.start + timedelta(weeks=n),
                     self.end + timedelta(weeks=n), self.all_day, self.zone, 0, extended=dict(self.extended),
                     change_key=self.change_key, uid=self.uid)

    def resource(self, headers: dict[str, str], n: int = -1, extended: bool = False) -> dict[str, Any]:
        if n >= 0:  # an occurrence or exception: its own event, named as Graph names instances
            out = self.occurrence(n).resource(headers, -1, extended)
            original = self.start + timedelta(weeks=n)
            out.update({"type": "exception" if n in self.exceptions else "occurrence", "seriesMasterId": self.id,
                        "originalStart": original.strftime("%Y-%m-%dT%H:%M:%SZ")})
            return out
        shift = timedelta()
        wanted = _TZ.search(headers.get("Prefer", ""))
        shown = wanted.group(1) if wanted else self.zone

        def dtz(t: datetime) -> dict[str, str]:
            if self.all_day:
                return {"dateTime": t.date().isoformat() + "T00:00:00.0000000", "timeZone": shown}
            return {"dateTime": t.astimezone(_zone(shown)).strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": shown}

        text = "text" in headers.get("Prefer", "")
        content = self.data.get("body", {}).get("content", "")
        body = {"contentType": "text", "content": content} if text else \
            {"contentType": "html", "content": f"<html><body><p>{escape(content)}</p></body></html>"}
        kind = "singleInstance" if not self.occurrences else "seriesMaster"
        out = {"@odata.type": "#microsoft.graph.event", "@odata.etag": self.etag, "changeKey": self.change_key,
               "id": self.id, "type": kind, "iCalUId": self.uid,
               "isAllDay": self.all_day, "start": dtz(self.start + shift), "end": dtz(self.end + shift),
               "originalStartTimeZone": self.zone, "originalEndTimeZone": self.zone, "body": body,
               "subject": self.data.get("subject", ""), "importance": self.data.get("importance", "normal"),
               "showAs": self.data.get("showAs", "busy"), "categories": list(self.data.get("categories", [])),
               "location": self.data.get("location", {"displayName": ""}),
               "organizer": {"emailAddress": {"name": self.mailbox, "address": self.mailbox}},
               "attendees": [{**a, "status": {"response": "none", "time": "0001-01-01T00:00:00Z"}}
                             for a in self.data.get("attendees", [])]}
        if self.occurrences:
            out["recurrence"] = {"pattern": {"type": "weekly", "interval": 1},
                                 "range": {"type": "numbered", "numberOfOccurrences": self.occurrences}}
        if extended:
            out["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in self.extended.items()]
        return out


def events(g: "GraphResponder") -> dict[str, Event]:
    return g.store.__dict__.setdefault("events", {})  # type: ignore[no-any-return]


def _write(e: Event, data: dict[str, Any]) -> None:
    from tests.graph.pim_routes import write_extended

    write_extended(e.extended, data)
    if "isAllDay" in data:
        e.all_day = bool(data.pop("isAllDay"))
    for name in ("start", "end"):
        if name in data:
            dtz = data.pop(name)
            local = datetime.fromisoformat(dtz["dateTime"][:19])
            if e.all_day:  # all-day: midnight to midnight, kept as its dates
                if local.time() != datetime.min.time():
                    raise ValueError("an all-day event starts and ends at midnight")
                setattr(e, name, local.replace(tzinfo=timezone.utc))
            else:
                setattr(e, name, local.replace(tzinfo=_zone(dtz["timeZone"])).astimezone(timezone.utc))
            if name == "start":
                e.zone = _windows(dtz["timeZone"])
    if "recurrence" in data:
        e.occurrences = int(data.pop("recurrence")["range"]["numberOfOccurrences"])
    for k, v in data.items():
        if v is None:
            e.data.pop(k, None)
        else:
            e.data[k] = v


def _lookup(g: "GraphResponder", address: str, item_id: str) -> tuple[Optional[Event], int]:
    master_id, _, n = item_id.partition("_OCC")
    e = events(g).get(master_id)
    if e is None or e.mailbox != address or e.deleted or (n and (int(n) >= e.occurrences or int(n) in e.cancelled)):
        return None, -1
    return e, int(n) if n else -1


def _view(g: "GraphResponder", address: str, start: datetime, end: datetime) -> pim_delta.Members:
    def members() -> list[tuple[str, int, dict[str, Any]]]:
        out = []
        for e in events(g).values():
            if e.mailbox != address or e.deleted:
                continue
            for iid, s, t, n in e.instances():
                if s < end and t > start:
                    out.append((iid, e.seq, e.resource({"Prefer": 'outlook.timezone="UTC"'}, n)))
        return out
    return members


def route(g: "GraphResponder", address: str, parts: list[str], method: str, q: dict[str, str],
          headers: dict[str, str], body: bytes) -> Optional["Reply"]:
    from tests.graph.responder import _error, _json

    store = g.store
    if parts == ["calendarView", "delta"] and method == "GET":
        if "$skiptoken" in q or "$deltatoken" in q:
            scope = pim_delta.Scope(address, ("calendarView",), lambda: [], "", "event")  # the token's own
        else:
            if "startDateTime" not in q or "endDateTime" not in q:
                return _error(400, "ErrorInvalidParameter", "This request requires a time window specified by "
                                                            "the query string parameters StartDateTime and EndDateTime.")
            start, end = (datetime.fromisoformat(q[k].replace("Z", "+00:00")) for k in ("startDateTime", "endDateTime"))
            scope = pim_delta.Scope(address, ("calendarView", q["startDateTime"], q["endDateTime"]),
                                    _view(g, address, start, end), f"/users/{address}/calendarView/delta", "event")
        return pim_delta.reply(g, scope, q, headers)
    if parts in (["calendar", "events"], ["events"]):
        if method == "POST":
            e = Event(new_id(), address, store.tick())
            try:
                _write(e, json.loads(body))
            except (KeyError, ValueError) as error:
                return _error(400, "ErrorInvalidRequest", str(error))
            events(g)[e.id] = e
            return _json(201, e.resource(headers))
        if method == "GET":
            found = [e for e in events(g).values() if e.mailbox == address and not e.deleted]
            wanted = _FIND.match(q.get("$filter", ""))
            if wanted:
                prop, value = wanted.group(1).lower(), wanted.group(2).replace("''", "'")
                found = [e for e in found if e.extended.get(prop) == value]
            return _json(200, {"value": [e.resource(headers) for e in found]})
        return None
    if parts[0] != "events" or len(parts) != 2:
        return None
    e, n = _lookup(g, address, parts[1])
    if e is None:
        return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if method == "GET":
        out = e.resource(headers, n, "singleValueExtendedProperties" in q.get("$expand", ""))
        if "$select" in q:
            keep = set(q["$select"].split(",")) | {"@odata.type", "@odata.etag", "id"}
            out = {k: v for k, v in out.items() if k in keep}
        return _json(200, out)
    if method in ("PATCH", "DELETE") and headers.get("If-Match") not in (None, "*", e.etag):
        return _error(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed "
                                                         "because the change key passed in the request does not "
                                                         "match the current change key for the item.")
    if n >= 0:  # an occurrence: a PATCH makes (or changes) its exception, a DELETE cancels it
        if method == "PATCH":
            x = e.occurrence(n)
            try:
                _write(x, json.loads(body))
            except (KeyError, ValueError) as error:
                return _error(400, "ErrorInvalidRequest", str(error))
            x.change_key = uuid.uuid4().hex
            e.exceptions[n] = x
        elif method == "DELETE":
            e.cancelled.add(n)
        e.seq = store.tick()
        return _json(200, e.resource(headers, n)) if method == "PATCH" else (204, {}, b"")
    if method == "PATCH":
        try:
            _write(e, json.loads(body))
        except (KeyError, ValueError) as error:
            return _error(400, "ErrorInvalidRequest", str(error))
        e.change_key = uuid.uuid4().hex
        e.seq = store.tick()
        return _json(200, e.resource(headers))
    if method == "DELETE":
        e.deleted = True
        store.tick()
        return 204, {}, b""
    return _error(405, "ErrorInvalidRequest", "method not allowed")
