"""The outgoing queue's SQL: which CRM email in Pending Send (6) is due, claiming one (6 -> Sending 7, once,
across daemons), keeping the message built for it, and what became of each attempt.

The router (``routing/outgoing.py``) builds the RFC 5322 message and sends it; everything it reads or writes
in the store is a function here, taking and returning frozen values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from abook.store.enums import EmailStatus, ParticipationType
from abook.store.models import EMAIL_FIELDS, ENTITY_MODELS, Activity, ActivityParty, Email, Queue, SystemUser


@dataclass(frozen=True)
class QueuedEmail:
    activity_id: str
    subject: str | None
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class AttachmentPart:
    part: str
    filename: str | None
    mimetype: str | None
    body: bytes


@dataclass(frozen=True)
class Claimed:
    """A CRM email this daemon claimed (now in Sending), with what its message is built from."""

    activity_id: str
    #: (display name, address) of the user or queue sending
    sender: tuple[str, str]
    #: ParticipationType to/cc/bcc -> addresses, in party order
    rcpt: dict[int, list[str]]
    subject: str | None
    description: str | None
    body_html: str | None
    in_reply_to: str | None
    references: str | None
    attachments: tuple[AttachmentPart, ...]
    #: the message built by an earlier claim (a retry sends the same bytes); None: build it now
    message_id: str | None
    raw: bytes | None


def _sender(session: Session, activity: Activity) -> tuple[str, str] | None:
    """(display name, address) of the user or queue sending, when its outgoing method is router."""
    for party in activity.parties:
        if party.participationtypemask == ParticipationType.sender and party.party_type == "queue":
            queue = session.get(Queue, party.party_id)
            if queue is None or queue.outgoing_method != "router" or not queue.emailaddress:
                return None
            return queue.name, queue.emailaddress
    user = session.get(SystemUser, activity.owner_id)
    if user is None or user.outgoing_method != "router" or not user.internalemailaddress:
        return None
    return user.fullname or "", user.internalemailaddress


def _address(session: Session, party: ActivityParty) -> str | None:
    if party.addressused:
        return party.addressused
    if party.party_type in ENTITY_MODELS and party.party_id:
        record = session.get(ENTITY_MODELS[party.party_type], party.party_id)
        return getattr(record, EMAIL_FIELDS[party.party_type][0], None) if record else None
    return None


def _recipients(session: Session, activity: Activity) -> dict[int, list[str]]:
    rcpt: dict[int, list[str]] = {ParticipationType.to: [], ParticipationType.cc: [], ParticipationType.bcc: []}
    for party in sorted(activity.parties, key=lambda p: p.id):
        if party.participationtypemask in rcpt:
            address = _address(session, party)
            if address:
                rcpt[party.participationtypemask].append(address)
    return rcpt


def _router_sent():  # type: ignore[no-untyped-def]
    """SQL: the activity's sender uses the router (a queue sender decides, else the owning user)."""
    queue_sender = select(ActivityParty.activity_id).where(
        ActivityParty.participationtypemask == ParticipationType.sender, ActivityParty.party_type == "queue")
    router_queue = queue_sender.join(Queue, Queue.id == ActivityParty.party_id).where(Queue.outgoing_method == "router")
    router_user = select(SystemUser.id).where(SystemUser.outgoing_method == "router")
    return or_(Activity.id.in_(router_queue), and_(Activity.id.not_in(queue_sender), Activity.owner_id.in_(router_user)))


def due_txn(session: Session, now: datetime, limit: int) -> list[str]:
    """Up to ``limit`` emails in Pending Send whose next attempt is due and whose sender uses the router,
    oldest first."""
    return list(session.scalars(
        select(Email.activity_id).join(Activity, Activity.id == Email.activity_id)
        .where(Email.statuscode_cache == EmailStatus.pending_send,
               or_(Email.next_attempt_at.is_(None), Email.next_attempt_at <= now), _router_sent())
        .order_by(Activity.createdon, Email.activity_id).limit(limit)).all())


