"""One batch of one mailbox in one transaction: track every message and save the cursor that covers them.

``commit_batch_txn`` is the heart of exactly-once: the activities, sightings, untracked reasons, loop
counters and the new cursor commit together or not at all. It returns what to do in the mailbox
afterwards (mark a message, remove a wrapper); a crash before that is repaired at the next start from
the sightings still unmarked (``state.unmarked_sightings_txn``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from abook.config.model import TrackingConfig
from abook.routing import forward
from abook.tracking.api import track_txn
from abook.store.models import MailArrival, MailboxState, UntrackedMessage
from abook.tracking.api import Owner, TrackRequest


class LeaseLost(Exception):
    """Another daemon took the mailbox's lease: this batch is rolled back, it will poll it instead."""


class MessageFailed(Exception):
    """Tracking one message raised; the batch is rolled back and retried with that message skipped."""

    def __init__(self, external_id: str, error: str) -> None:
        super().__init__(external_id)
        self.external_id = external_id
        self.error = error


@dataclass(frozen=True)
class Fetched:
    external_id: str
    raw: bytes


@dataclass(frozen=True)
class BatchSpec:
    mailbox: str
    holder: str
    role: Literal["router", "forward"]
    owner: Owner | None  # the mailbox's owner; None for the forward mailbox
    tracking: TrackingConfig
    lease_seconds: float
    loop_max: int
    loop_window: timedelta
    forward_remove: bool = True
    #: external id -> error, for messages whose tracking raised in an earlier attempt at this batch
    skip: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class PostAction:
    """After the commit: mark or remove ``external_id`` in the mailbox, then mark these sightings."""

    external_id: str
    action: Literal["mark", "remove"]
    activity_ids: tuple[str, ...]


@dataclass(frozen=True)
class BatchResult:
    actions: tuple[PostAction, ...]
    tracked: int
    untracked: int


def commit_batch_txn(session: Session, spec: BatchSpec, items: tuple[Fetched, ...], cursor: str,
                     now: datetime) -> BatchResult:
    skip = dict(spec.skip)
    actions: list[PostAction] = []
    tracked = untracked = 0
    for item in items:
        if item.external_id in skip:
            _untracked(session, spec, item.external_id, spec.owner, "parse_error", skip[item.external_id], item.raw)
            untracked += 1
            continue
        try:
            if spec.role == "forward":
                action, t, u = _forwarded(session, spec, item, now)
            else:
                assert spec.owner is not None
                action, t, u, _held = _routed(session, spec, spec.owner, item, item.raw, item.external_id, now)
        except (SQLAlchemyError, LeaseLost):
            raise  # the database's trouble (a race with another daemon, ...): the whole batch is retried
        except Exception as e:  # a bug or a message the engine cannot digest: retried without it
            raise MessageFailed(item.external_id, f"{type(e).__name__}: {e}") from e
        tracked, untracked = tracked + t, untracked + u
        if action is not None:
            actions.append(action)
    _prune_arrivals(session, spec, now)
    saved = session.execute(
        update(MailboxState).where(MailboxState.name == spec.mailbox, MailboxState.lease_holder == spec.holder)
        .values(cursor=cursor, lease_until=now + timedelta(seconds=spec.lease_seconds),
                messages_tracked=MailboxState.messages_tracked + tracked)
        .execution_options(synchronize_session=False))
    if saved.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(spec.mailbox)
    return BatchResult(tuple(actions), tracked, untracked)


def _routed(session: Session, spec: BatchSpec, owner: Owner, item: Fetched, raw: bytes, external_id: str,
            now: datetime) -> tuple[PostAction | None, int, int, bool]:
    """Track one message of a user's or queue's own mailbox (or one inner message of a wrapper).

    Returns the action after the commit, tracked and untracked counts, and whether loop damping held it.
    """
    if _looping(session, spec, raw, now):
        _untracked(session, spec, external_id, owner, "loop",
                   f"more than {spec.loop_max} messages from this sender within the loop window", raw)
        return None, 0, 1, True
    arrival = "forward" if spec.role == "forward" else "router"
    result = track_txn(session, TrackRequest(raw=raw, mailbox=spec.mailbox, owner=owner, arrival=arrival,
                                             external_id=external_id), spec.tracking)
    if result.outcome in ("tracked", "sighting") and result.activity_id:
        action = PostAction(item.external_id, "mark", (result.activity_id,))
        return action, int(result.outcome == "tracked"), 0, False
    return None, 0, 1, False


def _forwarded(session: Session, spec: BatchSpec, item: Fetched, now: datetime) -> tuple[PostAction | None, int, int]:
    """A wrapper: track each inner message for its owner; the wrapper goes only if all were handled."""
    owner = forward.resolve_forward_owner_txn(session, forward.candidate_addresses(item.raw))
    if owner is None:
        _untracked(session, spec, item.external_id, None, "no_owner",
                   "no user or queue address in the wrapper's From, To, Cc or Delivered-To", item.raw)
        return None, 0, 1
    inner = forward.unwrap(item.raw)
    if not inner:
        _untracked(session, spec, item.external_id, owner, "parse_error", "no message/rfc822 attachment", item.raw)
        return None, 0, 1
    activity_ids: list[str] = []
    handled = True
    tracked = untracked = 0
    for n, raw in enumerate(inner, 1):
        action, t, u, held = _routed(session, spec, owner, item, raw, f"{item.external_id}#{n}", now)
        tracked, untracked = tracked + t, untracked + u
        if action is not None:
            activity_ids.extend(action.activity_ids)
        handled = handled and not held  # held by loop damping is not rejected: the wrapper stays
    if not handled:
        return None, tracked, untracked
    return PostAction(item.external_id, "remove" if spec.forward_remove else "mark", tuple(activity_ids)), tracked, untracked


def _looping(session: Session, spec: BatchSpec, raw: bytes, now: datetime) -> bool:
    sender = forward.sender_of(raw)
    if not sender:
        return False
    session.add(MailArrival(mailbox=spec.mailbox, sender=sender, arrived_at=now))
    session.flush()
    count = session.scalar(select(func.count()).select_from(MailArrival).where(
        MailArrival.mailbox == spec.mailbox, MailArrival.sender == sender,
        MailArrival.arrived_at > now - spec.loop_window))
    return (count or 0) > spec.loop_max


def _prune_arrivals(session: Session, spec: BatchSpec, now: datetime) -> None:
    session.execute(delete(MailArrival).where(MailArrival.mailbox == spec.mailbox,
                                              MailArrival.arrived_at <= now - spec.loop_window)
                    .execution_options(synchronize_session=False))


def _untracked(session: Session, spec: BatchSpec, external_id: str, owner: Owner | None, reason: str, detail: str,
               raw: bytes) -> None:
    headers = forward.parse_headers(raw)
    session.add(UntrackedMessage(
        mailbox=spec.mailbox, external_id=external_id, owner_type=owner.type if owner else None,
        owner_id=owner.id if owner else None, reason=reason, detail=detail,
        message_id=str(headers.get("Message-ID", "")).strip()[:998] or None,
        sender=forward.sender_of(raw) or None, subject=str(headers.get("Subject", ""))[:800] or None))
