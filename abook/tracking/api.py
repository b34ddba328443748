"""The seam the router, the forward mailbox and `abook track` use: ``track_txn`` (``track_many_txn`` for a batch).

``track_txn(session, request, config)`` runs SPEC section 3 steps 1-5 inside the caller's transaction,
so a router can save its mailbox cursor in the same transaction as the messages it tracked. It never
raises for a bad message: every input ends as ``tracked``, ``sighting`` or ``untracked`` with a reason.
(Interface only; the engine lives in ``tracking/engine.py``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from abook.store.records import Owner  # noqa: F401 (a TrackRequest's owner; defined in the store)

if TYPE_CHECKING:
    from typing import Iterable

    from sqlalchemy.orm import Session

    from abook.config.model import TrackingConfig
    from abook.tracking.parse import ParsedMessage

Arrival = Literal["router", "forward", "manual"]
Direction = Literal["in", "out"]
Outcome = Literal["tracked", "sighting", "untracked"]

#: reason codes recorded for untracked mail (`abook untracked`)
REASONS = (
    "duplicate",  # already tracked and already seen in this mailbox
    "no_correlation",  # `responses`: not a reply to tracked mail
    "no_sender_match",  # `crm_parties`: sender is no lead, contact or account
    "internal",  # `crm_parties`: sender is a CRM user or queue
    "parse_error",  # the message could not be read
    "disabled",  # tracking option `none`, or incoming method `none`
    "too_large",
    "loop",  # held by the router's loop damping
    "no_owner",  # forward mailbox: the owner could not be worked out
)


@dataclass(frozen=True)
class TrackRequest:
    raw: bytes
    mailbox: str
    owner: Owner
    arrival: Arrival
    direction: Direction = "in"
    #: the message's id in its mailbox (IMAP UID, POP3 UIDL, EWS ItemId), kept on the sighting
    external_id: str | None = None
    #: ``raw`` already parsed (``tracking.parse.parse_message``), so the engine does not read it again
    parsed: "ParsedMessage | None" = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TrackResult:
    outcome: Outcome
    activity_id: str | None = None
    reason: str | None = None
    detail: str | None = None


def track_txn(session: "Session", request: TrackRequest, config: "TrackingConfig") -> TrackResult:
    """Track one message in the caller's transaction (``tracking/engine.py`` does the work)."""
    from abook.tracking.engine import track_txn as _track_txn

    return _track_txn(session, request, config)


def track_many_txn(session: "Session", requests: "Iterable[TrackRequest]",
                   config: "TrackingConfig") -> "list[TrackResult]":
    """Track a batch in the caller's transaction, each message as ``track_txn`` would, sharing the reads
    and writing the tracked messages' rows with one INSERT per table."""
    from abook.tracking.bulk import track_many_txn as _track_many_txn

    return _track_many_txn(session, requests, config)


def token_for_email_txn(session: "Session", activity_id: str, config: "TrackingConfig") -> str:
    """The CRM email's tracking token, allocated once and stored on the email."""
    from abook.tracking.engine import token_for_email_txn as _token_for_email_txn

    return _token_for_email_txn(session, activity_id, config)


def mark_sighting_txn(session: "Session", email_id: str, mailbox: str) -> bool:
    """Record that the router marked the message as tracked in ``mailbox``."""
    from abook.tracking.engine import mark_sighting_txn as _mark_sighting_txn

    return _mark_sighting_txn(session, email_id, mailbox)
