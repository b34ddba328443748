"""Activities: the common part, parties, email (attachments, the mailboxes it was seen in) and the mail
that was read but not tracked."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from abook.store.enums import EmailStatus
from abook.store.keys import new_id, utcnow
from abook.store.models.base import Base


class Activity(Base):
    """Common part of every activity (email, appointment, task, fax, letter)."""

    __tablename__ = "activity"
    __table_args__ = (Index("ix_activity_regarding", "regarding_type", "regarding_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    activitytypecode: Mapped[str] = mapped_column(String(16), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id"), index=True)
    owningbusinessunit_id: Mapped[Optional[str]] = mapped_column(ForeignKey("businessunit.id"))
    subject: Mapped[Optional[str]] = mapped_column(String(800))
    description: Mapped[Optional[str]] = mapped_column(Text)
    statecode: Mapped[int] = mapped_column(Integer, default=0)  # 0 open, 1 completed, 2 canceled
    statuscode: Mapped[int] = mapped_column(Integer, default=1)
    prioritycode: Mapped[int] = mapped_column(Integer, default=1)
    regarding_type: Mapped[Optional[str]] = mapped_column(String(32))
    regarding_id: Mapped[Optional[str]] = mapped_column(String(36))
    scheduledstart: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    scheduledend: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    actualstart: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    actualend: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    location: Mapped[Optional[str]] = mapped_column(String(200))  # appointments
    alldayevent: Mapped[bool] = mapped_column(Boolean, default=False)
    percentcomplete: Mapped[Optional[int]] = mapped_column(Integer)  # tasks
    # Appointments: the IANA zone they were scheduled in (all-day dates and wall-clock times are read in
    # it), the iCalendar UID every copy of the meeting shares, and for one occurrence of a recurring
    # series (each its own record) the series' UID and the occurrence's original start.
    timezone: Mapped[Optional[str]] = mapped_column(String(64))
    globalobjectid: Mapped[Optional[str]] = mapped_column(String(255), index=True)
    seriesid: Mapped[Optional[str]] = mapped_column(String(255), index=True)
    originalstart: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    phonenumber: Mapped[Optional[str]] = mapped_column(String(64))  # phone calls
    directioncode: Mapped[bool] = mapped_column(Boolean, default=False)  # phone calls, letters: True = outgoing
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    parties: Mapped[list["ActivityParty"]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", lazy="selectin"
    )
    email: Mapped[Optional["Email"]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", uselist=False, lazy="selectin"
    )


class ActivityParty(Base):
    """A party of an activity: a resolved record (entity + id) or an unresolved address."""

    __tablename__ = "activityparty"
    __table_args__ = (Index("ix_activityparty_party", "party_type", "party_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), index=True)
    participationtypemask: Mapped[int] = mapped_column(Integer)
    party_type: Mapped[Optional[str]] = mapped_column(String(32))  # None when unresolved
    party_id: Mapped[Optional[str]] = mapped_column(String(36))
    addressused: Mapped[Optional[str]] = mapped_column(String(320))
    display_name: Mapped[Optional[str]] = mapped_column(String(320))

    activity: Mapped[Activity] = relationship(back_populates="parties")


class Email(Base):
    """The email-specific part of an email activity (1:1 with Activity)."""

    __tablename__ = "email"
    __table_args__ = (
        UniqueConstraint("message_key", name="uq_email_message_key"),
        Index("ix_email_message_id", "message_id"),
        Index("ix_email_status_owner", "statuscode_cache", "activity_id"),
    )

    activity_id: Mapped[str] = mapped_column(ForeignKey("activity.id", ondelete="CASCADE"), primary_key=True)
    # The identity of a message across mailboxes: normalised Message-ID plus a hash of chosen headers,
    # so two different messages that share a Message-ID are never merged.
    message_key: Mapped[Optional[str]] = mapped_column(String(128))
    message_id: Mapped[Optional[str]] = mapped_column(String(998))  # normalised, without <>
    in_reply_to: Mapped[Optional[str]] = mapped_column(Text)
    references: Mapped[Optional[str]] = mapped_column(Text)
    tracking_token: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    directioncode: Mapped[bool] = mapped_column(Boolean, default=False)  # True = outgoing
    correlation_method: Mapped[Optional[str]] = mapped_column(String(32))
    accepting_type: Mapped[Optional[str]] = mapped_column(String(32))  # systemuser / queue
    accepting_id: Mapped[Optional[str]] = mapped_column(String(36))
    sender: Mapped[Optional[str]] = mapped_column(String(320))
    mimetype: Mapped[Optional[str]] = mapped_column(String(128))
    body_text: Mapped[Optional[str]] = mapped_column(Text)
    body_html: Mapped[Optional[str]] = mapped_column(Text)
    raw: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    # Mirrors Activity.statuscode for the router's "pending send" claim query.
    statuscode_cache: Mapped[int] = mapped_column(Integer, default=EmailStatus.draft)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    sent_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    activity: Mapped[Activity] = relationship(back_populates="email")
    attachments: Mapped[list["Attachment"]] = relationship(
        back_populates="email", cascade="all, delete-orphan", lazy="select"
    )
    sightings: Mapped[list["EmailSighting"]] = relationship(
        back_populates="email", cascade="all, delete-orphan", lazy="selectin"
    )


class Attachment(Base):
    __tablename__ = "attachment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email_id: Mapped[str] = mapped_column(ForeignKey("email.activity_id", ondelete="CASCADE"), index=True)
    part: Mapped[str] = mapped_column(String(64))  # MIME part path, e.g. "2.1"
    filename: Mapped[Optional[str]] = mapped_column(String(500))
    mimetype: Mapped[Optional[str]] = mapped_column(String(256))
    content_id: Mapped[Optional[str]] = mapped_column(String(500))
    filesize: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[bytes] = mapped_column(LargeBinary)

    email: Mapped[Email] = relationship(back_populates="attachments")


class EmailSighting(Base):
    """One mailbox an email was seen in, and whether it is marked tracked there."""

    __tablename__ = "emailsighting"
    __table_args__ = (UniqueConstraint("email_id", "mailbox", name="uq_sighting_email_mailbox"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email_id: Mapped[str] = mapped_column(ForeignKey("email.activity_id", ondelete="CASCADE"), index=True)
    mailbox: Mapped[str] = mapped_column(String(320))  # the mailbox's name in the config
    external_id: Mapped[Optional[str]] = mapped_column(String(1024))  # UID / UIDL / EWS ItemId
    arrival: Mapped[str] = mapped_column(String(16))  # router / forward / manual
    marked: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    email: Mapped[Email] = relationship(back_populates="sightings")


class UntrackedMessage(Base):
    """A message that was read but not tracked, and why: the admin's list (`abook untracked`)."""

    __tablename__ = "untracked"
    __table_args__ = (Index("ix_untracked_at", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[Optional[str]] = mapped_column(String(320))
    external_id: Mapped[Optional[str]] = mapped_column(String(1024))
    owner_type: Mapped[Optional[str]] = mapped_column(String(32))
    owner_id: Mapped[Optional[str]] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(32))  # duplicate, no_correlation, no_sender_match, ...
    detail: Mapped[Optional[str]] = mapped_column(Text)
    message_id: Mapped[Optional[str]] = mapped_column(String(998))
    sender: Mapped[Optional[str]] = mapped_column(String(320))
    subject: Mapped[Optional[str]] = mapped_column(String(800))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_activityparty_address_lower", func.lower(ActivityParty.addressused))
