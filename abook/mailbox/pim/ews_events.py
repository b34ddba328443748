"""Exchange appointments (part of ``ews.EwsPimStore``): their values and back, and recurring masters as one
item per occurrence (``series.py``, ``ews_series.py``). Changed items are read during the listing to expand
masters, and the sync state carries the window's day, so the first sync of a day lists everything again.
The regarding record's name: a line in the notes plus abook's ``abookRegarding`` property naming it, so
the line is split off again when read (``ews_common.notes``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from exchangelib.ewsdatetime import EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.items import SEND_TO_NONE, CalendarItem
from exchangelib.properties import Attendee, Mailbox
from twisted.logger import Logger

from abook.mailbox.pim import ews_series, series
from abook.mailbox.pim.ews_common import (
    ATTR,
    COMMON,
    IMPORTANCE,
    REGARDING_ATTR,
    EwsConnection,
    body_text,
    date_text,
    notes,
)
from abook.mailbox.pim.interfaces import Changes, Item, ItemGone, ItemRejected, Listed, StaleItem
from abook.mailbox.pim.schema import (
    Values,
    normalise,
    parse_parties,
    parse_when,
    parties_text,
    split_regarding,
)


class EwsEvents:
    cls = CalendarItem
    only = COMMON + ["subject", "location", "body", "start", "end", "is_all_day", "importance", "organizer",
                     "required_attendees", "optional_attendees", "legacy_free_busy_status", "uid",
                     "_start_timezone", REGARDING_ATTR, *ews_series.SERIES_FIELDS]

    def __init__(self, conn: EwsConnection, window: Callable[[], series.Window], log: Logger) -> None:
        self._conn = conn
        self._address = conn.address
        self._window = window
        self.log = log

    # -- listing and reading

    def changes(self, token: Optional[str]) -> Changes:
        win = self._window()
        day, _, state = (token or "").partition("|")
        changes = self._conn.changes("appointment", state if token and day == win.day else None)
        listed: list[Listed] = []
        deleted = list(changes.deleted)
        ids = [x.id for x in changes.changed]
        expanded: dict[str, Optional[list[Item]]] = {}
        for i in range(0, len(ids), 100):
            expanded.update(self._conn.call(lambda chunk=ids[i:i + 100]: self._expand(chunk, win)))  # type: ignore[misc]
        for x in changes.changed:
            occurrences = expanded.get(x.id)
            if occurrences is None:
                listed.append(x)
            else:
                listed += [Listed(it.id, it.etag) for it in occurrences]
                deleted.append(x.id)  # its occurrences are listed in full (series.drop_series)
        return Changes(tuple(listed), tuple(deleted) if not changes.complete else (),
                       f"{win.day}|{changes.token or ''}", complete=changes.complete,
                       extra={series.FROM_KEY: win.day})

    def occurrences(self, ids: list[str]) -> tuple[list[Item], list[str]]:
        """The occurrences among ``ids`` (those still there), and the ids that are no occurrence."""
        split = [series.split_id(i) for i in ids]
        if not any(rid is not None for _, rid in split):
            return [], ids
        wanted = set(ids)
        masters = sorted({s for s, rid in split if rid is not None})
        found = self._conn.call(lambda: self._expand(masters, self._window()))
        out = [it for its in found.values() for it in its or () if it.id in wanted]
        return out, [i for i, rid in split if rid is None]

    def item(self, it: Any) -> Item:
        values = self.values(it)
        return Item(it.id, it.changekey, values, getattr(it, ATTR, None) or None, tuple(it.categories or ()),
                    values.get("uid"))

    # -- recurring masters

    def _fetch(self, ids: list[str]) -> list[Any]:
        return list(self._conn.fetch("appointment", ids, self.only))

    def _expand(self, ids: list[str], win: series.Window) -> dict[str, Optional[list[Item]]]:
        """id -> the occurrences in ``win`` of each recurring master (None: no master); gone ones left out."""
        out: dict[str, Optional[list[Item]]] = {}
        masters = []
        for it in self._fetch(ids):
            out[it.id] = None
            if getattr(it, "type", None) == "RecurringMaster" and it.recurrence is not None:
                masters.append(it)
        for it in masters:
            values = self.values(it)
            exceptions = ews_series.modified_ids(it, values["when"] is not None and "T" not in values["when"],
                                                 values.get("timezone"))
            by_id = {e.id: self.values(e) for e in self._fetch(list(exceptions.values()))} if exceptions else {}
            modified = {rid: by_id[i] for rid, i in exceptions.items() if i in by_id}
            try:
                out[it.id] = ews_series.expand_master(it.id, it, values, tuple(it.categories or ()), modified, win)
            except (ValueError, KeyError, TypeError) as e:  # a pattern abook cannot read: one item, not the listing
                self.log.warn("{address}: cannot expand a recurring series: {error}", address=self._address,
                              error=str(e)[:200])
        return out

    def occurrence_target(self, series_id: str, rid: str, etag: Optional[str], must_exist: bool = True,
                          seen: Optional[list[Item]] = None) -> Any:
        """The id to write one occurrence through: its exception's ItemId, or an OccurrenceItemId on the master."""
        from exchangelib.properties import OccurrenceItemId

        found = self._expand([series_id], series.covering(self._window(), rid)).get(series_id) or []
        item = next((it for it in found if it.id == series.occurrence_id(series_id, rid)), None)
        if item is None:
            if must_exist:
                raise ItemGone(f"{self._address}: the occurrence is no longer there")
            return None
        if etag is not None and item.etag != etag:
            raise StaleItem(f"{self._address}: the occurrence changed since it was read")
        if seen is not None:
            seen.append(item)
        (master,) = self._fetch([series_id])
        values = self.values(master)
        all_day = values["when"] is not None and "T" not in values["when"]
        exception = ews_series.modified_ids(master, all_day, values.get("timezone")).get(rid)
        if exception is not None:
            return (exception, None)
        index = ews_series.instance_index(master, values, rid)
        if index is None:
            raise ItemRejected(f"{self._address}: the occurrence has no place in its series' pattern")
        return OccurrenceItemId(id=master.id, changekey=master.changekey, instance_index=index)

    def update_occurrence(self, series_id: str, rid: str, etag: str, values: Values) -> Listed:
        occurrence_id = series.occurrence_id(series_id, rid)
        seen: list[Item] = []
        target = self.occurrence_target(series_id, rid, etag, seen=seen)
        if not values:
            return Listed(occurrence_id, etag)  # an occurrence carries no CRM id of its own
        if "description" in values or "regarding" in values:  # the notes hold both: keep the other one
            values = {"description": seen[0].values.get("description"), "regarding": seen[0].values.get("regarding"),
                      **values}
        folder = self._conn.folder("appointment")
        if isinstance(target, tuple):
            item = CalendarItem(account=folder.account, folder=folder, id=target[0], changekey=target[1])
        else:
            item = CalendarItem(account=folder.account, folder=folder, _id=target)
        fields = self.apply(item, dict(values), creating=False)
        item.save(update_fields=fields, send_meeting_invitations=SEND_TO_NONE)
        found = self._expand([series_id], series.covering(self._window(), rid)).get(series_id) or []
        current = next((it for it in found if it.id == occurrence_id), None)
        if current is None:
            raise ItemGone(f"{self._address}: the occurrence is no longer there")
        return Listed(occurrence_id, current.etag)

    # -- exchangelib items <-> values

    def values(self, it: Any) -> dict[str, Optional[str]]:
        when = zone = None
        if it.start is not None:
            if it.is_all_day:  # exchangelib gives the last day; abook's end is the day after
                end = it.end + timedelta(days=1) if it.end is not None else it.start + timedelta(days=1)
                when = f"{date_text(it.start)}/{date_text(end)}"
            else:
                when = f"{_utc(it.start)}/{_utc(it.end or it.start)}"
            tz = getattr(it, "_start_timezone", None)
            zone = getattr(tz, "key", None) if tz is not None else None
            zone = None if zone in ("UTC", "Etc/UTC", "GMT") else zone
        attendees = [("required", a.mailbox.email_address) for a in (it.required_attendees or []) if a.mailbox]
        attendees += [("optional", a.mailbox.email_address) for a in (it.optional_attendees or []) if a.mailbox]
        return normalise("appointment", {
            "when": when, "timezone": zone, "subject": it.subject,
            "location": it.location,
            "description": split_regarding(body_text(it.body), getattr(it, REGARDING_ATTR, None)),
            "regarding": getattr(it, REGARDING_ATTR, None),
            "prioritycode": (it.importance or "Normal").lower(),
            "organizer": (it.organizer.email_address or "").lower() or None if it.organizer else None,
            "attendees": parties_text([(r, a or "") for r, a in attendees]),
            "showas": "free" if it.legacy_free_busy_status == "Free" else "busy", "uid": it.uid,
        })

    def project(self, out: dict[str, Optional[str]]) -> dict[str, Optional[str]]:
        out["prioritycode"] = out["prioritycode"] or "normal"
        out["showas"] = out["showas"] or "busy"
        out["organizer"] = self._address.lower()  # Exchange makes the mailbox's owner the organiser
        if out["timezone"]:  # Exchange keeps a Windows zone: read back, it is that zone's main IANA name
            try:
                key = EWSTimeZone.from_ms_id(EWSTimeZone(out["timezone"]).ms_id).key
            except Exception:  # noqa: BLE001 - a zone Windows does not know is sent as UTC
                key = None
            out["timezone"] = None if key in ("UTC", "Etc/UTC", "GMT") else key
        return out

    def apply(self, item: Any, values: Values, creating: bool) -> list[str]:
        """Set ``values`` on an exchangelib calendar item; the item fields to update."""
        fields = notes(item, values, creating,
                       lambda: self.values(self._conn.refetch("appointment", item.id, self.only)))
        for name, attr in (("subject", "subject"), ("location", "location")):
            if name in values:
                setattr(item, attr, values[name])
                fields.append(attr)
        if "when" in values or ("timezone" in values and creating):
            zone = values.get("timezone") if "timezone" in values else None
            tz = EWSTimeZone(zone) if zone else EWSTimeZone("UTC")
            item._start_timezone = item._end_timezone = tz
            if values.get("when"):
                start, end = parse_when(values["when"])  # type: ignore[arg-type]
                if isinstance(start, datetime):
                    item.start, item.end = _ews(start, tz), _ews(end, tz)  # type: ignore[arg-type]
                    item.is_all_day = False
                else:  # exchangelib's all-day end is the last day; abook's is the day after
                    item.start = EWSDate.from_date(start)
                    item.end = EWSDate.from_date(end - timedelta(days=1))  # type: ignore[operator]
                    item.is_all_day = True
                fields += ["start", "end", "is_all_day", "_start_timezone", "_end_timezone"]
        if creating and values.get("uid"):
            item.uid = values["uid"]
        if "prioritycode" in values and values["prioritycode"]:
            item.importance = IMPORTANCE[values["prioritycode"]]  # type: ignore[index]
            fields.append("importance")
        if "showas" in values:
            item.legacy_free_busy_status = "Free" if values["showas"] == "free" else "Busy"
            fields.append("legacy_free_busy_status")
        if creating:
            required = [Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown")
                        for r, a in parse_parties(values.get("attendees")) if r == "required"]
            optional = [Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown")
                        for r, a in parse_parties(values.get("attendees")) if r == "optional"]
            item.required_attendees = required or None
            item.optional_attendees = optional or None
        return list(dict.fromkeys(fields))


def _ews(t: datetime, tz: EWSTimeZone) -> EWSDateTime:
    local = t.astimezone(tz)
    if isinstance(local, EWSDateTime) and isinstance(local.tzinfo, EWSTimeZone):
        return local
    return EWSDateTime(local.year, local.month, local.day, local.hour, local.minute, local.second, local.microsecond,
                       tzinfo=tz, fold=local.fold)


def _utc(t: Any) -> str:
    if isinstance(t, datetime):  # an EWSDateTime converts only to EWSTimeZones: go through the timestamp
        return datetime.fromtimestamp(t.timestamp(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.isoformat()
