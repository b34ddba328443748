"""The tracking engine: SPEC section 3 steps 1-5 for one raw message, inside the caller's transaction.

``track_txn(session, request, config)`` never commits and never opens its own transaction; it writes in a
SAVEPOINT so that a message the store refuses (or two daemons racing for one message) rolls back only
its own rows. It never raises for a bad message: every input ends as ``tracked``, ``sighting`` or
``untracked``, the last with a reason code (``api.REASONS``) recorded in the ``untracked`` table.
Database failures (connection lost, lock timeout) do raise, so the caller's transaction, with its
mailbox cursor, rolls back and the message is read again.

``track_many_txn`` (``tracking/bulk.py``) tracks a batch with the same outcomes and rows as ``track_txn``
one after the other, for less. A request may carry its message already parsed (``TrackRequest.parsed``:
the router reads each message once); otherwise it is parsed here.

Decisions where the SPEC is silent:

* the activity owner is the mailbox owner when a user; for a queue, ``tracking.queue_owner`` or a
  System Administrator of the queue's business unit or the nearest unit above (``store/owners.py``);
* incoming method ``none`` stops automatic tracking (router and forward mailbox) as tracking option
  ``none`` does (``disabled``); ``abook track`` still accepts;
* the tracking option applies to both directions; on outgoing mail ``crm_parties`` asks whether a
  *recipient* resolves to a lead, contact or account (the sender is the user);
* a sender matching both a contact and a user counts as a CRM party (it is a lead/contact/account);
* only active records are linked as parties; facilities are never email parties;
* an uncorrelated email has no regarding record (SPEC: "then nothing") until the email it answers is
  tracked (a reply read before its parent, from another mailbox): it is linked then (``store/replies.py``);
* the token found in an incoming subject correlates; it is not copied onto the new email, whose own
  token (``token_for_email_txn``) is allocated only when the CRM sends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from abook.config.model import TrackingConfig
from abook.store import DatabaseError, DuplicateKey, RefusedValue, ensure_transaction, savepoint, transaction_cache
from abook.store import owners, replies
from abook.store import tracking as store
from abook.store.enums import EmailStatus
from abook.store.keys import new_id
from abook.tracking.api import TrackRequest, TrackResult
from abook.mailbox.headers import Head, read_head
from abook.tracking.parse import ParsedMessage, Part, Unreadable, parse_message
from abook.tracking.parties import build_parties, lookup_keys
from abook.tracking.tokens import find_tokens, format_token

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from abook.tracking.bulk import _Batch

_log = Logger(namespace="abook.tracking.engine")

#: Activity.description keeps at most this much of the body (the full bodies are on the email)
DESCRIPTION_LIMIT = 100_000


class _Reject(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def track_txn(session: Session, request: TrackRequest, config: TrackingConfig) -> TrackResult:
    """Track one message (SPEC 3.1-3.5) in the caller's transaction; see the module docstring."""
    return _guarded(session, request, config)[0]


def _parse_request(request: TrackRequest, config: TrackingConfig) -> ParsedMessage:
    if len(request.raw) > config.max_message_bytes:
        raise _Reject("too_large", f"{len(request.raw)} bytes, more than {config.max_message_bytes}")
    if request.parsed is not None:
        return request.parsed
    try:
        return parse_message(request.raw)
    except Unreadable as e:
        raise _Reject("parse_error", str(e)) from None


def _guarded(session: Session, request: TrackRequest, config: TrackingConfig, parsed: ParsedMessage | None = None,
             batch: "_Batch | None" = None, reads: "_Reads | None" = None) -> tuple[TrackResult, ParsedMessage | None]:
    """track_txn's work: ``parsed`` when already parsed; with ``batch``, reads from the batch's prefetched
    values and leaves a tracked message's rows pending in the batch; ``reads``: where else to read."""
    try:
        if parsed is None:
            parsed = _parse_request(request, config)
        return _track(session, request, config, parsed, batch, reads), parsed
    except _Reject as r:
        return _untracked(session, request, parsed, r.reason, r.detail), parsed
    except DatabaseError:
        raise  # the database's trouble, not the message's: the caller rolls back and retries
    except Exception as e:  # a message no rule foresaw must still end with a reason, never a crash
        _log.failure("tracking a message from {mailbox} failed", mailbox=request.mailbox)
        return _untracked(session, request, parsed, "parse_error", f"{type(e).__name__}: {e}"[:500]), parsed


