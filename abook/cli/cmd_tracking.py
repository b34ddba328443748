"""``abook track``, ``abook untracked``, ``abook unresolved`` and the body of ``abook email show``
(``cmd_email.py`` registers it): tracking by hand and what an admin or a user wants to know about tracked
and untracked mail."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from abook.cli.common import config_of, in_store
from abook.errors import NotFound, UserError
from abook.store import owners
from abook.store import tracking_views
from abook.store.records import Owner
from abook.tracking.api import REASONS, TrackRequest, TrackResult
from abook.tracking.engine import track_txn


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("track", parents=[common], help="track one message by hand (manual tracking)")
    p.add_argument("file", nargs="?", default="-", help="an RFC 5322 message (.eml); '-' or none: standard input")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="the CRM user tracking it: user name or email address")
    who.add_argument("--queue", help="the queue tracking it: email address or name")
    p.add_argument("--direction", choices=("in", "out"), default="in",
                   help="received (in) or sent (out) mail (default: in)")
    p.add_argument("--mailbox", help="where the message was seen (default: manual:<user or queue>)")
    p.set_defaults(func=track)

    p = sub.add_parser("untracked", parents=[common], help="messages read but not tracked, and why")
    p.add_argument("--since", help="only since then: 2026-11-02, 2026-11-02T10:00, or an age like 90m, 12h, 7d")
    p.add_argument("--reason", choices=REASONS, help="only this reason")
    p.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default: 100)")
    p.set_defaults(func=untracked)

    p = sub.add_parser("unresolved", parents=[common],
                       help="a user's email with unknown addresses: received from, or sent to, no CRM record")
    p.add_argument("--user", required=True, help="user name or email address")
    p.add_argument("--direction", choices=("in", "out"),
                   help="only received (in) or only sent (out) email (default: both)")
    p.add_argument("--limit", type=int, default=100, help="at most this many, newest first (default: 100)")
    p.set_defaults(func=unresolved)


def _user_id(session: Any, name: str) -> str:
    user_id = owners.user_for_name_or_email_txn(session, name)
    if user_id is None:
        raise NotFound(f"no CRM user {name!r} (give a user name or an email address)")
    return user_id


def _owner(session: Any, args: argparse.Namespace) -> tuple[Owner, str]:
    if args.user:
        return Owner("systemuser", _user_id(session, args.user)), args.user
    queue_id = owners.queue_for_name_or_email_txn(session, args.queue)
    if queue_id is None:
        raise NotFound(f"no queue {args.queue!r} (give an email address or a queue name)")
    return Owner("queue", queue_id), args.queue


def track(args: argparse.Namespace) -> int:
    config = config_of(args)
    if args.file == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            with open(args.file, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise UserError(f"cannot read {args.file}: {e.strerror}") from None

    def track_manually_txn(session: Any) -> tuple[TrackRequest, TrackResult]:
        owner, name = _owner(session, args)
        request = TrackRequest(raw=raw, mailbox=args.mailbox or f"manual:{name}", owner=owner,
                               arrival="manual", direction=args.direction)
        return request, track_txn(session, request, config.tracking)

    request, result = in_store(config, track_manually_txn)
    if result.outcome == "tracked":
        print(f"tracked as email {result.activity_id}")
        return 0
    if result.outcome == "sighting":
        print(f"already tracked as email {result.activity_id}; recorded as seen in {request.mailbox}")
        return 0
    print(f"not tracked: {result.reason} ({result.detail})")
    return 1


_AGE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    now = now or datetime.now(timezone.utc)
    age = _AGE.match(value.strip().lower())
    if age:
        return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UserError(f"--since: expected a date (2026-11-02), a time (2026-11-02T10:00) or an age "
                        f"(90m, 12h, 7d), got {value!r}") from None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def untracked(args: argparse.Namespace) -> int:
    since = parse_since(args.since) if args.since else None
    rows = in_store(config_of(args), tracking_views.untracked_txn, since=since, reason=args.reason,
                     limit=args.limit)
    if not rows:
        print("no untracked messages")
        return 0
    for r in rows:
        print(f"{_when(r.recorded_at)}  {r.reason:<15}  {r.mailbox or '-'}  {r.external_id or '-'}  "
              f"from {r.sender or '-'}  subject {r.subject or '-'!r}  message-id {r.message_id or '-'}")
        if r.detail:
            print(f"    {r.detail}")
    return 0


def unresolved(args: argparse.Namespace) -> int:
    rows = in_store(config_of(args), lambda session: tracking_views.unresolved_txn(
        session, _user_id(session, args.user), limit=args.limit, direction=args.direction))
    if not rows:
        what = {"in": "received email from", "out": "sent email to"}.get(args.direction, "email from or to")
        print(f"no {what} an unresolved address for {args.user}")
        return 0
    for r in rows:
        shown = ", ".join(f"{name} <{address}>" if name else (address or "(no address)")
                          for name, address in r.addresses)
        print(f"{r.activity_id}  {_when(r.when)}  {'to ' if r.outgoing else ''}{shown}  {r.subject or ''!r}")
    return 0


def email_show(args: argparse.Namespace) -> int:
    detail = in_store(config_of(args), tracking_views.email_detail_txn, args.id)
    if detail is None:
        raise NotFound(f"no email activity {args.id}")
    print(f"email {detail.activity_id}")
    print(f"  subject:      {detail.subject or ''}")
    print(f"  direction:    {detail.direction} (status {detail.statuscode})")
    print(f"  owner:        {detail.owner or '-'}; accepted by {detail.accepting or '-'}")
    print(f"  message-id:   {detail.message_id or '-'}")
    print(f"  token:        {detail.tracking_token or '-'}")
    print(f"  correlation:  {detail.correlation_method or 'none'}")
    regarding = f"{detail.regarding_type} {detail.regarding_id}" if detail.regarding_id else "none"
    print(f"  regarding:    {regarding}")
    print("  parties:")
    for p in detail.parties:
        address = f"{p.display_name} <{p.address}>" if p.display_name else (p.address or "")
        record = f"{p.party_type} {p.party_id} ({p.party_name or ''})" if p.party_id else "unresolved"
        print(f"    {p.participation:<7} {address}  -> {record}")
    print("  seen in:")
    for s in detail.sightings:
        marked = "marked" if s.marked else "not marked"
        print(f"    {s.mailbox} ({s.arrival}, {s.external_id or '-'}, {marked}, {_when(s.seen_at)})")
    if detail.attachments:
        print("  attachments:")
        for filename, mimetype, size in detail.attachments:
            print(f"    {filename or '(unnamed)'}  {mimetype}  {size} bytes")
    return 0
