"""Appointments in an Exchange Online calendar through Microsoft Graph (part of ``graph.GraphPimStore``).

- Changes: ``/users/{mailbox}/calendarView/delta?startDateTime=..&endDateTime=..``: Graph tracks events only
  inside a fixed window. abook's window runs ``calendar_days_back`` before to ``calendar_days_ahead`` after
  an anchor day that moves in whole steps of ``calendar_window_step_days`` (so the window moves once a
  step, not every day). The token is ``"{start} {end} {deltaLink}"``. When the window has moved, the old
  round is finished from its deltaLink (what changed and what went since the last sync) and a fresh round
  over the new window is started; the new round's deltaLink is the token from then on.
- Never a deletion for leaving the window: every ``@removed`` id is looked up (``GET /events/{id}``); one that
  is still there (moved out of the window, or listed again in the same round) is a change, only one that is
  gone is a deletion. A listing is never ``complete`` (it covers the window, not the calendar), so the engine
  keeps every linked item it was not told is gone: an event that merely left the window keeps its link and
  its CRM record. After a lost delta state (410) the engine looks up every linked event the fresh round
  did not show, so one deleted meanwhile is seen gone.
- Recurring series, as the EWS and CalDAV backends: one item per occurrence (the CRM keeps one record per
  occurrence). calendarView lists the occurrences and exceptions in the window, each with Graph's own id
  (``GET``/``PATCH`` of it reads or makes that occurrence's exception, ``DELETE`` deletes that occurrence)
  and etag; its UID is ``<series UID>#<original start>`` (series.py), the series' UID read from its master.
  A series deleted in Outlook is its occurrences' removals: each is a deletion.
- Times: ``Prefer: outlook.timezone="UTC"`` so ``start``/``end`` come in UTC; the event's own zone is its
  ``originalStartTimeZone`` (a Windows zone, read as its main IANA name, as EWS). Written in the item's zone
  (its Windows name), all-day events as midnight dates with ``isAllDay``.
- The regarding record's name: a "Regarding: ..." line at the end of the notes, and the EWS backend's
  ``abookRegarding`` property naming it, so the line is split off again when read (never copied back).
- The CRM id in the EWS backend's extended property (filterable, so ``find`` is one ``$filter``). Graph's
  ``iCalUId`` is read-only: the CRM's UID is kept in abook's own property ``abookUid`` and read from there,
  else ``iCalUId``.
- Graph has no "send to none": an event created with attendees invites them. Attendees are written only
  when the engine asks to notify (the organiser's sync, a future meeting); ``project`` leaves them out
  (a fixed field: what the mailbox then shows is not copied back).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Optional
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from abook.mailbox.errors import CursorInvalid
from abook.mailbox.graph_client import GraphClient
from abook.mailbox.pim.graph_common import CRM_ID, PROPERTY_SET, DeltaRound, fetch, write
from abook.mailbox.pim.interfaces import Changes, Item, ItemGone, Listed
from abook.mailbox.pim.series import occurrence_uid, rid_text
from abook.mailbox.pim.schema import (
    Values,
    normalise,
    parse_parties,
    parse_when,
    parties_text,
    split_regarding,
    with_regarding,
)

UID = f"String {PROPERTY_SET} Name abookUid"
#: the regarding record's name shown in the notes (the EWS backend's abookRegarding)
REGARDING = f"String {PROPERTY_SET} Name abookRegarding"
PREFER = 'outlook.timezone="UTC", outlook.body-content-type="text"'
_EXPAND = "singleValueExtendedProperties($filter=" + " or ".join(f"id eq '{p}'" for p in (CRM_ID, UID, REGARDING)) + ")"
_UTC_NAMES = {"UTC", "Etc/UTC", "GMT", "Etc/GMT", "tzone://Microsoft/Utc"}
_INSTANCES = ("occurrence", "exception")


@dataclass(frozen=True)
class Window:
    """The calendarView window: ``back`` days before to ``ahead`` days after an anchor day that moves in
    steps of ``step`` days (so the window's end is always ``ahead`` to ``ahead + step`` days away)."""

    back: int = 30
    ahead: int = 365
    step: int = 7

    def at(self, today: date) -> tuple[str, str]:
        n = today.toordinal()
        anchor = date.fromordinal(n - n % self.step)
        start, end = anchor - timedelta(days=self.back), anchor + timedelta(days=self.ahead + self.step)
        return f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T00:00:00Z"


def windows_zone(zone: Optional[str]) -> Optional[str]:
    """The Windows zone Exchange keeps for an IANA name (None: unknown, or UTC)."""
    if not zone:
        return None
    from exchangelib.winzone import IANA_TO_MS_TIMEZONE_MAP  # the CLDR table, as the EWS backend uses it

    found = IANA_TO_MS_TIMEZONE_MAP.get(zone)
    return None if found is None or found[0] == "UTC" else found[0]


def iana_zone(name: Optional[str]) -> Optional[str]:
    """The main IANA name of a zone Graph names (Windows or IANA); None for UTC or an unknown one."""
    if not name or name in _UTC_NAMES:
        return None
    from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP

    if name in MS_TIMEZONE_TO_IANA_MAP:
        key = MS_TIMEZONE_TO_IANA_MAP[name]
    else:
        win = windows_zone(name)
        key = MS_TIMEZONE_TO_IANA_MAP.get(win) if win else None
    return None if key is None or key in _UTC_NAMES else key


def _aware(dtz: dict[str, Any]) -> datetime:
    """A dateTimeTimeZone as an aware time (UTC when the preference was honoured, else its own zone)."""
    local = datetime.fromisoformat(dtz["dateTime"][:19])
    zone = iana_zone(dtz.get("timeZone"))
    return local.replace(tzinfo=ZoneInfo(zone) if zone else timezone.utc)


def _utc(dtz: dict[str, Any]) -> str:
    return _aware(dtz).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphEvents:
    def __init__(self, client: GraphClient, address: str, window: Window, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.address = address
        self.window = window
        self.clock = clock
        self._user = f"/users/{quote(address, safe='@')}"

    def _path(self, item_id: str) -> str:
        return f"{self._user}/events/{quote(item_id)}"

    def _initial(self, start: str, end: str) -> str:
        return f"{self._user}/calendarView/delta?startDateTime={start}&endDateTime={end}"

    # -- changes

    def changes(self, token: Optional[str]) -> Changes:
        start, end = self.window.at(self.clock().astimezone(timezone.utc).date())
        changed: dict[str, dict[str, Any]] = {}
        removed: dict[str, None] = {}
        if token is not None:
            parts = token.split(" ", 2)
            if len(parts) != 3:
                raise CursorInvalid(f"{self.client.name}: not a calendarView token")
            if (parts[0], parts[1]) == (start, end):
                r = DeltaRound(self.client, parts[2], "calendarView", PREFER)  # 410 -> CursorInvalid: list anew
                return self._changes(r.changed, r.removed, f"{start} {end} {r.delta_link}")
            try:  # the window moved: first what changed in the old one since the last sync
                old = DeltaRound(self.client, parts[2], "calendarView", PREFER)
                changed, removed = old.changed, old.removed
            except CursorInvalid:
                pass
        fresh = DeltaRound(self.client, self._initial(start, end), "calendarView", PREFER)
        changed.update(fresh.changed)
        removed.update(fresh.removed)
        return self._changes(changed, removed, f"{start} {end} {fresh.delta_link}")

    def _changes(self, changed: dict[str, dict[str, Any]], removed: dict[str, None], token: str) -> Changes:
        """Single events, occurrences and exceptions are items (a series master is not: calendarView never
        lists one); removals are looked up, and only the gone ones are deletions."""
        listed: dict[str, Listed] = {}
        look = dict(removed)
        for item_id, entry in changed.items():
            if item_id in removed or entry.get("type") == "seriesMaster":
                continue
            if entry.get("@odata.etag"):
                listed[item_id] = Listed(item_id, entry["@odata.etag"])
            else:  # an entry without its etag: read it
                look[item_id] = None
        there = fetch(self.client, {i: self._path(i) + "?$select=type" for i in look}) if look else {}
        deleted = [i for i in removed if i not in there]
        for item_id, r in there.items():
            if r.get("type") != "seriesMaster":
                listed[item_id] = Listed(item_id, r["@odata.etag"])
        return Changes(tuple(listed.values()), tuple(deleted), token, complete=False)

    # -- items

    def get(self, ids: list[str]) -> list[Item]:
        paths = {i: f"{self._path(i)}?$expand={quote(_EXPAND)}" for i in ids}
        found = fetch(self.client, paths, PREFER) if ids else {}
        masters = {r["seriesMasterId"] for r in found.values() if r.get("type") in _INSTANCES and r.get("seriesMasterId")}
        select = f"?$select=iCalUId&$expand={quote(_EXPAND)}"
        series = fetch(self.client, {m: self._path(m) + select for m in masters}) if masters else {}
        return [self._item(found[i], series) for i in ids if i in found]

    def create(self, values: Values, crm_id: str, notify: bool) -> Listed:
        v = normalise("appointment", values)
        body = self._body(v, creating=True)
        props = [{"id": CRM_ID, "value": crm_id}] if crm_id else []
        if v.get("uid"):
            props.append({"id": UID, "value": v["uid"]})
        if v.get("regarding"):
            props.append({"id": REGARDING, "value": v["regarding"]})
        if props:
            body["singleValueExtendedProperties"] = props
        if notify:  # Graph invites every attendee of an event it creates: only when the engine says so
            body["attendees"] = [{"type": role, "emailAddress": {"address": address}}
                                 for role, address in parse_parties(v.get("attendees"))]
        r = self.client.json("POST", f"{self._user}/calendar/events", prefer=PREFER, json=body)
        return Listed(r["id"], r["@odata.etag"])

    def update(self, item_id: str, etag: str, values: Values, crm_id: Optional[str]) -> Listed:
        values = dict(values)
        if values.get("when") and "timezone" not in values:  # new times in the event's own zone, kept
            found = fetch(self.client, {item_id: self._path(item_id) + "?$select=originalStartTimeZone"})
            if item_id not in found:
                raise ItemGone(f"{self.client.name}: event {item_id} is gone")
            values["timezone"] = iana_zone(found[item_id].get("originalStartTimeZone"))
        props = [{"id": CRM_ID, "value": crm_id}] if crm_id is not None else []
        if ("description" in values) != ("regarding" in values):  # the notes hold both: keep the other one
            (current,) = self.get([item_id]) or [None]
            if current is None:
                raise ItemGone(f"{self.client.name}: event {item_id} is gone")
            values = {"description": current.values.get("description"),
                      "regarding": current.values.get("regarding"), **values}
        if "regarding" in values:
            props.append({"id": REGARDING, "value": values["regarding"] or ""})
        body = self._body(values, creating=False)
        if props:
            body["singleValueExtendedProperties"] = props
        if not body:
            return Listed(item_id, etag)
        r = write(self.client, "PATCH", self._path(item_id), etag, f"event {item_id}", prefer=PREFER, json=body)
        return Listed(r["id"], r["@odata.etag"])

    def delete(self, item_id: str, notify: bool) -> None:
        """``DELETE`` of an event the mailbox organises sends the cancellations itself; with ``notify`` the
        engine asks for them (the organiser's sync, a future meeting). Without, the event is deleted all
        the same: Graph has no silent delete of a meeting with attendees, which abook only creates when it
        notifies."""
        try:
            write(self.client, "DELETE", self._path(item_id), None, f"event {item_id}")
        except ItemGone:
            return  # already gone

    def find(self, crm_id: str) -> Optional[Listed]:
        value = crm_id.replace("'", "''")
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '{value}')"
        found = self.client.json("GET", f"{self._user}/calendar/events?$select=subject&$filter={quote(flt)}")
        for entry in found.get("value", []):
            return Listed(entry["id"], entry["@odata.etag"])
        return None

    def project(self, values: Values, address: str) -> dict[str, Optional[str]]:
        out = normalise("appointment", values)
        out["prioritycode"] = out["prioritycode"] or "normal"
        out["showas"] = out["showas"] or "busy"
        out["organizer"] = address.lower()  # Exchange makes the mailbox's owner the organiser
        out["attendees"] = None  # written only when notifying (see the module's docstring)
        out["timezone"] = iana_zone(windows_zone(out["timezone"]))
        return out

    # -- Graph event <-> values

    def _body(self, values: dict[str, Optional[str]], creating: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "subject" in values:
            body["subject"] = values["subject"] or ""
        if "location" in values:
            body["location"] = {"displayName": values["location"] or ""}
        if "description" in values or "regarding" in values:  # the notes, then the regarding line
            text = with_regarding(values.get("description"), values.get("regarding"))
            body["body"] = {"contentType": "text", "content": text or ""}
        if values.get("when"):
            zone = iana_zone(windows_zone(values.get("timezone")))
            win = windows_zone(zone) or "UTC"
            tz = ZoneInfo(zone) if zone else timezone.utc
            start, end = parse_when(values["when"])  # type: ignore[arg-type]
            if isinstance(start, datetime):
                body["start"], body["end"] = ({"dateTime": t.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S"),
                                               "timeZone": win} for t in (start, end))  # type: ignore[union-attr]
                body["isAllDay"] = False
            else:
                body["start"], body["end"] = ({"dateTime": f"{d.isoformat()}T00:00:00", "timeZone": win}
                                              for d in (start, end))
                body["isAllDay"] = True
        if values.get("prioritycode"):
            body["importance"] = values["prioritycode"]
        if "showas" in values:
            body["showAs"] = "free" if values["showas"] == "free" else "busy"
        return body

    def _item(self, r: dict[str, Any], series: dict[str, dict[str, Any]]) -> Item:
        props = {p["id"].lower(): p.get("value") for p in r.get("singleValueExtendedProperties") or []}
        when = None
        if r.get("start") and r.get("end"):
            if r.get("isAllDay"):
                when = f"{r['start']['dateTime'][:10]}/{r['end']['dateTime'][:10]}"
            else:
                when = f"{_utc(r['start'])}/{_utc(r['end'])}"
        body = r.get("body") or {}
        text = body.get("content")
        if text and body.get("contentType", "text").lower() == "html":
            from abook.mailbox.pim.html import html_to_text

            text = html_to_text(text)
        organizer = ((r.get("organizer") or {}).get("emailAddress") or {}).get("address")
        parties = [(a.get("type"), (a.get("emailAddress") or {}).get("address") or "") for a in r.get("attendees") or []]
        uid = props.get(UID.lower()) or r.get("iCalUId")
        master = series.get(r.get("seriesMasterId") or "") if r.get("type") in _INSTANCES else None
        if master is not None and r.get("originalStart"):  # an occurrence: <series UID>#<original start>
            mprops = {p["id"].lower(): p.get("value") for p in master.get("singleValueExtendedProperties") or []}
            original = datetime.fromisoformat(r["originalStart"].replace("Z", "+00:00"))
            rid = rid_text(original.date() if r.get("isAllDay") else original)
            uid = occurrence_uid(mprops.get(UID.lower()) or master.get("iCalUId"), rid)
        regarding = props.get(REGARDING.lower()) or None
        values = normalise("appointment", {
            "when": when, "timezone": iana_zone(r.get("originalStartTimeZone")), "subject": r.get("subject"),
            "location": (r.get("location") or {}).get("displayName"),
            "description": split_regarding(text, regarding), "regarding": regarding,
            "prioritycode": (r.get("importance") or "normal").lower(),
            "organizer": organizer.lower() if organizer else None,
            "attendees": parties_text([(t, a) for t, a in parties if t in ("required", "optional")]),
            "showas": "free" if r.get("showAs") == "free" else "busy", "uid": uid,
        })
        return Item(r["id"], r["@odata.etag"], values, props.get(CRM_ID.lower()) or None,
                    tuple(r.get("categories") or ()), uid)
