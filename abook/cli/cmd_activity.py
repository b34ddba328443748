"""``abook activity list|show|create|delete``: appointments, tasks, faxes, letters and phone calls.

Times are ISO 8601 (``2026-03-29T09:30``, ``2026-03-29T09:30:00+02:00``, ``2026-03-29`` for all-day
appointments); a time without an offset is read in ``--tz`` (default UTC). Listed times are shown in UTC.
"""

from __future__ import annotations

import argparse
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from abook.cli.common import config_of, in_store
from abook.errors import UserError
from abook.store import activities
from abook.store.activities import ActivityRecord
from abook.store.enums import ACTIVITY_KINDS, ActivityState, Priority


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("activity", parents=[common], help="appointments, tasks, faxes, letters and phone calls")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("list", parents=[common], help="list activities")
    a.add_argument("--type", choices=ACTIVITY_KINDS, help="only activities of this type (default: all)")
    a.add_argument("--owner", metavar="USER", help="only those USER owns")
    a.add_argument("--as", dest="readable_by", metavar="USER", help="only those USER may read (role depth)")
    a.add_argument("--limit", type=int, default=None, metavar="COUNT", help="at most COUNT, newest first (default: all)")
    a.set_defaults(func=activity_list)

    a = actions.add_parser("show", parents=[common], help="show one activity with its parties")
    a.add_argument("id", help="the activity's id")
    a.set_defaults(func=activity_show)

    a = actions.add_parser("create", parents=[common], help="create an activity")
    a.add_argument("type", choices=ACTIVITY_KINDS, help="what to create")
    a.add_argument("--owner", required=True, metavar="USER", help="the owning user (user name, id or email)")
    a.add_argument("--subject", required=True, help="the subject")
    a.add_argument("--description", help="the notes (plain text)")
    a.add_argument("--start", help="appointment start / task start date")
    a.add_argument("--end", help="appointment end / task due date")
    a.add_argument("--all-day", action="store_true", help="appointment: whole days (--start and --end are dates, "
                                                           "--end exclusive); task: dates without a time")
    a.add_argument("--tz", default="UTC", help="IANA time zone the times are given in (default UTC)")
    a.add_argument("--location", help="appointment: where")
    a.add_argument("--organiser", metavar="EMAIL", help="appointment: the organiser (default: none recorded)")
    a.add_argument("--required", action="append", default=[], metavar="EMAIL", help="a required attendee (repeatable)")
    a.add_argument("--optional", action="append", default=[], metavar="EMAIL", help="an optional attendee (repeatable)")
    a.add_argument("--regarding", metavar="ENTITY:ID", help="the record it is about, e.g. contact:<id>")
    a.add_argument("--priority", choices=[p.name for p in Priority], default="normal",
                   help="importance (default: normal)")
    a.add_argument("--state", choices=[s.name for s in ActivityState], help="its state (default: scheduled for an appointment, open otherwise)")
    a.add_argument("--percent", type=int, help="task: percent complete")
    a.add_argument("--phone", help="phone call: the number")
    a.set_defaults(func=activity_create)

    a = actions.add_parser("delete", parents=[common], help="delete an activity")
    a.add_argument("id", help="the activity's id")
    a.set_defaults(func=activity_delete)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {name!r}: expected an IANA name such as Europe/Berlin") from None


def parse_time(value: str, zone: ZoneInfo, *, whole_day: bool = False) -> datetime:
    """ISO text -> aware UTC; a date alone is midnight in ``zone``."""
    try:
        if whole_day or len(value.strip()) == 10:
            d = date.fromisoformat(value.strip())
            return datetime.combine(d, time(0), zone).astimezone(timezone.utc)
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"bad time {value!r}: expected ISO 8601 such as 2026-03-29T09:30 or 2026-03-29") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone)
    return t.astimezone(timezone.utc)


def activity_create(args: argparse.Namespace) -> int:
    zone = _zone(args.tz)
    values: dict[str, Any] = {"subject": args.subject, "description": args.description, "location": args.location,
                              "prioritycode": int(Priority[args.priority]), "alldayevent": args.all_day,
                              "timezone": args.tz if args.type == "appointment" else None}
    if args.start:
        values["scheduledstart"] = parse_time(args.start, zone, whole_day=args.all_day)
    if args.end:
        values["scheduledend"] = parse_time(args.end, zone, whole_day=args.all_day)
    if args.type == "appointment" and args.all_day and values.get("scheduledstart") and not args.end:
        values["scheduledend"] = values["scheduledstart"] + timedelta(days=1)
    if args.state:
        values["statecode"] = int(ActivityState[args.state])
    if args.percent is not None:
        values["percentcomplete"] = args.percent
    if args.phone:
        values["phonenumber"] = args.phone
    if args.regarding:
        kind, sep, rid = args.regarding.partition(":")
        if not sep or not rid:
            raise UserError(f"bad --regarding {args.regarding!r}: expected ENTITY:ID such as contact:<id>")
        values["regarding_type"], values["regarding_id"] = kind, rid
    values = {k: v for k, v in values.items() if v is not None}
    wanted = ([("organiser", args.organiser, None)] if args.organiser else []) + \
        [("required", a, None) for a in args.required] + [("optional", a, None) for a in args.optional]

    def create(session: Any) -> ActivityRecord:
        if "regarding_type" in values and not activities.regarding_exists_txn(session, values["regarding_type"],
                                                                              values["regarding_id"]):
            raise UserError(f"no {values['regarding_type']} {values['regarding_id']}")
        parties = activities.resolve_parties_txn(session, wanted)
        return activities.create_activity_txn(session, args.type, args.owner, parties=parties, **values)

    record = in_store(config_of(args), create)
    print(f"created {record.kind} {record.id}")
    return 0


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else "-"


def activity_list(args: argparse.Namespace) -> int:
    records = in_store(config_of(args), activities.list_activities_txn, kind=args.type, owner=args.owner,
                       readable_by=args.readable_by, limit=args.limit)
    rows = [("ID", "TYPE", "STATE", "START (UTC)", "END/DUE (UTC)", "SUBJECT")]
    for r in records:
        rows.append((r.id, r.kind, ActivityState(r.statecode).name, _when(r.scheduledstart), _when(r.scheduledend),
                     (r.subject or "")[:60]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def activity_show(args: argparse.Namespace) -> int:
    r = in_store(config_of(args), activities.get_activity_txn, args.id)
    for name in ("id", "kind", "owner_id", "subject", "statecode", "statuscode", "prioritycode", "scheduledstart",
                 "scheduledend", "actualend", "alldayevent", "timezone", "location", "percentcomplete", "phonenumber",
                 "regarding_type", "regarding_id", "globalobjectid", "seriesid", "description"):
        value = getattr(r, name)
        if value not in (None, ""):
            print(f"{name + ':':<16} {value.isoformat() if isinstance(value, datetime) else value}")
    for p in r.parties:
        print(f"{'party:':<16} {p.role} {p.address or ''} {f'({p.party_type} {p.party_id})' if p.party_id else ''}")
    return 0


def activity_delete(args: argparse.Namespace) -> int:
    in_store(config_of(args), activities.delete_activity_txn, args.id)
    print(f"deleted {args.id}")
    return 0
