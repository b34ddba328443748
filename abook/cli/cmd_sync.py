"""``abook sync now|plan|status|conflicts|resolve``: synchronisation with users' mailboxes, by hand.

``now`` and ``plan`` run in this process, on the configured store and mailboxes (``[sync.mailbox]``);
``plan`` writes nothing and prints the actions a sync would take. ``status`` shows each user's last run,
its actions, conflicts and errors; ``conflicts`` the open conflicts with both values; ``resolve`` picks a
conflict's winner, which the next sync of its user writes.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from twisted.internet import defer

from abook.cli.common import config_of, in_store, open_store
from abook.errors import UserError
from abook.mailbox.errors import MailboxError
from abook.store.sync_conflicts import conflicts_txn, issues_txn, resolve_conflict_txn
from abook.store.sync_links import sync_states_txn
from abook.store.users import list_users_txn, sync_users_txn
from abook.sync.engine import EntityReport, SyncEngine
from abook.sync.setup import open_mailbox_blocking, policies
from abook.threads import SyncRunner

ENTITIES = ("contact", "appointment", "task")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("sync", parents=[common], help="contacts, appointments and tasks in step with users' mailboxes")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("now", "synchronise a user's mailbox now"),
                       ("plan", "print what a sync would do now, writing nothing")):
        a = actions.add_parser(name, parents=[common], help=text)
        a.add_argument("--user", required=True, metavar="USER", help="user name, id or email")
        a.add_argument("--entity", choices=ENTITIES, action="append", help="only these (repeatable; default: [sync] entities)")
        a.add_argument("--force", action="store_true", help="go on even when the mass-delete guard would stop")
        a.set_defaults(func=sync_now if name == "now" else sync_plan)
    a = actions.add_parser("status", parents=[common], help="each user's last sync: actions, conflicts, errors")
    a.set_defaults(func=sync_status)
    a = actions.add_parser("conflicts", parents=[common], help="open conflicts, with both sides' values")
    a.add_argument("--user", metavar="USER", help="only this user's (default: everyone's)")
    a.add_argument("--all", action="store_true", help="resolved ones too (the values that lost)")
    a.set_defaults(func=sync_conflicts)
    a = actions.add_parser("resolve", parents=[common], help="choose who wins a conflict (the next sync writes it)")
    a.add_argument("id", type=int, help="the conflict's id (abook sync conflicts)")
    a.add_argument("--winner", required=True, choices=("crm", "mailbox"), help="whose values the next sync keeps")
    a.set_defaults(func=sync_resolve)


def _run(args: argparse.Namespace, dry: bool) -> list[EntityReport]:
    config = config_of(args)
    if config.sync.mailbox is None:
        raise UserError("[sync.mailbox] says nothing about how to reach the mailboxes")
    store = open_store(config)
    try:
        with store.transaction() as s:
            (user,) = sync_users_txn(s, args.user)
        from abook.directory.local_filter import local_filter_ids_txn

        engine = SyncEngine(store, SyncRunner(), policies(config.sync), ldap_ids=local_filter_ids_txn,
                            max_item_failures=config.sync.max_item_failures)
        reports = []
        lease = None if dry else _SyncLease(store, user, config.sync.lease_seconds)
        try:
            mailbox = open_mailbox_blocking(config.sync.mailbox, user)
            try:
                for entity in args.entity or config.sync.entities:
                    if entity not in getattr(mailbox, "entities", ()):
                        continue
                    if lease is not None:
                        lease.keep()
                    coro = engine.plan(user.id, mailbox, entity, force=args.force) if dry else \
                        engine.sync(user.id, mailbox, entity, force=args.force)
                    reports.append(_result(defer.ensureDeferred(coro)))
            finally:
                mailbox.close_blocking()
        except MailboxError as e:  # the mailbox as a whole: one line, no traceback
            raise UserError(f"{user.name}'s mailbox: {type(e).__name__}: {e}") from None
        finally:
            if lease is not None:
                lease.release()
        return reports
    finally:
        store.dispose()


class _SyncLease:
    """``abook sync now`` holds the user's sync lease (store/sync_leases.py) as a daemon does, so it never
    syncs a user a daemon of the store is syncing; renewed before each entity."""

    def __init__(self, store: Any, user: Any, seconds: float) -> None:
        import os
        import socket

        from abook.store.sync_leases import claim_sync_txn

        self.store, self.user, self.seconds = store, user, seconds
        self.holder = f"cli:{socket.gethostname()}:{os.getpid()}"
        with store.transaction() as s:
            claim = claim_sync_txn(s, user.id, self.holder, _now(), seconds, due_only=False)
        if not claim.claimed:
            raise UserError(f"{user.name} is being synced by a daemon now; try again after "
                            f"{claim.retry_at:%H:%M:%S} UTC")

    def keep(self) -> None:
        from abook.store.sync_leases import renew_sync_txn

        with self.store.transaction() as s:
            if renew_sync_txn(s, (self.user.id,), self.holder, _now(), self.seconds):
                raise UserError(f"the sync lease of {self.user.name} ran out; a daemon may sync them now")

    def release(self) -> None:
        from abook.store.sync_leases import release_sync_txn

        with self.store.transaction() as s:
            release_sync_txn(s, self.user.id, self.holder, None)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _result(d: defer.Deferred) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _describe(action: Any) -> str:
    crm = getattr(action, "crm", None)
    mailbox = getattr(action, "mailbox", None)
    who = crm.id if crm is not None else (action.link.crm_id if action.link is not None else "-")
    item = mailbox.id if mailbox is not None else (action.link.mailbox_id if action.link is not None else "-")
    detail = ""
    if action.kind == "update":
        parts = [f"mailbox <- {', '.join(sorted(action.to_mailbox))}" if action.to_mailbox else "",
                 f"crm <- {', '.join(sorted(action.to_crm))}" if action.to_crm else "",
                 f"conflict ({', '.join(sorted(action.conflict))}; {action.winner} wins)" if action.conflict else ""]
        detail = "; ".join(p for p in parts if p) or "versions only"
    elif action.kind == "conflict":
        detail = ", ".join(sorted(action.fields)) + " (manual: nothing written)"
    elif hasattr(action, "reason"):
        detail = action.reason
    elif action.kind == "create_mailbox" and action.notify:
        detail = "sends invitations"
    return f"{action.kind:<15} crm {who}  item {item or '-'}  {detail}".rstrip()


def sync_plan(args: argparse.Namespace) -> int:
    for report in _run(args, dry=True):
        writes = [a for a in report.actions if a.writes or a.kind in ("conflict", "unlink", "link")]
        print(f"{report.entity}: {len(writes)} action(s)" + (f"; STOPPED: {report.error}" if report.error else ""))
        for action in writes:
            print("  " + _describe(action))
    return 0


def sync_now(args: argparse.Namespace) -> int:
    code = 0
    for report in _run(args, dry=False):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items())) or "nothing to do"
        print(f"{report.entity}: {counts}" + (f"; {len(report.failed)} failed" if report.failed else ""))
        if report.error:
            print(f"  STOPPED: {report.error}")
            code = 1
        for item, error in report.failed:
            print(f"  failed {item}: {error}")
    return code


def _when(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def sync_status(args: argparse.Namespace) -> int:
    def read(session: Any) -> Any:
        return (sync_states_txn(session), {u.id: u.domainname for u in list_users_txn(session)},
                conflicts_txn(session), issues_txn(session), sync_users_txn(session))

    states, names, conflicts, issues, enabled = in_store(config_of(args), read)
    rows = [["USER", "ENTITY", "LAST RUN", "LAST SUCCESS", "ACTIONS", "CONFLICTS", "ITEM ERRORS", "LAST ERROR"]]
    for st in states:
        open_conflicts = sum(1 for c in conflicts if c.user_id == st.user_id and c.entity == st.entity)
        errors = sum(1 for i in issues if i.user_id == st.user_id and i.entity == st.entity)
        actions = ", ".join(f"{k} {v}" for k, v in sorted(st.last_counts.items())) or "-"
        error = (st.last_error or "-").splitlines()[0][:100]
        if st.next_attempt_at:
            error += f" (next try {_when(st.next_attempt_at)})"
        rows.append([names.get(st.user_id, st.user_id), st.entity, _when(st.last_run_at), _when(st.last_success_at),
                     actions, str(open_conflicts), str(errors), error])
    never = [u.name for u in enabled if u.id not in {s.user_id for s in states}]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    if len(rows) > 1:
        print("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows))
    else:
        print("no sync has run yet")
    if never:
        print(f"sync enabled, never run: {', '.join(never)}")
    for i in issues:
        print(f"item error: {names.get(i.user_id, i.user_id)} {i.entity} {i.item}: {i.action}, {i.attempts} attempt(s): "
              f"{i.last_error.splitlines()[0][:120]}")
    return 0


def sync_conflicts(args: argparse.Namespace) -> int:
    def read(session: Any) -> Any:
        user_id = None
        if args.user:
            (user,) = sync_users_txn(session, args.user)
            user_id = user.id
        return conflicts_txn(session, user_id, open_only=not args.all), {u.id: u.domainname for u in list_users_txn(session)}

    conflicts, names = in_store(config_of(args), read)
    if not conflicts:
        print("no open conflicts" if not args.all else "no conflicts")
    for c in conflicts:
        winner = f"{c.winner} won" if c.winner else "waiting: abook sync resolve " + str(c.id) + " --winner crm|mailbox"
        print(f"{c.id}: {names.get(c.user_id, c.user_id)} {c.crm_type} {c.crm_id} ({_when(c.recorded_at)}; {winner})")
        for name, both in sorted(c.fields.items()):
            print(f"    {name}: crm {both.get('crm')!r}  mailbox {both.get('mailbox')!r}")
    return 0


def sync_resolve(args: argparse.Namespace) -> int:
    c = in_store(config_of(args), resolve_conflict_txn, args.id, args.winner)
    print(f"conflict {c.id}: {args.winner} wins; the next sync of the user writes it")
    return 0
