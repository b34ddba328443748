"""What ``abook status`` shows: every mailbox's health and the outgoing queue, read in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from abook.store.outgoing import QueuedEmail, emails_in_txn, queue_lengths_txn
from abook.store.enums import EmailStatus
from abook.store.mailboxes import MailboxStatus, mailbox_statuses_txn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class RouterStatus:
    mailboxes: tuple[MailboxStatus, ...]
    queue: dict[str, int]
    stuck: tuple[QueuedEmail, ...]


def router_status_txn(session: Session, configured: tuple[tuple[str, str, str], ...]) -> RouterStatus:
    """``configured``: (name, kind, owner) of each config mailbox, shown even before its first poll."""
    return RouterStatus(mailbox_statuses_txn(session, configured), queue_lengths_txn(session),
                        emails_in_txn(session, EmailStatus.sending))
