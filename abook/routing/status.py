"""What ``abook status`` shows: every mailbox's health and the outgoing queue, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from abook.routing.outgoing import QueuedEmail, emails_in_txn, queue_lengths_txn
from abook.store.models import EmailStatus, MailboxState, Queue, SystemUser


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    kind: str
    owner: str
    enabled: bool
    last_poll: datetime | None
    last_success: datetime | None
    last_error: str | None
    tracked: int
    failures: int
    #: polls in a row that failed, of any kind
    failures_in_row: int = 0


@dataclass(frozen=True)
class RouterStatus:
    mailboxes: tuple[MailboxStatus, ...]
    queue: dict[str, int]
    stuck: tuple[QueuedEmail, ...]


def _owner_name(session: Session, owner_type: str | None, owner_id: str | None) -> str:
    if owner_type == "systemuser" and owner_id:
        user = session.get(SystemUser, owner_id)
        return user.domainname if user else owner_id
    if owner_type == "queue" and owner_id:
        queue = session.get(Queue, owner_id)
        return f"queue:{queue.emailaddress}" if queue else owner_id
    return "-"


def router_status_txn(session: Session, configured: tuple[tuple[str, str, str], ...]) -> RouterStatus:
    """``configured``: (name, kind, owner) of each config mailbox, shown even before its first poll."""
    rows = {r.name: r for r in session.scalars(select(MailboxState).order_by(MailboxState.name))}
    out = []
    for name, kind, owner in configured:
        if name not in rows:
            out.append(MailboxStatus(name, kind, owner, True, None, None, "never polled", 0, 0))
    for r in rows.values():
        out.append(MailboxStatus(r.name, r.kind, _owner_name(session, r.owner_type, r.owner_id), bool(r.enabled),
                                 r.last_poll_at, r.last_success_at, r.last_error, r.messages_tracked or 0,
                                 r.consecutive_failures or 0, r.failures_in_row or 0))
    out.sort(key=lambda m: m.name)
    return RouterStatus(tuple(out), queue_lengths_txn(session), emails_in_txn(session, EmailStatus.sending))
