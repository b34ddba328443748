"""What the tracking commands show: untracked mail, emails with unresolved senders, one email in full.

Read-only ``*_txn`` queries returning frozen rows (``abook untracked``, ``abook unresolved``,
``abook email show``); the writes live in ``store/tracking.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy.orm import Session

from abook.store.models import (
    ENTITY_MODELS,
    Activity,
    ActivityParty,
    Attachment,
    Email,
    ParticipationType,
    SystemUser,
    UntrackedMessage,
)


@dataclass(frozen=True)
class UntrackedRow:
    recorded_at: datetime
    reason: str
    detail: str | None
    mailbox: str | None
    external_id: str | None
    sender: str | None
    subject: str | None
    message_id: str | None


def untracked_txn(session: Session, since: datetime | None = None, reason: str | None = None,
                  limit: int = 100) -> list[UntrackedRow]:
    q = select(UntrackedMessage).order_by(UntrackedMessage.recorded_at.desc(), UntrackedMessage.id.desc())
    if since is not None:
        q = q.where(UntrackedMessage.recorded_at >= since)
    if reason:
        q = q.where(UntrackedMessage.reason == reason)
    return [
        UntrackedRow(u.recorded_at, u.reason, u.detail, u.mailbox, u.external_id, u.sender, u.subject,
                     u.message_id)
        for u in session.scalars(q.limit(limit))
    ]


@dataclass(frozen=True)
class UnresolvedRow:
    activity_id: str
    #: received_at of received mail, sent_at of sent mail
    when: datetime | None
    outgoing: bool
    #: (display name, address) of the unresolved sender (received mail) or recipients (sent mail)
    addresses: tuple[tuple[str | None, str | None], ...]
    subject: str | None


_RECIPIENTS = (ParticipationType.to, ParticipationType.cc, ParticipationType.bcc)


def unresolved_txn(session: Session, user_id: str, limit: int = 100,
                   direction: str | None = None) -> list[UnresolvedRow]:
    """A user's emails (owned or accepted) with an unresolved party: received mail whose sender, and sent mail
    any of whose recipients, matches no CRM record; newest first. ``direction``: only "in" or only "out"."""
    unresolved = ActivityParty.party_id.is_(None)
    received = and_(Email.directioncode.is_(False), select(ActivityParty.id).where(
        ActivityParty.activity_id == Email.activity_id, ActivityParty.party_id.is_not(None),
        ActivityParty.participationtypemask == ParticipationType.sender).exists() == false())
    sent = and_(Email.directioncode.is_(True), select(ActivityParty.id).where(
        ActivityParty.activity_id == Email.activity_id, unresolved,
        ActivityParty.participationtypemask.in_(_RECIPIENTS)).exists())
    wanted = {"in": received, "out": sent}.get(direction or "", or_(received, sent))
    when = func.coalesce(Email.received_at, Email.sent_at)
    q = (
        select(Email.activity_id, when, Email.directioncode, Email.sender, Activity.subject)
        .join(Activity, Activity.id == Email.activity_id)
        .where(or_(Activity.owner_id == user_id,
                   and_(Email.accepting_type == "systemuser", Email.accepting_id == user_id)), wanted)
        .order_by(when.desc(), Email.activity_id)
        .limit(limit)
    )
    rows = session.execute(q).all()
    parties: dict[str, list[tuple[int, str | None, str | None]]] = {}
    if rows:
        for activity_id, mask, name, address in session.execute(
                select(ActivityParty.activity_id, ActivityParty.participationtypemask, ActivityParty.display_name,
                       ActivityParty.addressused)
                .where(ActivityParty.activity_id.in_([r[0] for r in rows]), unresolved)
                .order_by(ActivityParty.participationtypemask, ActivityParty.id)):
            parties.setdefault(activity_id, []).append((mask, name, address))
    out = []
    for activity_id, at, outgoing, sender, subject in rows:
        masks = _RECIPIENTS if outgoing else (ParticipationType.sender,)
        found = tuple((name, address) for mask, name, address in parties.get(activity_id, []) if mask in masks)
        out.append(UnresolvedRow(activity_id, at, bool(outgoing), found or ((None, sender),), subject))
    return out


@dataclass(frozen=True)
class PartyRow:
    participation: str
    address: str | None
    display_name: str | None
    party_type: str | None
    party_id: str | None
    party_name: str | None


@dataclass(frozen=True)
class SightingRow:
    mailbox: str
    arrival: str
    external_id: str | None
    marked: bool
    seen_at: datetime


@dataclass(frozen=True)
class EmailDetail:
    activity_id: str
    subject: str | None
    direction: str
    statuscode: int
    owner: str | None
    message_id: str | None
    tracking_token: str | None
    correlation_method: str | None
    regarding_type: str | None
    regarding_id: str | None
    accepting: str | None
    parties: tuple[PartyRow, ...]
    sightings: tuple[SightingRow, ...]
    attachments: tuple[tuple[str | None, str | None, int], ...]


def _record_name(session: Session, entity: str | None, record_id: str | None) -> str | None:
    if not entity or not record_id or entity not in ENTITY_MODELS:
        return None
    model: Any = ENTITY_MODELS[entity]
    column = getattr(model, "fullname", None) if entity in ("contact", "lead", "systemuser") else None
    return session.scalar(select(column if column is not None else model.name).where(model.id == record_id))


def email_detail_txn(session: Session, activity_id: str) -> EmailDetail | None:
    activity = session.get(Activity, activity_id)
    if activity is None or activity.email is None:
        return None
    email = activity.email
    parties = tuple(
        PartyRow(ParticipationType(p.participationtypemask).name, p.addressused, p.display_name, p.party_type,
                 p.party_id, _record_name(session, p.party_type, p.party_id))
        for p in sorted(activity.parties, key=lambda p: (p.participationtypemask, p.id))
    )
    sightings = tuple(SightingRow(s.mailbox, s.arrival, s.external_id, s.marked, s.seen_at)
                      for s in sorted(email.sightings, key=lambda s: s.id))
    attachments = tuple(
        (a.filename, a.mimetype, a.filesize)
        for a in session.execute(
            select(Attachment.filename, Attachment.mimetype, Attachment.filesize)
            .where(Attachment.email_id == activity_id).order_by(Attachment.part)
        )
    )
    owner = session.scalar(select(SystemUser.domainname).where(SystemUser.id == activity.owner_id))
    accepting = None
    if email.accepting_type:
        accepting = f"{email.accepting_type} " + (
            _record_name(session, email.accepting_type, email.accepting_id) or str(email.accepting_id))
    return EmailDetail(
        activity.id, activity.subject, "outgoing" if email.directioncode else "incoming", activity.statuscode,
        owner, email.message_id, email.tracking_token, email.correlation_method, activity.regarding_type,
        activity.regarding_id, accepting, parties, sightings, attachments,
    )
