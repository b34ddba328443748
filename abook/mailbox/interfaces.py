"""What a mailbox backend offers the router: changes since a cursor, raw bytes, and the tracked mark.

Backends are blocking (imaplib, poplib, exchangelib): every method runs on the ``mail`` thread pool and
takes/returns plain values. The cursor is an opaque string the router stores in the same transaction as
the messages it covers (EWS sync state, ``UIDVALIDITY:UID``, the set of POP3 UIDLs already read).
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import Interface


@dataclass(frozen=True)
class MessageRef:
    #: the message's id in this mailbox: IMAP UID, POP3 UIDL, EWS ItemId
    external_id: str
    size: int | None = None


@dataclass(frozen=True)
class Batch:
    messages: tuple[MessageRef, ...]
    #: the cursor that covers every message of this batch (store it with them)
    cursor: str
    #: True when more changes are waiting beyond this batch
    more: bool = False


class IMailSource(Interface):
    def changes_blocking(cursor: str | None, limit: int) -> Batch:
        """Messages that arrived since ``cursor`` (None: from the start), at most ``limit``."""

    def fetch_blocking(ref: MessageRef) -> bytes:
        """The raw RFC 5322 bytes, without changing the message's read state."""

    def mark_tracked_blocking(ref: MessageRef) -> None:
        """Mark the message as tracked (IMAP keyword, EWS extended property and category)."""

    def remove_blocking(ref: MessageRef) -> None:
        """Remove the message (the forward mailbox's wrappers only, and only when configured)."""

    def close_blocking() -> None:
        """Log out and release the connection."""
