"""One batch of one mailbox in one transaction: track every message and save the cursor that covers them.

``commit_batch_txn`` is the heart of exactly-once: the activities, sightings, untracked reasons, loop
counters and the new cursor commit together or not at all. It returns what to do in the mailbox
afterwards (mark a message, remove a wrapper); a crash before that is repaired at the next start from
the sightings still unmarked (``store.mailboxes.unmarked_sightings_txn``). Its SQL is in ``store/mailboxes.py``.

Each message is read once, by ``tracking/parse.py``: whole, when it is small enough for the engine's
batch to hold it parsed (``BATCH_MESSAGE_BYTES``), and that parse goes to the engine with it; a larger
one only up to the end of its header here (its sender, Message-ID and subject), and whole by the engine
when it tracks it, on its own. A forward wrapper is read once, whole, for its owner and its attachments.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Iterator, Literal


from twisted.logger import Logger

from abook.config.model import TrackingConfig
from abook.routing import forward
from abook.store import DatabaseError, ensure_transaction, mailboxes, owners, savepoint
from abook.store.records import Owner
from abook.tracking.api import TrackRequest, TrackResult, track_many_txn, track_txn
from abook.tracking.bulk import BATCH_MESSAGE_BYTES
from abook.tracking.engine import head_of_parsed, record_untracked_txn
from abook.mailbox.headers import Head, head_of, read_head
from abook.tracking.parse import ParsedMessage, Unreadable, parse_message, read

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_log = Logger(namespace="abook.routing.batch")


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
    #: the message; for one over the size limit, only its first bytes (``oversize`` says why)
    raw: bytes
    #: set for a message over ``tracking.max_message_bytes``: recorded as untracked ``too_large`` with this
    #: detail and left in its mailbox, unmarked
    oversize: str | None = None
    #: "out" for mail the owner sent (read from Sent Items): tracked as outgoing, not counted by loop damping
    direction: str = "in"


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
    #: the item's normalised Message-ID: the source finds it by that if ``external_id`` no longer applies
    message_id: str | None = None


@dataclass(frozen=True)
class BatchResult:
    actions: tuple[PostAction, ...]
    tracked: int
    untracked: int
    #: the reason of each untracked message (``abook_mail_untracked_total``)
    reasons: tuple[str, ...] = ()


def commit_batch_txn(session: Session, spec: BatchSpec, items: tuple[Fetched, ...], cursor: str,
                     now: datetime) -> BatchResult:
    """Track the batch's messages and save ``cursor``, in the caller's transaction.

    Three passes keep each message's outcome what tracking them one after the other gave: the router's own
    decisions in message order (skip list, the forward mailbox's owner and unwrapping, loop damping), then
    one ``track_many_txn`` for every message still to track (one address resolution for the batch), then
    each mailbox item's action from its messages' results."""
    skip = dict(spec.skip)
    planned: list[_Item] = []
    for item in items:
        if item.oversize is not None:
            _untracked(session, spec, item.external_id, spec.owner, "too_large", item.oversize, read_head(item.raw))
            planned.append(_Item(item, untracked=1, reason="too_large"))
            continue
        if item.external_id in skip:
            _untracked(session, spec, item.external_id, spec.owner, "parse_error", skip[item.external_id],
                       read_head(item.raw))
            planned.append(_Item(item, untracked=1, reason="parse_error"))
            continue
        with _culprit(item):
            if spec.role == "forward":
                planned.append(_unwrapped(session, spec, item))
            else:
                assert spec.owner is not None
                message = _Message(spec.owner, item.raw, item.external_id, *_read(item.raw, spec.tracking))
                planned.append(_Item(item, [message], message_id=message.head.message_id))
    _damp_loops(session, spec, planned, now)
    arrival = "forward" if spec.role == "forward" else "router"
    queued = [(p.item, m) for p in planned for m in p.messages if not m.held]
    results = iter(_track_isolated(session, spec, [
        (item, TrackRequest(raw=m.raw, mailbox=spec.mailbox, owner=m.owner, arrival=arrival,
                            direction="out" if item.direction == "out" else "in", external_id=m.external_id,
                            parsed=m.parsed)) for item, m in queued]))
    actions: list[PostAction] = []
    tracked = untracked = 0
    reasons: list[str] = []
    for p in planned:
        activity_ids: list[str] = []
        untracked += p.untracked
        reasons += [p.reason] * p.untracked
        for m in p.messages:
            if m.held:
                untracked += 1
                reasons.append("loop")
                continue
            result = next(results)
            if result.outcome in ("tracked", "sighting") and result.activity_id:
                activity_ids.append(result.activity_id)
                tracked += int(result.outcome == "tracked")
            else:
                untracked += 1
                reasons.append(result.reason or result.outcome)
        if not p.messages:
            continue  # decided by the router itself: the message stays in its mailbox
        if spec.role != "forward":
            if activity_ids:
                actions.append(PostAction(p.item.external_id, "mark", tuple(activity_ids), p.message_id))
        elif not any(m.held for m in p.messages):  # held by loop damping is not rejected: the wrapper stays
            actions.append(PostAction(p.item.external_id, "remove" if spec.forward_remove else "mark",
                                      tuple(activity_ids), p.message_id))
    mailboxes.prune_arrivals_txn(session, spec.mailbox, now - spec.loop_window)
    if not mailboxes.save_cursor_txn(session, spec.mailbox, spec.holder, cursor,
                                     now + timedelta(seconds=spec.lease_seconds), tracked):
        raise LeaseLost(spec.mailbox)
    return BatchResult(tuple(actions), tracked, untracked, tuple(reasons))


@dataclass
class _Message:
    """One message to track: a mailbox's own message, or one inner message of a forward wrapper."""

    owner: Owner
    raw: bytes
    external_id: str
    #: its Message-ID, sender and subject
    head: Head
    #: the message read whole, for the engine; None when it is read whole only when tracked (``_read``)
    parsed: ParsedMessage | None = None
    #: held by loop damping: recorded as untracked ``loop``, not tracked
    held: bool = False


@dataclass
class _Item:
    """A mailbox item and what the router made of it before tracking."""

    item: Fetched
    #: its messages to track, in order; empty when the router itself decided (skipped, no owner, ...)
    messages: list[_Message] = field(default_factory=list)
    untracked: int = 0
    #: the item's normalised Message-ID, for its PostAction
    message_id: str | None = None
    #: why the router left it untracked (a metrics label), when it did
    reason: str = ""


def _read(raw: bytes, tracking: TrackingConfig) -> tuple[Head, ParsedMessage | None]:
    """A message read once (see the module docstring): its head, and its parse when the batch may hold it."""
    if len(raw) > min(BATCH_MESSAGE_BYTES, tracking.max_message_bytes):
        return read_head(raw), None
    try:
        parsed = parse_message(raw)
    except Unreadable:
        return read_head(raw), None  # the engine records why
    return head_of_parsed(parsed), parsed


@contextmanager
def _culprit(item: Fetched) -> Iterator[None]:
    """A failure is the database's (the whole batch is retried) or this item's (retried without it)."""
    try:
        yield
    except (DatabaseError, LeaseLost):
        raise  # the database's trouble (a race with another daemon, ...): the whole batch is retried
    except Exception as e:  # a bug or a message the engine cannot digest: retried without it
        raise MessageFailed(item.external_id, f"{type(e).__name__}: {e}") from e


def _unwrapped(session: Session, spec: BatchSpec, item: Fetched) -> _Item:
    """A wrapper: each inner message is tracked for the wrapper's owner; the wrapper goes only if all were
    handled."""
    try:
        wrapper = read(item.raw)
    except Unreadable as e:
        _untracked(session, spec, item.external_id, None, "parse_error", str(e), Head(None, None, None))
        return _Item(item, untracked=1, reason="parse_error")
    head = head_of(wrapper)
    owner = owners.owner_for_address_txn(session, forward.candidate_addresses(wrapper))
    if owner is None:
        _untracked(session, spec, item.external_id, None, "no_owner",
                   "no user or queue address in the wrapper's From, To, Cc or Delivered-To", head)
        return _Item(item, untracked=1, reason="no_owner")
    inner = forward.unwrap(wrapper)
    del wrapper
    if not inner:
        _untracked(session, spec, item.external_id, owner, "parse_error", "no message/rfc822 attachment", head)
        return _Item(item, untracked=1, reason="parse_error")
    return _Item(item, [_Message(owner, raw, f"{item.external_id}#{n}", *_read(raw, spec.tracking))
                        for n, raw in enumerate(inner, 1)], message_id=head.message_id)


def _damp_loops(session: Session, spec: BatchSpec, planned: list[_Item], now: datetime) -> None:
    """Loop damping, in message order: each message from a sender counts as one arrival, and a message that
    makes its sender's arrivals within the window more than ``loop_max`` is held (untracked ``loop``).

    One query reads the senders' arrivals already in the window and one INSERT records the batch's; counting
    the batch's own arrivals in memory gives each message the count the one-by-one INSERT-then-COUNT gave."""
    senders: list[tuple[_Item, _Message, str]] = []
    for p in planned:
        if p.item.direction == "out":
            continue  # the owner's own sent mail is no loop
        for m in p.messages:
            sender = (m.head.sender or "").strip().lower()[:320]
            if sender:
                senders.append((p, m, sender))
    if not senders:
        return
    since = now - spec.loop_window
    distinct = sorted({sender for _, _, sender in senders})
    counts = mailboxes.arrivals_since_txn(session, spec.mailbox, distinct, since)
    mailboxes.record_arrivals_txn(session, spec.mailbox, [sender for _, _, sender in senders], now)
    in_window = now > since  # whether the batch's own arrivals (at ``now``) count in the window
    for p, m, sender in senders:
        counts[sender] = counts.get(sender, 0) + int(in_window)
        if counts[sender] > spec.loop_max:
            m.held = True
            with _culprit(p.item):
                _untracked(session, spec, m.external_id, m.owner, "loop",
                           f"more than {spec.loop_max} messages from this sender within the loop window", m.head)


def _track_isolated(session: Session, spec: BatchSpec,
                    queued: list[tuple[Fetched, TrackRequest]]) -> list[TrackResult]:
    """``track_many_txn`` over the batch in a savepoint; when it raises something other than the database's
    trouble, the savepoint is rolled back and the messages tracked one by one, so the one that raises is named
    (``MessageFailed`` for its mailbox item) and the batch is retried without it."""
    if not queued:
        return []
    ensure_transaction(session)
    try:
        with savepoint(session):
            return track_many_txn(session, [request for _, request in queued], spec.tracking)
    except (DatabaseError, LeaseLost):
        raise
    except Exception:
        _log.failure("tracking a batch of {count} from {mailbox} failed; tracking its messages one by one",
                     count=len(queued), mailbox=spec.mailbox)
    results = []
    for item, request in queued:
        with _culprit(item):
            results.append(track_txn(session, request, spec.tracking))
    return results


def _untracked(session: Session, spec: BatchSpec, external_id: str, owner: Owner | None, reason: str, detail: str,
               head: Head) -> None:
    record_untracked_txn(session, mailbox=spec.mailbox, external_id=external_id, owner=owner, reason=reason,
                         detail=detail, head=head)
