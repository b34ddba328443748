"""The tracking functions the router calls (``abook/tracking``), gathered in one place.

``track_txn(session, TrackRequest, TrackingConfig) -> TrackResult`` tracks one message in the caller's
transaction; ``mark_sighting_txn(session, activity_id, mailbox)`` records that the message is marked in
that mailbox; ``token_for_email_txn(session, activity_id, TrackingConfig) -> str`` gives an email's token;
``message_key(raw)`` is the identity tracking gives a message, so a copy of a sent email read back later
from a mailbox is a sighting of it, not a new email.
"""

from __future__ import annotations

from abook.tracking.api import mark_sighting_txn, token_for_email_txn, track_txn
from abook.tracking.parse import parse_message


def message_key(raw: bytes) -> str:
    return parse_message(raw).message_key


__all__ = ["mark_sighting_txn", "message_key", "token_for_email_txn", "track_txn"]