def _untracked(session: Session, request: TrackRequest, parsed: ParsedMessage | None, reason: str,
               detail: str) -> TrackResult:
    head = head_of_parsed(parsed) if parsed else read_head(request.raw)
    record_untracked_txn(session, mailbox=request.mailbox, external_id=request.external_id, owner=request.owner,
                         reason=reason, detail=detail, head=head)
    _log.info("not tracked from {mailbox}: {reason} ({detail})", mailbox=request.mailbox, reason=reason,
              detail=detail)
    return TrackResult("untracked", reason=reason, detail=detail)


def head_of_parsed(parsed: ParsedMessage) -> Head:
    return Head(parsed.message_id, parsed.sender[1] if parsed.sender else None, parsed.subject or None)


def record_untracked_txn(session: Session, *, mailbox: str, external_id: str | None, owner: Any, reason: str,
                         detail: str, head: Head) -> None:
    """The one writer of untracked mail (the engine's reasons and the router's own: loop, no_owner, ...):
    the values of ``head`` as the one header reader gives them, clipped by the store."""
    store.record_untracked_txn(
        session, mailbox=mailbox, external_id=external_id, owner_type=owner.type if owner else None,
        owner_id=owner.id if owner else None, reason=reason, detail=detail, message_id=head.message_id,
        sender=head.sender, subject=head.subject)


@dataclass(frozen=True)
class _Plan:
    """An accepted message: what storing it takes."""

    owner: owners.OwnerInfo
    parties: tuple[store.NewParty, ...]
    method: str | None
    correlated: store.Correlated | None


def _track(session: Session, request: TrackRequest, config: TrackingConfig, parsed: ParsedMessage,
           batch: "_Batch | None" = None, reads: "_Reads | None" = None) -> TrackResult:
    plan = _accept(session, request, config, parsed, batch or reads or _DIRECT)
    if isinstance(plan, TrackResult):
        return plan
    activity_id = new_id()
    if batch is not None:
        batch.add(request, parsed, plan, activity_id)
        return TrackResult("tracked", activity_id=activity_id)

    # 5. Store, in a savepoint: a refused message or a lost race undoes only its own rows.
    ensure_transaction(session)
    try:
        with savepoint(session):
            _store(session, request, parsed, plan, activity_id)
    except DuplicateKey:
        existing = store.email_by_key_txn(session, parsed.message_key)
        if existing is not None:  # tracked meanwhile by another daemon
            return _sighting(session, request, existing)
        raise
    except _REFUSED as e:
        raise _Reject("parse_error", f"the store refused the message: {type(e).__name__}") from None
    _log_tracked(request, parsed, plan, activity_id)
    return TrackResult("tracked", activity_id=activity_id)


#: what the store raises for a value it refuses (rather than for its own trouble)
_REFUSED = (RefusedValue, ValueError, TypeError, UnicodeError)


def _log_tracked(request: TrackRequest, parsed: ParsedMessage, plan: _Plan, activity_id: str) -> None:
    _log.info("tracked {message_key} from {mailbox} as {activity_id} ({count} parties, {method})",
              message_key=parsed.message_key, mailbox=request.mailbox, activity_id=activity_id,
              count=len(plan.parties), method=plan.method or "uncorrelated")


class _Reads:
    """Where ``_accept`` reads the store: one query per message (``_DIRECT``), or a batch's prefetched rows."""

    def email_by_key(self, session: Session, message_key: str) -> str | None:
        return store.email_by_key_txn(session, message_key)

    def resolve(self, session: Session, keys: list[str]) -> dict[str, list[tuple[str, str]]]:
        return store.resolve_addresses_txn(session, keys)

    def by_message_ids(self, session: Session, ids: list[str]) -> list[store.Correlated]:
        return store.emails_by_message_ids_txn(session, ids)

    def by_tokens(self, session: Session, tokens: list[str]) -> list[store.Correlated]:
        return store.emails_by_tokens_txn(session, tokens)


