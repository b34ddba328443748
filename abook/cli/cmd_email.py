"""``abook email compose|list|show``: write CRM email for the router to send, see where each one is, and
show one email in full."""

from __future__ import annotations

import argparse
import mimetypes
import sys
from pathlib import Path
from typing import Any

from abook.cli.cmd_tracking import email_show
from abook.cli.cmd_user import print_table
from abook.cli.common import config_of, in_store
from abook.errors import NotFound, UserError
from abook.routing.compose import compose_txn
from abook.store.emails import (
    RECIPIENT_ENTITIES,
    REGARDING_ENTITIES,
    STATES,
    Draft,
    list_emails_txn,
    record_label_txn,
    regarding_txn,
)
from abook.store.tracking import set_regarding_txn

_RECIPIENT = (f"an email address, or ENTITY:NAME for a CRM record's primary email (ENTITY one of "
              f"{', '.join(RECIPIENT_ENTITIES)}; NAME its name or id)")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("email", parents=[common], help="CRM email: write it for the router to send, list it, show it")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser(
        "compose", parents=[common], help="write an email the router sends (Pending Send)",
        description="Create a CRM email in Pending Send, with its tracking token, as the CRM does when a user sends "
                    "one. The router sends it over [smtp] with the token in the subject, when the sender's outgoing "
                    "method is router (the command warns otherwise); `abook email list` shows where it is.")
    who = a.add_argument_group("sender (at least one)")
    who.add_argument("--user", metavar="USER", help="the sending user (user name or email); with --queue: the user "
                                                   "owning the email")
    who.add_argument("--queue", metavar="QUEUE", help="the sending queue (name or email); its email is owned by "
                                                     "--user, else by the user owning the queue's tracked mail")
    a.add_argument("--to", action="append", default=[], metavar="RECIPIENT", help=f"{_RECIPIENT} (repeatable)")
    a.add_argument("--cc", action="append", default=[], metavar="RECIPIENT", help="as --to (repeatable)")
    a.add_argument("--bcc", action="append", default=[], metavar="RECIPIENT", help="as --to (repeatable)")
    a.add_argument("--subject", required=True, help="the subject (the router appends the tracking token)")
    a.add_argument("--body", metavar="FILE", default="-",
                   help="a UTF-8 text file holding the body; '-': standard input (default: -)")
    a.add_argument("--regarding", metavar="ENTITY:NAME",
                   help=f"the record the email is regarding (ENTITY one of {', '.join(REGARDING_ENTITIES)})")
    a.add_argument("--attach", action="append", default=[], metavar="FILE", help="a file to attach (repeatable)")
    a.set_defaults(func=email_compose)

    a = actions.add_parser("list", parents=[common], help="CRM email and where it is: pending, sending, sent, failed")
    a.add_argument("--state", action="append", choices=tuple(STATES), metavar="STATE",
                   help=f"only this state, one of {', '.join(STATES)} (repeatable; default: all of them)")
    a.add_argument("--user", metavar="USER", help="only email this user owns (user name or email)")
    a.add_argument("--queue", metavar="QUEUE", help="only email this queue sends (name or email)")
    a.add_argument("--limit", type=int, default=50, help="at most this many, newest first (default: 50)")
    a.set_defaults(func=email_list)

    a = actions.add_parser("show", parents=[common], help="one email: parties, regarding, correlation, mailboxes")
    a.add_argument("id", help="the email activity id")
    a.set_defaults(func=email_show)

    a = actions.add_parser(
        "set-regarding", parents=[common], help="set (or clear) the record an email is regarding",
        description="Set the record an email (tracked or composed) is regarding. Replies tracked after it (by "
                    "In-Reply-To, References or its tracking token) take that record; emails tracked before keep "
                    "theirs. `abook email show ID` shows it.")
    a.add_argument("id", help="the email activity id")
    what = a.add_mutually_exclusive_group(required=True)
    what.add_argument("regarding", nargs="?", metavar="ENTITY:NAME",
                      help=f"the record (ENTITY one of {', '.join(REGARDING_ENTITIES)}; NAME its name or id)")
    what.add_argument("--none", action="store_true", help="the email is regarding nothing")
    a.set_defaults(func=email_set_regarding)


def _read(path: str, what: str) -> bytes:
    if path == "-":
        if sys.stdin.isatty():
            raise UserError(f"the {what} comes from standard input, which is a terminal: give --body FILE, or "
                            "pipe the body in")
        return sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def email_compose(args: argparse.Namespace) -> int:
    config = config_of(args)
    try:
        body = _read(args.body, "body").decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"the body ({args.body}) is not UTF-8 text") from None
    attachments = tuple((Path(f).name, mimetypes.guess_type(f)[0] or "application/octet-stream", _read(f, "attachment"))
                        for f in args.attach)
    draft = Draft(subject=args.subject, body=body, to=tuple(args.to), cc=tuple(args.cc), bcc=tuple(args.bcc),
                  user=args.user, queue=args.queue, regarding=args.regarding, attachments=attachments)
    done = in_store(config, compose_txn, draft, config)
    print(f"email {done.activity_id} pending send, tracking token {done.token}")
    print(f"  from {done.sender}")
    for recipient in done.recipients:
        print(f"  to   {recipient}")
    for warning in done.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def email_list(args: argparse.Namespace) -> int:
    states = tuple(dict.fromkeys(args.state)) if args.state else tuple(STATES)
    rows = in_store(config_of(args), list_emails_txn, states, args.user, args.queue, args.limit)
    if not rows:
        print(f"no emails {'/'.join(states)}" + (f" of {args.user}" if args.user else "")
              + (f" from queue {args.queue}" if args.queue else ""))
        return 0
    table = []
    for r in rows:
        to = (r.to[0] + (f" +{len(r.to) - 1}" if len(r.to) > 1 else "")) if r.to else "-"
        when = r.when.strftime("%Y-%m-%d %H:%M") if r.when else "-"
        table.append((r.activity_id, r.state, when, r.owner or "-", r.sender or "-", to, r.token or "-",
                      r.subject or ""))
    print_table(("EMAIL", "STATE", "SINCE", "OWNER", "FROM", "TO", "TOKEN", "SUBJECT"), table)
    for r in rows:
        if r.last_error and r.state in ("failed", "pending"):
            print(f"{r.activity_id}: {r.state} after {r.attempts} attempts: {r.last_error.splitlines()[0][:200]}")
    return 0


def email_set_regarding(args: argparse.Namespace) -> int:
    def set_txn(session: Any) -> str:
        kind, record = regarding_txn(session, args.regarding, "regarding") if args.regarding else (None, None)
        if not set_regarding_txn(session, args.id, kind, record):
            raise NotFound(f"no email activity {args.id}")
        return f"{kind} {record} ({record_label_txn(session, kind, record)})" if kind and record else "nothing"

    print(f"email {args.id} is regarding {in_store(config_of(args), set_txn)}")
    return 0
