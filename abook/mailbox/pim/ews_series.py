"""An Exchange recurring master as one item per occurrence (``series.py``), for ``ews.py``.

Exchange describes a series by its ``Recurrence`` (a pattern - daily, weekly, absolute or relative monthly
and yearly - and a boundary: no end, an end date, a number of occurrences), its ``DeletedOccurrences`` and
its ``ModifiedOccurrences`` (exceptions, each an item of its own with an ItemId and the original start).
The pattern is written as the RFC 5545 RRULE it stands for, and ``dateutil.rrule`` expands it in the
series' time zone (``series.expand``); deleted occurrences are left out, modified ones read from their own
item. Writing to an occurrence goes to its exception's ItemId, or to the master's occurrence by index
(``OccurrenceItemId``: the 1-based position in the pattern from the series' start, deleted ones counted).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping, Optional
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    EndDatePattern,
    NumberedPattern,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from abook.mailbox.pim import series
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import parse_when, when_text

#: the calendar fields a master needs beyond the mapped ones
SERIES_FIELDS = ["type", "recurrence", "modified_occurrences", "deleted_occurrences"]
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: EWS's DaysOfWeek values that stand for several days
_DAY_SETS = {"Day": _DAYS, "Weekday": _DAYS[:5], "WeekendDay": _DAYS[5:]}
_WEEKS = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")


def _days(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for v in items:
        if isinstance(v, int):
            out += [_DAYS[v - 1]] if v <= 7 else list(_DAY_SETS[("Day", "Weekday", "WeekendDay")[v - 8]])
        elif v in _DAY_SETS:
            out += list(_DAY_SETS[v])
        else:
            out.append(_DAYS[_DAY_NAMES.index(str(v))])
    return tuple(out)


def _week(value: Any) -> int:
    if isinstance(value, int):
        return -1 if value == 5 else value
    return _WEEKS[str(value)]


def _month(value: Any) -> int:
    return value if isinstance(value, int) else _MONTHS.index(str(value)) + 1


def rrule_of(recurrence: Any, zone: Optional[str]) -> Optional[str]:
    """The RRULE value of an EWS Recurrence (None for a pattern abook does not expand)."""
    if recurrence is None:
        return None
    p, b = recurrence.pattern, recurrence.boundary
    if isinstance(p, DailyPattern):
        parts = [f"FREQ=DAILY;INTERVAL={p.interval}"]
    elif isinstance(p, WeeklyPattern):
        parts = [f"FREQ=WEEKLY;INTERVAL={p.interval};BYDAY={','.join(_days(p.weekdays))}"]
        if p.first_day_of_week:
            parts.append(f"WKST={_days(p.first_day_of_week)[0]}")
    elif isinstance(p, AbsoluteMonthlyPattern):
        parts = [f"FREQ=MONTHLY;INTERVAL={p.interval};BYMONTHDAY={p.day_of_month}"]
    elif isinstance(p, RelativeMonthlyPattern):
        parts = [f"FREQ=MONTHLY;INTERVAL={p.interval};BYDAY={','.join(_days(p.weekday))};BYSETPOS={_week(p.week_number)}"]
    elif isinstance(p, AbsoluteYearlyPattern):
        parts = [f"FREQ=YEARLY;BYMONTH={_month(p.month)};BYMONTHDAY={p.day_of_month}"]
    elif isinstance(p, RelativeYearlyPattern):
        parts = [f"FREQ=YEARLY;BYMONTH={_month(p.month)};BYDAY={','.join(_days(p.weekday))};"
                 f"BYSETPOS={_week(p.week_number)}"]
    else:
        return None
    if isinstance(b, NumberedPattern):
        parts.append(f"COUNT={b.number}")
    elif isinstance(b, EndDatePattern):
        end = b.end if not isinstance(b.end, datetime) else b.end.date()
        parts.append(f"UNTIL={end:%Y%m%d}T235959")  # the end date is a local date, its last second included
    return ";".join(parts)


def _rid_of(t: Any, all_day: bool, zone: Optional[str]) -> str:
    """The recurrence id of an occurrence Exchange names by its (original) start."""
    if all_day:
        local = datetime.fromtimestamp(t.timestamp(), ZoneInfo(zone) if zone else timezone.utc)
        return series.rid_text(local.date())
    return series.rid_text(datetime.fromtimestamp(t.timestamp(), timezone.utc))


def expand_master(series_id: str, it: Any, values: Mapping[str, Optional[str]], categories: tuple[str, ...],
                  modified: Mapping[str, dict[str, Optional[str]]], win: series.Window) -> Optional[list[Item]]:
    """The occurrences of a recurring master in ``win`` (None when ``it`` is no master abook can expand).
    ``values``: the master's canonical values; ``modified``: recurrence id -> an exception's values."""
    if getattr(it, "type", None) != "RecurringMaster" or not values.get("when"):
        return None
    rule = rrule_of(it.recurrence, values.get("timezone"))
    if rule is None:
        return None
    start, end = parse_when(values["when"])  # type: ignore[arg-type]
    all_day = not isinstance(start, datetime)
    exdates = {_rid_of(d.start, all_day, values.get("timezone")) for d in (it.deleted_occurrences or []) if d.start}
    out = []
    for rid, s, e in series.expand(rule, start, end, values.get("timezone"), win, exdates):
        occurrence = dict(modified.get(rid) or {**values, "when": when_text(s, e)})
        occurrence["uid"] = series.occurrence_uid(values.get("uid"), rid)
        out.append(Item(series.occurrence_id(series_id, rid), series.content_etag(occurrence, categories), occurrence,
                        None, categories, occurrence["uid"]))
    return out


def modified_ids(it: Any, all_day: bool, zone: Optional[str]) -> dict[str, str]:
    """recurrence id -> the exception's ItemId."""
    return {_rid_of(o.original_start, all_day, zone): o.id for o in (it.modified_occurrences or [])
            if o.original_start is not None and o.id}


def instance_index(it: Any, values: Mapping[str, Optional[str]], rid: str) -> Optional[int]:
    """The 1-based position of the occurrence ``rid`` in the master's pattern (deleted ones counted)."""
    rule = rrule_of(it.recurrence, values.get("timezone"))
    if rule is None or not values.get("when"):
        return None
    start, _ = parse_when(values["when"])  # type: ignore[arg-type]
    zone = values.get("timezone")
    if isinstance(start, datetime):
        tz = ZoneInfo(zone) if zone else timezone.utc
        dtstart = start.astimezone(tz).replace(tzinfo=None)
        target = series.parse_rid(rid)
        assert isinstance(target, datetime)
        last = target.astimezone(tz).replace(tzinfo=None)
    else:
        dtstart = datetime.combine(start, time(0))
        target_day = series.parse_rid(rid)
        last = datetime.combine(target_day if isinstance(target_day, date) else target_day.date(), time(0))
    found = rrulestr(rule, dtstart=dtstart, forceset=True).between(dtstart - timedelta(seconds=1), last, inc=True)
    return len(found) if found and found[-1] == last else None