def claim_one_txn(session: Session, activity_id: str) -> Claimed | None:
    """Move the email from Pending Send to Sending; None when its owner sends with their own mail client, or
    when another daemon claimed it first."""
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    sender = _sender(session, activity)
    if sender is None:
        return None  # the owner sends with their own mail client
    won = session.execute(update(Email).where(Email.activity_id == activity_id,
                                              Email.statuscode_cache == EmailStatus.pending_send)
                          .values(statuscode_cache=EmailStatus.sending)
                          .execution_options(synchronize_session=False))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return None  # another daemon claimed it
    session.refresh(activity.email)
    email = activity.email
    activity.statuscode = EmailStatus.sending
    activity.statecode = 1
    email.directioncode = True
    built = email.message_id is not None and email.raw is not None
    attachments = () if built else tuple(
        AttachmentPart(a.part, a.filename, a.mimetype, a.body) for a in email.attachments)
    return Claimed(activity_id, sender, _recipients(session, activity), activity.subject, activity.description,
                   email.body_html, email.in_reply_to, email.references, attachments,
                   email.message_id if built else None, email.raw if built else None)


def save_message_txn(session: Session, activity_id: str, raw: bytes, message_id: str, token: str, sender: str,
                     message_key: str) -> None:
    """Keep the message built for a claimed email, before it is sent: a retry sends these bytes again."""
    email = session.get(Email, activity_id)
    assert email is not None
    email.raw, email.message_id, email.tracking_token, email.sender = raw, message_id, token, sender
    email.message_key = message_key


def _fail(activity: Activity, email: Email, error: str) -> None:
    email.statuscode_cache = EmailStatus.failed
    activity.statuscode, activity.statecode = EmailStatus.failed, 0
    email.last_error = error[:2000]


def fail_txn(session: Session, activity_id: str, error: str) -> None:
    """The email cannot be sent at all (Failed, 8), with the reason."""
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    _fail(activity, activity.email, error)


def sent_txn(session: Session, activity_id: str, now: datetime, note: str | None) -> None:
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    email = activity.email
    email.statuscode_cache = activity.statuscode = EmailStatus.sent
    activity.statecode, activity.actualend = 1, now
    email.sent_at, email.delivery_attempts, email.last_error = now, email.delivery_attempts + 1, note


def attempt_failed_txn(session: Session, activity_id: str, error: str, permanent: bool, now: datetime,
                       max_attempts: int, backoff: float, backoff_max: float) -> int:
    """Record a failed attempt; return the new status (6 to retry later, 8 failed)."""
    activity = session.get(Activity, activity_id)
    assert activity is not None and activity.email is not None
    email = activity.email
    email.delivery_attempts += 1
    if permanent or email.delivery_attempts >= max_attempts:
        _fail(activity, email, error)
        return EmailStatus.failed
    email.statuscode_cache = activity.statuscode = EmailStatus.pending_send
    email.last_error = error[:2000]
    delay = min(backoff * 2 ** (email.delivery_attempts - 1), backoff_max)
    email.next_attempt_at = now + timedelta(seconds=delay)
    return EmailStatus.pending_send


def emails_in_txn(session: Session, status: int) -> tuple[QueuedEmail, ...]:
    rows = session.execute(select(Email.activity_id, Activity.subject, Email.delivery_attempts, Email.last_error)
                           .join(Activity, Activity.id == Email.activity_id)
                           .where(Email.statuscode_cache == status).order_by(Activity.createdon))
    return tuple(QueuedEmail(r.activity_id, r.subject, r.delivery_attempts, r.last_error) for r in rows)


def queue_lengths_txn(session: Session) -> dict[str, int]:
    rows = dict(session.execute(select(Email.statuscode_cache, func.count()).group_by(Email.statuscode_cache)).all())
    return {"pending": rows.get(EmailStatus.pending_send, 0), "sending": rows.get(EmailStatus.sending, 0),
            "failed": rows.get(EmailStatus.failed, 0)}


def resolve_stuck_txn(session: Session, activity_id: str, action: str) -> bool:
    """An admin's decision on an email stuck in Sending: "retry" (back to 6, same Message-ID) or "fail" (8)."""
    activity = session.get(Activity, activity_id)
    if activity is None or activity.email is None or activity.email.statuscode_cache != EmailStatus.sending:
        return False
    if action == "retry":
        activity.email.statuscode_cache = activity.statuscode = EmailStatus.pending_send
        activity.email.next_attempt_at = None
    else:
        _fail(activity, activity.email, "marked failed by an admin after it was found in sending")
    return True
