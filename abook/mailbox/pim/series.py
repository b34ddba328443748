"""Recurring series in a mailbox as one item per occurrence (docs/sync.md, "Recurring series").

The CRM keeps one record per occurrence, so every backend lists a recurring appointment as its
occurrences, each an item of its own:

* **id** ``<series item id>#<recurrence id>``: the series' own id (DAV href, EWS ItemId, memory id) and the
  occurrence's original start, ``YYYYMMDDTHHMMSSZ`` in UTC (``YYYYMMDD`` for an all-day series). The link
  table keeps this id as the item's id, so a link names both the series and the occurrence;
* **UID** ``<series UID>#<recurrence id>``: distinct per occurrence, so the CRM's one-record-per-UID rule
  does not fold a series into one record (the CRM keeps the series' UID in ``seriesid``);
* **etag** a hash of the occurrence's own values and categories, so editing one occurrence (or the sync
  writing to one) leaves the others unchanged: only what changed is read and written again.

Which occurrences: those starting on or after the window's first day (today, UTC, less ``lookback_days``)
and before its last (today plus ``horizon_days``, 365 by default). The window moves with the calendar:
backends list everything again on the first sync of a UTC day (the day travels in their sync token), so
occurrences that came into the horizon appear then. A linked occurrence that falls behind the window's start
keeps its link (``keep_past``): it is history, neither deleted nor re-created. Expansion is done by
``dateutil.rrule`` (memory, EWS) and ``recurring_ical_events`` (iCalendar) in the series' time zone, so each
occurrence keeps its wall-clock time across DST.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Iterable, Mapping, Optional
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

SEPARATOR = "#"
#: ``Changes.extra`` key: the first day (``YYYYMMDD``) of the window the listing's occurrences come from
FROM_KEY = "occurrences_from"
HORIZON_DAYS = 365
LOOKBACK_DAYS = 0


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def day(self) -> str:
        """The window's first day: a token carrying another day is listed in full again."""
        return self.start.strftime("%Y%m%d")


def window(now: datetime, horizon_days: int = HORIZON_DAYS, lookback_days: int = LOOKBACK_DAYS) -> Window:
    today = datetime.combine(now.astimezone(timezone.utc).date(), time(0), timezone.utc)
    return Window(today - timedelta(days=lookback_days), today + timedelta(days=horizon_days))


def covering(win: Window, rid: str) -> Window:
    """``win`` widened to hold the occurrence ``rid`` (a write to an occurrence behind the window)."""
    original = parse_rid(rid)
    day = datetime.combine(original.date() if isinstance(original, datetime) else original, time(0), timezone.utc)
    return Window(min(win.start, day), max(win.end, day + timedelta(days=1)))


def rid_text(original_start: date | datetime) -> str:
    if isinstance(original_start, datetime):
        t = original_start if original_start.tzinfo is not None else original_start.replace(tzinfo=timezone.utc)
        return t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return original_start.strftime("%Y%m%d")


def parse_rid(text: str) -> date | datetime:
    if "T" in text:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return datetime.strptime(text, "%Y%m%d").date()


def occurrence_id(series_id: str, rid: str) -> str:
    return f"{series_id}{SEPARATOR}{rid}"


def split_id(item_id: str) -> tuple[str, Optional[str]]:
    """(series id, recurrence id) of an occurrence's id; (id, None) for any other item."""
    series_id, sep, rid = item_id.rpartition(SEPARATOR)
    return (series_id, rid) if sep and series_id else (item_id, None)


def occurrence_uid(uid: Optional[str], rid: str) -> Optional[str]:
    return f"{uid}{SEPARATOR}{rid}" if uid else None


def split_uid(uid: Optional[str]) -> tuple[Optional[str], Optional[date | datetime]]:
    """(series UID, original start) of an occurrence's UID; (uid, None) otherwise."""
    if not uid:
        return uid, None
    series_uid, sep, rid = uid.rpartition(SEPARATOR)
    if not sep or not series_uid:
        return uid, None
    try:
        return series_uid, parse_rid(rid)
    except ValueError:
        return uid, None


def content_etag(values: Mapping[str, Optional[str]], categories: Iterable[str] = (), crm_id: Optional[str] = None) -> str:
    text = json.dumps([dict(values), sorted(categories), crm_id], sort_keys=True, separators=(",", ":"))
    return '"occ-' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24] + '"'


def expand(rule: str, start: date | datetime, end: date | datetime, zone: Optional[str], win: Window,
           exdates: Iterable[str] = ()) -> list[tuple[str, date | datetime, date | datetime]]:
    """The occurrences of an RFC 5545 RRULE value (``FREQ=WEEKLY;COUNT=10``) in ``win``: (recurrence id, start,
    end). A timed series recurs at its wall-clock time in ``zone`` (UTC when None); ``exdates`` are recurrence
    ids left out (deleted occurrences)."""
    skip = set(exdates)
    duration = end - start  # type: ignore[operator]
    out: list[tuple[str, date | datetime, date | datetime]] = []
    if isinstance(start, datetime):
        tz = _zone(zone)
        local = start.astimezone(tz).replace(tzinfo=None)
        rule_set = rrulestr(rule, dtstart=local, forceset=True)
        lo = win.start.astimezone(tz).replace(tzinfo=None) - abs(duration)
        hi = win.end.astimezone(tz).replace(tzinfo=None)
        for naive in rule_set.between(lo, hi, inc=True):
            s = naive.replace(tzinfo=tz).astimezone(timezone.utc)
            rid = rid_text(s)
            if rid in skip or not (win.start <= s < win.end):
                continue
            out.append((rid, s, s + duration))
        return out
    rule_set = rrulestr(rule, dtstart=datetime.combine(start, time(0)), forceset=True)
    lo = datetime.combine(win.start.date(), time(0))
    hi = datetime.combine(win.end.date(), time(0))
    for naive in rule_set.between(lo, hi, inc=True):
        d = naive.date()
        rid = rid_text(d)
        if rid in skip or naive >= hi:
            continue
        out.append((rid, d, d + duration))
    return out


def _zone(name: Optional[str]) -> ZoneInfo | timezone:
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return timezone.utc


def keep_past(listing: dict[str, str], linked: Mapping[str, str], extra: Mapping[str, str]) -> None:
    """Keep linked occurrences that fell behind the listing's window in ``listing`` (unchanged): they are
    history, and their absence from the listing is no evidence of a delete. ``linked``: item id -> etag."""
    first = extra.get(FROM_KEY)
    if not first:
        return
    for item_id, etag in linked.items():
        series_id, rid = split_id(item_id)
        if rid is not None and rid[:8] < first and item_id not in listing:
            listing[item_id] = etag


def drop_series(listing: dict[str, str], gone: Iterable[str]) -> None:
    """A delta reports a series resource as deleted when it is deleted or changed (its current occurrences are
    then listed again): forget every occurrence of it."""
    series = set(gone)
    if not series:
        return
    for item_id in list(listing):
        series_id, rid = split_id(item_id)
        if item_id in series or (rid is not None and series_id in series):
            del listing[item_id]
