"""The tracking engine: SPEC section 3 steps 1-5 for one raw message, inside the caller's transaction.

``track_txn(session, request, config)`` never commits and never opens its own transaction; it writes in a
SAVEPOINT so that a message the store refuses (or two daemons racing for one message) rolls back only
its own rows. It never raises for a bad message: every input ends as ``tracked``, ``sighting`` or
``untracked``, the last with a reason code (``api.REASONS``) recorded in the ``untracked`` table.
Database failures (connection lost, lock timeout) do raise, so the caller's transaction, with its
mailbox cursor, rolls back and the message is read again.

Decisions where the SPEC is silent:

* the activity owner is the mailbox owner when a user; for a queue, ``tracking.queue_owner`` or a
  System Administrator of the queue's business unit (``store.tracking.owner_info_txn``);
* the tracking option applies to both directions; on outgoing mail ``crm_parties`` asks whether a
  *recipient* resolves to a lead, contact or account (the sender is the user);
* a sender matching both a contact and a user counts as a CRM party (it is a lead/contact/account);
* only active records are linked as parties; facilities are never email parties;
* an uncorrelated email has no regarding record (SPEC: "then nothing");
* the token found in an incoming subject correlates; it is not copied onto the new email, whose own
  token (``token_for_email_txn``) is allocated only when the CRM sends it.
"""

from __future__ import annotations

import email.parser
import email.policy
from datetime import datetime, timezone

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from twisted.logger import Logger

from abook.config.model import TrackingConfig
from abook.store import tracking as store
from abook.store.models import EmailStatus, new_id
from abook.tracking.api import TrackRequest, TrackResult
from abook.tracking.parse import ParsedMessage, Unreadable, header_text, normalise_message_id, parse_message
from abook.tracking.parties import build_parties, lookup_keys
from abook.tracking.tokens import find_tokens, format_token

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
    parsed: ParsedMessage | None = None
    try:
        if len(request.raw) > config.max_message_bytes:
            raise _Reject("too_large", f"{len(request.raw)} bytes, more than {config.max_message_bytes}")
        try:
            parsed = parse_message(request.raw)
        except Unreadable as e:
            raise _Reject("parse_error", str(e)) from None
        return _track(session, request, config, parsed)
    except _Reject as r:
        return _untracked(session, request, parsed, r.reason, r.detail)
    except sa_exc.SQLAlchemyError:
        raise  # the database's trouble, not the message's: the caller rolls back and retries
    except Exception as e:  # a message no rule foresaw must still end with a reason, never a crash
        _log.failure("tracking a message from {mailbox} failed", mailbox=request.mailbox)
        return _untracked(session, request, parsed, "parse_error", f"{type(e).__name__}: {e}"[:500])


def _untracked(session: Session, request: TrackRequest, parsed: ParsedMessage | None, reason: str,
               detail: str) -> TrackResult:
    if parsed is not None:
        message_id, sender, subject = parsed.message_id, parsed.sender[1] if parsed.sender else None, parsed.subject
    else:
        message_id, sender, subject = _header_summary(request.raw)
    store.record_untracked_txn(
        session, mailbox=request.mailbox, external_id=request.external_id, owner_type=request.owner.type,
        owner_id=request.owner.id, reason=reason, detail=detail, message_id=message_id, sender=sender,
        subject=subject,
    )
    _log.info("not tracked from {mailbox}: {reason} ({detail})", mailbox=request.mailbox, reason=reason,
              detail=detail)
    return TrackResult("untracked", reason=reason, detail=detail)


def _header_summary(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """Best-effort Message-ID, From and Subject of something that could not be tracked."""
    try:
        head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw[:65536])
        return (normalise_message_id(header_text(head.get("message-id", ""))),
                header_text(head.get("from", "")) or None, header_text(head.get("subject", "")) or None)
    except Exception:
        return None, None, None


def _track(session: Session, request: TrackRequest, config: TrackingConfig, parsed: ParsedMessage) -> TrackResult:
    owner = _owner_info(session, request, config)
    if owner is None:
        raise _Reject("no_owner", f"no {request.owner.type} with id {request.owner.id}")

    # 1. Duplicate?
    existing = store.email_by_key_txn(session, parsed.message_key)
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
    if owner.activity_owner_id is None:
        raise _Reject("no_owner", f"queue {owner.name}: no user to own its email (set tracking.queue_owner)")
    outgoing = request.direction == "out"
    found = store.resolve_addresses_txn(session, lookup_keys(parsed.addresses, outgoing))
    resolution = build_parties(parsed.addresses, outgoing, found)
    method, correlated = _correlate(session, parsed, config)
    if not manual and option == "responses" and correlated is None:
        raise _Reject("no_correlation", "not a reply to tracked email and no tracking token")
    if not manual and option == "crm_parties":
        records = resolution.recipient_records if outgoing else resolution.sender_records
        if not any(entity in store.CUSTOMER_ENTITIES for entity, _ in records):
            who = "no recipient" if outgoing else "the sender"
            if any(entity in store.INTERNAL_ENTITIES for entity, _ in records):
                raise _Reject("internal", f"{who} is a CRM user or queue")
            raise _Reject("no_sender_match", f"{who} matches no lead, contact or account")

    # 5. Store, in a savepoint: a refused message or a lost race undoes only its own rows.
    activity_id = new_id()
    _ensure_transaction(session)
    try:
        with session.begin_nested():
            _store(session, request, parsed, owner, activity_id, resolution.parties, method, correlated)
    except sa_exc.IntegrityError:
        existing = store.email_by_key_txn(session, parsed.message_key)
        if existing is not None:  # tracked meanwhile by another daemon
            return _sighting(session, request, existing)
        raise
    except (sa_exc.DataError, ValueError, TypeError, UnicodeError) as e:
        raise _Reject("parse_error", f"the store refused the message: {type(e).__name__}") from None
    _log.info("tracked {message_key} from {mailbox} as {activity_id} ({count} parties, {method})",
              message_key=parsed.message_key, mailbox=request.mailbox, activity_id=activity_id,
              count=len(resolution.parties), method=method or "uncorrelated")
    return TrackResult("tracked", activity_id=activity_id)