_DIRECT = _Reads()


class _Resolved(_Reads):
    """One query per read, except the addresses: those come from a batch's one resolution (CRM records,
    which tracking never writes, so it stays true after the batch's own rows are written)."""

    def __init__(self, found: dict[str, list[tuple[str, str]]]) -> None:
        self.found = found

    def resolve(self, session: Session, keys: list[str]) -> dict[str, list[tuple[str, str]]]:
        return self.found


def _accept(session: Session, request: TrackRequest, config: TrackingConfig, parsed: ParsedMessage,
            reads: _Reads) -> TrackResult | _Plan:
    """Steps 1-4: a sighting's result, a plan to store the message, or a _Reject."""
    owner = _owner_info(session, request, config)
    if owner is None:
        raise _Reject("no_owner", f"no {request.owner.type} with id {request.owner.id}")

    # 1. Duplicate?
    existing = reads.email_by_key(session, parsed.message_key)
    if existing is not None:
        return _sighting(session, request, existing)

    # 2. Accept? (parties and correlation first: the options depend on them)
    manual = request.arrival == "manual"
    option = owner.tracking_option
    if not manual:
        if option not in ("all", "responses", "crm_parties"):
            raise _Reject("disabled", f"{owner.type} {owner.name}: automatic tracking is {option!r}")
        if not owner.active:
            raise _Reject("disabled", f"{owner.type} {owner.name} is inactive")
        if owner.incoming_method == "none":
            raise _Reject("disabled", f"{owner.type} {owner.name}: incoming method is 'none'")
    if owner.activity_owner_id is None:
        raise _Reject("no_owner", owner.no_owner or f"queue {owner.name}: no user to own its email")
    outgoing = request.direction == "out"
    found = reads.resolve(session, lookup_keys(parsed.addresses, outgoing))
    resolution = build_parties(parsed.addresses, outgoing, found)
    method, correlated = _correlate(session, parsed, config, reads)
    if not manual and option == "responses" and correlated is None:
        raise _Reject("no_correlation", "not a reply to tracked email and no tracking token")
    if not manual and option == "crm_parties":
        records = resolution.recipient_records if outgoing else resolution.sender_records
        if not any(entity in store.CUSTOMER_ENTITIES for entity, _ in records):
            who = "no recipient" if outgoing else "the sender"
            if any(entity in store.INTERNAL_ENTITIES for entity, _ in records):
                raise _Reject("internal", f"{who} is a CRM user or queue")
            raise _Reject("no_sender_match", f"{who} matches no lead, contact or account")
    return _Plan(owner, resolution.parties, method, correlated)


def _owner_info(session: Session, request: TrackRequest, config: TrackingConfig) -> owners.OwnerInfo | None:
    """The owner's settings, read once per transaction (a router tracks a whole batch in one)."""
    cached = transaction_cache(session, "abook.tracking.owners")
    key = (request.owner.type, request.owner.id, config.queue_owner)
    if key not in cached:
        cached[key] = owners.owner_info_txn(session, request.owner.type, request.owner.id, config.queue_owner)
    return cached[key]  # type: ignore[no-any-return]


def _sighting(session: Session, request: TrackRequest, email_id: str) -> TrackResult:
    if store.add_sighting_txn(session, email_id, request.mailbox, request.external_id, request.arrival):
        _log.info("{activity_id} also seen in {mailbox}", activity_id=email_id, mailbox=request.mailbox)
        return TrackResult("sighting", activity_id=email_id)
    raise _Reject("duplicate", f"already tracked as {email_id} and seen in {request.mailbox}")


def _correlate(session: Session, parsed: ParsedMessage, config: TrackingConfig,
               reads: _Reads) -> tuple[str | None, store.Correlated | None]:
    """SPEC 3.4: In-Reply-To, then References (closest parent first), then the subject's token."""
    ids = list(parsed.in_reply_to) + list(parsed.references)
    if ids:
        by_id: dict[str, store.Correlated] = {}
        for row in reads.by_message_ids(session, ids):
            if row.message_id is not None:
                by_id.setdefault(row.message_id, row)
        for mid in parsed.in_reply_to:
            if mid in by_id:
                return "in_reply_to", by_id[mid]
        for mid in reversed(parsed.references):
            if mid in by_id:
                return "references", by_id[mid]
    tokens = find_tokens(config, parsed.subject)
    if tokens:
        by_token = {row.tracking_token: row for row in reads.by_tokens(session, tokens)}
        for token in tokens:
            if token in by_token:
                return "token", by_token[token]
    return None, None


