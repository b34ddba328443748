"""``abook status``, ``abook mailbox enable NAME``, ``abook mailbox deploy-rule`` (cmd_deploy_rule.py),
``abook outgoing stuck|retry ID|fail ID``."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from abook.cli import cmd_deploy_rule
from abook.cli.common import config_of, in_store
from abook.errors import NotFound, UserError
from abook.mailbox.errors import MailboxError
from abook.store.outgoing import emails_in_txn, resolve_stuck_txn
from abook.store.mailboxes import enable_mailbox_txn
from abook.routing.status import router_status_txn
from abook.routing.unpolled import Polling, unpolled_txn
from abook.store.daemons import daemons_txn
from abook.store.enums import EmailStatus



def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("status", parents=[common], help="the daemons sharing the store, mailboxes (health, last poll, errors), mail queues "
                                                          "and each forward mailbox's forwarding rule")
    p.add_argument("--no-rules", action="store_true",
                   help="leave out the forwarding rules (reading them asks Graph or Exchange for each mailbox)")
    p.set_defaults(func=status)

    p = sub.add_parser("mailbox", parents=[common], help="manage polled mailboxes")
    msub = p.add_subparsers(dest="mailbox_command", metavar="ACTION", required=True)
    e = msub.add_parser("enable", parents=[common], help="re-enable a mailbox disabled after failures")
    e.add_argument("name", help="the mailbox's name as `abook status` shows it ([[mailboxes]] name, or auto:USER "
                                "for a mailbox derived from [router.user_mailbox_template])")
    e.set_defaults(func=mailbox_enable)
    cmd_deploy_rule.register(msub, common)

    p = sub.add_parser("outgoing", parents=[common], help="CRM email the router sends")
    osub = p.add_subparsers(dest="outgoing_command", metavar="ACTION", required=True)
    s = osub.add_parser("stuck", parents=[common], help="emails found in Sending after a crash (check each)")
    s.set_defaults(func=outgoing_stuck)
    for action, text in (("retry", "send it again (same Message-ID): it had not left"),
                         ("fail", "set it to Failed: it may have left, or should not be sent")):
        a = osub.add_parser(action, parents=[common], help=f"an email stuck in Sending: {text}")
        a.add_argument("activity_id", help="the email's id, as `abook outgoing stuck` lists it")
        a.set_defaults(func=outgoing_resolve, action=action)


def _when(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def status(args: argparse.Namespace) -> int:
    config = config_of(args)
    configured = tuple((m.name, "forward" if m.role == "forward" else m.type, m.owner or "-")
                       for m in config.mailboxes)
    st = in_store(config, router_status_txn, configured)
    rows = [["MAILBOX", "KIND", "OWNER", "ENABLED", "LAST POLL", "LAST SUCCESS", "TRACKED", "LAST ERROR"]]
    alert_after = config.router.alert_after_failures
    for m in st.mailboxes:
        enabled = "yes" if m.enabled else f"NO ({m.failures} failures)"
        if m.enabled and m.failures_in_row >= alert_after:
            enabled = f"yes, FAILING ({m.failures_in_row} polls in a row)"
        rows.append([m.name, m.kind, m.owner, enabled, _when(m.last_poll), _when(m.last_success), str(m.tracked),
                     (m.last_error or "-").splitlines()[0][:120]])
    print(_table(rows) if st.mailboxes else "no mailboxes")
    unpolled = in_store(config, unpolled_txn, Polling.of(config))
    if unpolled:
        print("\nincoming method router, but nothing polls their mailbox (their mail is not tracked):")
        for u in unpolled:
            print(f"  {u.owner}: {u.reason}")
    q = st.queue
    print(f"\noutgoing: {q['pending']} pending send, {q['sending']} sending, {q['failed']} failed")
    for e in st.stuck:
        print(f"  found in sending, check then `abook outgoing retry|fail`: {e.activity_id} {e.subject or ''}")
    if not args.no_rules:
        _rules(config)
    print()
    _daemons(config)
    return 0


def _rules(config: Any) -> None:
    """Whether each forward user's and queue's mailbox forwards to the forward mailbox (read live, as
    ``deploy-rule --all --dry-run`` reads it; a failure to ask is shown, never fatal to the status)."""
    try:
        states = cmd_deploy_rule.rule_states(config)
    except (UserError, MailboxError) as e:
        print(f"\nforwarding rules: cannot check: {e}")
        return
    if states is None:
        return
    print("\nforwarding rules (incoming method forward; `abook mailbox deploy-rule --all` puts them right):")
    if not states:
        print("  no active user or queue has incoming method forward")
    for mailbox, state in states:
        print(f"  {mailbox}: {state}")


def _daemons(config: Any) -> None:
    """Every daemon of the store (several may share one PostgreSQL) and the mailbox leases it holds."""
    now = datetime.now(timezone.utc)
    daemons = in_store(config, daemons_txn, now)
    if not daemons:
        print("no daemon has run on this store")
        return
    rows = [["DAEMON", "HOST", "PID", "STARTED", "LAST HEARTBEAT", "STATE", "LEASES"]]
    for d in daemons:
        leases = f"{len(d.leases)}: {', '.join(d.leases)}" if d.leases else "0"
        rows.append([d.id, d.host, str(d.pid or "?"), _when(d.started_at), _when(d.heartbeat_at), d.state(now),
                     leases])
    print(_table(rows))


def mailbox_enable(args: argparse.Namespace) -> int:
    if not in_store(config_of(args), enable_mailbox_txn, args.name):
        raise NotFound(f"no mailbox named {args.name!r} has been polled")
    print(f"mailbox {args.name} enabled; the router polls it at its next interval")
    return 0


def outgoing_stuck(args: argparse.Namespace) -> int:
    stuck = in_store(config_of(args), emails_in_txn, EmailStatus.sending)
    if not stuck:
        print("no emails in sending")
    for e in stuck:
        print(f"{e.activity_id}  attempts={e.attempts}  {e.subject or ''}")
    return 0


def outgoing_resolve(args: argparse.Namespace) -> int:
    if not in_store(config_of(args), resolve_stuck_txn, args.activity_id, args.action):
        raise NotFound(f"no email {args.activity_id} in sending")
    print(f"email {args.activity_id}: " + ("back to pending send" if args.action == "retry" else "failed"))
    return 0
