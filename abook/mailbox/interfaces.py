"""What a mailbox backend offers the router: changes since a cursor, raw bytes, and the tracked mark.

Backends are blocking (imaplib, poplib, exchangelib): every method but ``abort`` runs on the ``mail``
thread pool and takes/returns plain values. The cursor is an opaque string the router stores in the same
transaction as the messages it covers (EWS sync state, ``UIDVALIDITY:UID``, the set of POP3 UIDLs already
read).
"""

from __future__ import annotations

from dataclasses import dataclass

from zope.interface import Interface

#: how much of an over-size message is read for the admin's list (its header section, usually)
HEAD_BYTES = 64 * 1024
#: ``fetch_blocking``'s limit when none is given (the router passes ``tracking.max_message_bytes``)
DEFAULT_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True)
class MessageRef:
    #: the message's id in this mailbox: IMAP UID, POP3 UIDL, EWS ItemId
    external_id: str
    #: its size as the server announced it (IMAP RFC822.SIZE, POP3 LIST, EWS size), if it did
    size: int | None = None
    #: its normalised Message-ID, when the router knows it: marking or removing a message whose
    #: ``external_id`` no longer applies (IMAP UIDVALIDITY changed, POP3 UIDLs reassigned) finds it by that
    message_id: str | None = None
    #: "in": received; "out": the owner sent it (a Graph router mailbox's Sent Items)
    direction: str = "in"


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

    def fetch_blocking(ref: MessageRef, limit: int = DEFAULT_LIMIT) -> bytes:
        """The raw RFC 5322 bytes, without changing the message's read state. A message larger than
        ``limit`` bytes raises ``TooLarge``: the size announced is checked before downloading, and a
        server that sends more is cut off at the limit."""

    def mark_tracked_blocking(ref: MessageRef) -> MessageRef | None:
        """Mark the message as tracked (IMAP keyword, EWS extended property and category). Returns the ref
        it was found under when ``ref.external_id`` no longer applied and ``ref.message_id`` found it; raises
        ``MessageGone`` when it is no longer in the mailbox."""

    def remove_blocking(ref: MessageRef) -> MessageRef | None:
        """Remove the message (the forward mailbox's wrappers; POP3 with delete_after_tracking). Returns and
        raises as ``mark_tracked_blocking``."""

    def close_blocking() -> None:
        """Log out and release the connection."""

    def abort() -> None:
        """Called from any thread (the router's command deadline, shutdown): make the operation in progress,
        if any, fail at once by cutting the connection (the next operation connects again)."""