def _rows(request: TrackRequest, parsed: ParsedMessage, plan: _Plan,
          activity_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The activity and email rows of an accepted message."""
    outgoing = request.direction == "out"
    status = EmailStatus.sent if outgoing else EmailStatus.received
    when = parsed.date or datetime.now(timezone.utc)
    body = parsed.body_text if parsed.body_text is not None else parsed.body_html
    correlated, owner = plan.correlated, plan.owner
    activity = {
        "id": activity_id, "activitytypecode": "email", "owner_id": owner.activity_owner_id,
        "owningbusinessunit_id": owner.business_unit_id, "subject": parsed.subject or None,
        "description": body[:DESCRIPTION_LIMIT] if body else None, "statecode": 1, "statuscode": status,
        "regarding_type": correlated.regarding_type if correlated else None,
        "regarding_id": correlated.regarding_id if correlated else None,
        "actualend": when,
    }
    email = {
        "activity_id": activity_id, "message_key": parsed.message_key, "message_id": parsed.message_id,
        "in_reply_to": " ".join(f"<{m}>" for m in parsed.in_reply_to) or None,
        "references": " ".join(f"<{m}>" for m in parsed.references) or None,
        "directioncode": outgoing, "correlation_method": plan.method, "accepting_type": owner.type,
        "accepting_id": owner.id, "sender": parsed.sender[1] if parsed.sender else None,
        "mimetype": parsed.mimetype, "body_text": parsed.body_text, "body_html": parsed.body_html,
        "raw": request.raw, "statuscode_cache": status,
        "received_at": None if outgoing else when, "sent_at": when if outgoing else None,
    }
    return activity, email


def _attachment(part: Part) -> dict[str, Any]:
    return {"part": part.path, "filename": part.filename, "mimetype": part.mimetype,
            "content_id": part.content_id, "body": part.body}


def awaits(parsed: ParsedMessage, plan: _Plan, activity_id: str) -> list[dict[str, object]]:
    """The Message-IDs an uncorrelated reply waits for (``store/replies.py``)."""
    if plan.correlated is not None:
        return []
    return replies.await_rows(activity_id, replies.awaited(parsed.in_reply_to, parsed.references))


def _store(session: Session, request: TrackRequest, parsed: ParsedMessage, plan: _Plan, activity_id: str) -> None:
    activity, email = _rows(request, parsed, plan, activity_id)
    store.insert_email_txn(session, activity=activity, email=email, parties=plan.parties)
    for part in parsed.attachments:  # decoded one at a time
        store.insert_attachment_txn(session, activity_id, **_attachment(part))
    store.add_sighting_txn(session, activity_id, request.mailbox, request.external_id, request.arrival, new=True)
    replies.insert_awaits_txn(session, awaits(parsed, plan, activity_id))
    replies.link_waiting_replies_txn(session, [(parsed.message_id or "", activity_id)])


def token_for_email_txn(session: Session, activity_id: str, config: TrackingConfig) -> str:
    """The tracking token of a CRM email, allocated from its owner's counter the first time and stored on
    the email, so asking again gives the same token. Raises LookupError for an unknown email."""
    token, owner_id, exists = store.email_token_txn(session, activity_id)
    if not exists:
        raise LookupError(f"no email activity {activity_id}")
    if token:
        return token
    parts = store.allocate_token_parts_txn(session, owner_id) if owner_id else None
    if parts is None:
        raise LookupError(f"email {activity_id} has no owner to number its token")
    token = format_token(config, *parts)
    store.set_email_token_txn(session, activity_id, token)
    return token


def mark_sighting_txn(session: Session, email_id: str, mailbox: str) -> bool:
    """SPEC 3.6 is the router's: once it has marked the message in ``mailbox``, it records it here."""
    return store.mark_sighting_txn(session, email_id, mailbox)