def _owner_info(session: Session, request: TrackRequest, config: TrackingConfig) -> store.OwnerInfo | None:
    """The owner's settings, read once per transaction (a router tracks a whole batch in one)."""
    transaction = session.get_transaction()
    cached = session.info.get("abook.tracking.owners")
    if cached is None or cached[0] is not transaction:
        cached = session.info["abook.tracking.owners"] = (transaction, {})
    key = (request.owner.type, request.owner.id, config.queue_owner)
    if key not in cached[1]:
        cached[1][key] = store.owner_info_txn(session, request.owner.type, request.owner.id, config.queue_owner)
    return cached[1][key]


def _ensure_transaction(session: Session) -> None:
    """pysqlite defers BEGIN until the first write, so a SAVEPOINT issued before any write would open (and
    its RELEASE commit) a transaction of its own, cutting the caller's transaction in two. Begin it now."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if dbapi is not None and not getattr(dbapi, "in_transaction", True):
        connection.exec_driver_sql("BEGIN")


def _sighting(session: Session, request: TrackRequest, email_id: str) -> TrackResult:
    if store.add_sighting_txn(session, email_id, request.mailbox, request.external_id, request.arrival):
        _log.info("{activity_id} also seen in {mailbox}", activity_id=email_id, mailbox=request.mailbox)
        return TrackResult("sighting", activity_id=email_id)
    raise _Reject("duplicate", f"already tracked as {email_id} and seen in {request.mailbox}")


def _correlate(session: Session, parsed: ParsedMessage,
               config: TrackingConfig) -> tuple[str | None, store.Correlated | None]:
    """SPEC 3.4: In-Reply-To, then References (closest parent first), then the subject's token."""
    ids = list(parsed.in_reply_to) + list(parsed.references)
    if ids:
        by_id: dict[str, store.Correlated] = {}
        for row in store.emails_by_message_ids_txn(session, ids):
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
        by_token = {row.tracking_token: row for row in store.emails_by_tokens_txn(session, tokens)}
        for token in tokens:
            if token in by_token:
                return "token", by_token[token]
    return None, None


def _store(session: Session, request: TrackRequest, parsed: ParsedMessage, owner: store.OwnerInfo,
           activity_id: str, parties: tuple[store.NewParty, ...], method: str | None,
           correlated: store.Correlated | None) -> None:
    outgoing = request.direction == "out"
    status = EmailStatus.sent if outgoing else EmailStatus.received
    when = parsed.date or datetime.now(timezone.utc)
    body = parsed.body_text if parsed.body_text is not None else parsed.body_html
    store.insert_email_txn(
        session,
        activity={
            "id": activity_id, "activitytypecode": "email", "owner_id": owner.activity_owner_id,
            "owningbusinessunit_id": owner.business_unit_id, "subject": parsed.subject or None,
            "description": body[:DESCRIPTION_LIMIT] if body else None, "statecode": 1, "statuscode": status,
            "regarding_type": correlated.regarding_type if correlated else None,
            "regarding_id": correlated.regarding_id if correlated else None,
            "actualend": when,
        },
        email={
            "activity_id": activity_id, "message_key": parsed.message_key, "message_id": parsed.message_id,
            "in_reply_to": " ".join(f"<{m}>" for m in parsed.in_reply_to) or None,
            "references": " ".join(f"<{m}>" for m in parsed.references) or None,
            "directioncode": outgoing, "correlation_method": method, "accepting_type": owner.type,
            "accepting_id": owner.id, "sender": parsed.sender[1] if parsed.sender else None,
            "mimetype": parsed.mimetype, "body_text": parsed.body_text, "body_html": parsed.body_html,
            "raw": request.raw, "statuscode_cache": status,
            "received_at": None if outgoing else when, "sent_at": when if outgoing else None,
        },
        parties=parties,
    )
    for part in parsed.attachments:  # decoded one at a time
        store.insert_attachment_txn(session, activity_id, part=part.path, filename=part.filename,
                                    mimetype=part.mimetype, content_id=part.content_id, body=part.body)
    store.add_sighting_txn(session, activity_id, request.mailbox, request.external_id, request.arrival, new=True)


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
