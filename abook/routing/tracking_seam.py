"""The three tracking functions the router calls, from the tracking engine once it is merged.

``track_txn(session, TrackRequest, TrackingConfig) -> TrackResult`` tracks one message in the caller's
transaction; ``mark_sighting_txn(session, activity_id, mailbox)`` records that the message is marked in
that mailbox; ``token_for_email_txn(session, activity_id, TrackingConfig) -> str`` gives an email's token.
"""

from __future__ import annotations

try:  # the engine of branch ``tracking``
    from abook.tracking.api import mark_sighting_txn, token_for_email_txn, track_txn  # type: ignore[attr-defined]
    from abook.tracking.parse import parse_message  # type: ignore[import-not-found]

    def message_key(raw: bytes) -> str:
        """The identity tracking gives this message, so a copy seen later is a sighting, not a new email."""
        return parse_message(raw).message_key  # type: ignore[no-any-return]
except ImportError:  # until it lands on main
    from abook.routing._standin import mark_sighting_txn, message_key, token_for_email_txn, track_txn

__all__ = ["mark_sighting_txn", "message_key", "token_for_email_txn", "track_txn"]
