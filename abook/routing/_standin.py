"""TEMPORARY stand-in for the tracking engine (branch ``tracking``), deleted once theirs is on main.

Just enough of ``track_txn`` / ``mark_sighting_txn`` / ``token_for_email_txn`` for the router's tests:
one activity per Message-ID, one sighting per mailbox, nothing else of SPEC section 3.
"""

from __future__ import annotations

import hashlib
from email import message_from_bytes, policy
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from abook.config.model import TrackingConfig
from abook.store.models import Activity, Email, EmailSighting, EmailStatus, Queue, SystemUser, UntrackedMessage, utcnow
from abook.tracking.api import TrackRequest, TrackResult


def _key(msg) -> str:  # type: ignore[no-untyped-def]
    mid = (msg.get("Message-ID") or "").strip().strip("<>").lower()
    if mid:
        return mid[:128]
    raw = "\n".join(f"{k}:{v}" for k, v in msg.items())
    return "sha256:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()


def track_txn(session: Session, request: TrackRequest, config: TrackingConfig) -> TrackResult:
    msg = message_from_bytes(request.raw, policy=policy.compat32)
    if not msg.keys():
        session.add(UntrackedMessage(mailbox=request.mailbox, external_id=request.external_id, reason="parse_error",
                                     owner_type=request.owner.type, owner_id=request.owner.id))
        return TrackResult("untracked", reason="parse_error")
    key = _key(msg)
    email = session.scalars(select(Email).where(Email.message_key == key)).first()
    if email is not None:
        seen = session.scalars(select(EmailSighting).where(
            EmailSighting.email_id == email.activity_id, EmailSighting.mailbox == request.mailbox)).first()
        if seen is not None:
            return TrackResult("untracked", activity_id=email.activity_id, reason="duplicate")
        session.add(EmailSighting(email_id=email.activity_id, mailbox=request.mailbox,
                                  external_id=request.external_id, arrival=request.arrival))
        return TrackResult("sighting", activity_id=email.activity_id)
    if request.owner.type == "systemuser":
        owner_id = request.owner.id
    else:
        queue = session.get(Queue, request.owner.id)
        owner_id = session.scalars(select(SystemUser.id).where(
            SystemUser.business_unit_id == queue.business_unit_id)).first()  # type: ignore[union-attr]
    senders = getaddresses([str(msg.get("From", ""))])
    activity = Activity(activitytypecode="email", owner_id=owner_id, subject=str(msg.get("Subject", ""))[:800],
                        statecode=1, statuscode=EmailStatus.received)
    activity.email = Email(message_key=key, message_id=key, sender=senders[0][1] if senders else None,
                           raw=request.raw, statuscode_cache=EmailStatus.received, received_at=utcnow(),
                           accepting_type=request.owner.type, accepting_id=request.owner.id)
    session.add(activity)
    session.flush()
    session.add(EmailSighting(email_id=activity.id, mailbox=request.mailbox, external_id=request.external_id,
                              arrival=request.arrival))
    return TrackResult("tracked", activity_id=activity.id)


def mark_sighting_txn(session: Session, activity_id: str, mailbox: str) -> None:
    for s in session.scalars(select(EmailSighting).where(
            EmailSighting.email_id == activity_id, EmailSighting.mailbox == mailbox)):
        s.marked = True


def token_for_email_txn(session: Session, activity_id: str, config: TrackingConfig) -> str:
    email = session.get(Email, activity_id)
    assert email is not None
    if email.tracking_token:
        return email.tracking_token
    activity = session.get(Activity, activity_id)
    user = session.get(SystemUser, activity.owner_id)  # type: ignore[union-attr]
    assert user is not None
    if user.tracking_number is None:
        numbers = [n for n in session.scalars(select(SystemUser.tracking_number)) if n is not None]
        user.tracking_number = max(numbers, default=0) + 1
    user.token_counter += 1
    token = (f"{config.token_prefix}{config.token_base + user.tracking_number:0{config.user_digits}d}"
             f"{user.token_counter:0{config.counter_digits}d}")
    email.tracking_token = token
    return token


def message_key(raw: bytes) -> str:
    return _key(message_from_bytes(raw, policy=policy.compat32))
