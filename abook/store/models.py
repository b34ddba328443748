"""The CRM store's tables: SQLAlchemy 2 typed declarative mappings, and nothing else.

Field names follow Microsoft Dynamics CRM 4.0 where one exists (emailaddress1, internalemailaddress,
statecode, ...), so admins recognise them. Every record id is a GUID kept as its 36-character text form.

Indexes serve the queries of the layers above:

* every email field of every entity has an index on ``lower(field)``, so resolving an address (tracking,
  binds by mail, the LDAP ``(mail=...)`` lookup) is an index probe, never a scan;
* owner and business-unit columns are indexed for the visibility predicate (``store/security.py``);
* substring and prefix search over names and mail is served by the trigram index built in
  ``store/search_index.py`` (SQLite FTS5 trigram / PostgreSQL pg_trgm).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The codes live in enums.py; they are named here too so ``from abook.store.models import State`` keeps working
# inside the store.
from abook.store.enums import (  # noqa: F401
    ADDRESS_BOOK_MATCHING,
    BU_OWNED,
    EMAIL_FIELDS,
    ENTITIES,
    INCOMING_METHODS,
    OUTGOING_METHODS,
    TRACKING_OPTIONS,
    USER_OWNED,
    EmailStatus,
    ParticipationType,
    ReadDepth,
    State,
)
from abook.store.keys import new_id, utcnow  # noqa: F401


class Base(DeclarativeBase):
    pass


# ---------------------------------------------------------------------------------------------------------
# Organisation and security


class BusinessUnit(Base):
    __tablename__ = "businessunit"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160))
    parent_id: Mapped[Optional[str]] = mapped_column(ForeignKey("businessunit.id"), index=True)
    statecode: Mapped[int] = mapped_column(Integer, default=State.active)
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


user_roles = Table(
    "systemuserroles",
    Base.metadata,
    Column("systemuser_id", ForeignKey("systemuser.id", ondelete="CASCADE"), primary_key=True),
    Column("role_id", ForeignKey("role.id", ondelete="CASCADE"), primary_key=True),
)


class Role(Base):
    """A security role: a name and, per entity, a read depth (RolePrivilege rows)."""

    __tablename__ = "role"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    business_unit_id: Mapped[Optional[str]] = mapped_column(ForeignKey("businessunit.id"))
    privileges: Mapped[list["RolePrivilege"]] = relationship(
        back_populates="role", cascade="all, delete-orphan", lazy="selectin"
    )


class RolePrivilege(Base):
    __tablename__ = "roleprivilege"

    role_id: Mapped[str] = mapped_column(ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(32), primary_key=True)
    read_depth: Mapped[int] = mapped_column(Integer, default=ReadDepth.none)
    role: Mapped[Role] = relationship(back_populates="privileges")


class MailSettingsMixin:
    """Per-user (and per-queue) email settings of SPEC section 1."""

    tracking_option: Mapped[str] = mapped_column(String(16), default="all")
    incoming_method: Mapped[str] = mapped_column(String(16), default="none")
    outgoing_method: Mapped[str] = mapped_column(String(16), default="none")


class SystemUser(MailSettingsMixin, Base):
    __tablename__ = "systemuser"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    domainname: Mapped[str] = mapped_column(String(256))  # the user name people bind with
    firstname: Mapped[Optional[str]] = mapped_column(String(64))
    middlename: Mapped[Optional[str]] = mapped_column(String(64))
    lastname: Mapped[Optional[str]] = mapped_column(String(64))
    fullname: Mapped[Optional[str]] = mapped_column(String(200))
    nickname: Mapped[Optional[str]] = mapped_column(String(64))
    title: Mapped[Optional[str]] = mapped_column(String(128))
    jobtitle: Mapped[Optional[str]] = mapped_column(String(128))
    department: Mapped[Optional[str]] = mapped_column(String(128))
    internalemailaddress: Mapped[Optional[str]] = mapped_column(String(320))
    personalemailaddress: Mapped[Optional[str]] = mapped_column(String(320))
    address1_telephone1: Mapped[Optional[str]] = mapped_column(String(64))
    mobilephone: Mapped[Optional[str]] = mapped_column(String(64))
    homephone: Mapped[Optional[str]] = mapped_column(String(64))
    address1_fax: Mapped[Optional[str]] = mapped_column(String(64))
    address1_line1: Mapped[Optional[str]] = mapped_column(String(250))
    address1_city: Mapped[Optional[str]] = mapped_column(String(80))
    address1_stateorprovince: Mapped[Optional[str]] = mapped_column(String(50))
    address1_postalcode: Mapped[Optional[str]] = mapped_column(String(20))
    address1_country: Mapped[Optional[str]] = mapped_column(String(80))
    description: Mapped[Optional[str]] = mapped_column(Text)
    business_unit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)
    statecode: Mapped[int] = mapped_column(Integer, default=State.active)
    password_hash: Mapped[Optional[str]] = mapped_column(String(256))
    # Address book contact matching: "synchronised" (only contacts in the local data filter) or "all".
    address_book_matching: Mapped[str] = mapped_column(String(16), default="synchronised")
    # Local data filter for contacts: owner scope ("user", "business_unit", "parent_child",
    # "organisation") plus an optional RFC 4515 filter over contact attributes.
    local_filter_scope: Mapped[str] = mapped_column(String(16), default="user")
    local_filter_ldap: Mapped[Optional[str]] = mapped_column(Text)
    local_filter_include_inactive: Mapped[bool] = mapped_column(Boolean, default=False)
    tracking_number: Mapped[Optional[int]] = mapped_column(Integer, unique=True)
    # Contacts, appointments and tasks kept in step with the user's mailbox (abook/sync/)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    token_counter: Mapped[int] = mapped_column(Integer, default=0)
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    roles: Mapped[list[Role]] = relationship(secondary=user_roles, lazy="selectin")


class PartyFieldsMixin:
    """Person/organisation fields shared by accounts, contacts and leads."""

    emailaddress1: Mapped[Optional[str]] = mapped_column(String(320))
    emailaddress2: Mapped[Optional[str]] = mapped_column(String(320))
    emailaddress3: Mapped[Optional[str]] = mapped_column(String(320))
    telephone1: Mapped[Optional[str]] = mapped_column(String(64))
    telephone2: Mapped[Optional[str]] = mapped_column(String(64))
    telephone3: Mapped[Optional[str]] = mapped_column(String(64))
    fax: Mapped[Optional[str]] = mapped_column(String(64))
    websiteurl: Mapped[Optional[str]] = mapped_column(String(200))
    address1_line1: Mapped[Optional[str]] = mapped_column(String(250))
    address1_line2: Mapped[Optional[str]] = mapped_column(String(250))
    address1_line3: Mapped[Optional[str]] = mapped_column(String(250))
    address1_city: Mapped[Optional[str]] = mapped_column(String(80))
    address1_stateorprovince: Mapped[Optional[str]] = mapped_column(String(50))
    address1_postalcode: Mapped[Optional[str]] = mapped_column(String(20))
    address1_country: Mapped[Optional[str]] = mapped_column(String(80))
    description: Mapped[Optional[str]] = mapped_column(Text)
    statecode: Mapped[int] = mapped_column(Integer, default=State.active)
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Account(PartyFieldsMixin, Base):
    __tablename__ = "account"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160))
    accountnumber: Mapped[Optional[str]] = mapped_column(String(20))
    parentaccount_id: Mapped[Optional[str]] = mapped_column(ForeignKey("account.id"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id"), index=True)
    owningbusinessunit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)


class Contact(PartyFieldsMixin, Base):
    __tablename__ = "contact"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    salutation: Mapped[Optional[str]] = mapped_column(String(100))
    firstname: Mapped[Optional[str]] = mapped_column(String(64))
    middlename: Mapped[Optional[str]] = mapped_column(String(64))
    lastname: Mapped[Optional[str]] = mapped_column(String(64))
    fullname: Mapped[Optional[str]] = mapped_column(String(200))
    nickname: Mapped[Optional[str]] = mapped_column(String(64))
    jobtitle: Mapped[Optional[str]] = mapped_column(String(128))
    department: Mapped[Optional[str]] = mapped_column(String(128))
    mobilephone: Mapped[Optional[str]] = mapped_column(String(64))
    pager: Mapped[Optional[str]] = mapped_column(String(64))
    # The fields a mailbox contact has besides (docs/sync.md section 2; CRM 4.0 names): telephone1 is the
    # business phone, telephone2 the home phone, telephone3 the other phone, company the company phone.
    business2: Mapped[Optional[str]] = mapped_column(String(64))
    home2: Mapped[Optional[str]] = mapped_column(String(64))
    company: Mapped[Optional[str]] = mapped_column(String(64))
    assistantname: Mapped[Optional[str]] = mapped_column(String(100))
    assistantphone: Mapped[Optional[str]] = mapped_column(String(64))
    managername: Mapped[Optional[str]] = mapped_column(String(100))
    spousesname: Mapped[Optional[str]] = mapped_column(String(100))
    childrensnames: Mapped[Optional[str]] = mapped_column(String(255))
    birthdate: Mapped[Optional[date]] = mapped_column(Date)
    anniversary: Mapped[Optional[date]] = mapped_column(Date)
    parentcustomer_id: Mapped[Optional[str]] = mapped_column(ForeignKey("account.id"), index=True)
    # The DN a plain-LDIF import came from: re-importing the same file upserts by it.
    source_dn: Mapped[Optional[str]] = mapped_column(String(1024), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id"), index=True)
    owningbusinessunit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)


class Lead(PartyFieldsMixin, Base):
    __tablename__ = "lead"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject: Mapped[Optional[str]] = mapped_column(String(300))
    salutation: Mapped[Optional[str]] = mapped_column(String(100))
    firstname: Mapped[Optional[str]] = mapped_column(String(64))
    middlename: Mapped[Optional[str]] = mapped_column(String(64))
    lastname: Mapped[Optional[str]] = mapped_column(String(64))
    fullname: Mapped[Optional[str]] = mapped_column(String(200))
    companyname: Mapped[Optional[str]] = mapped_column(String(100))
    jobtitle: Mapped[Optional[str]] = mapped_column(String(128))
    mobilephone: Mapped[Optional[str]] = mapped_column(String(64))
    pager: Mapped[Optional[str]] = mapped_column(String(64))
    owner_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id"), index=True)
    owningbusinessunit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)


class Queue(MailSettingsMixin, Base):
    __tablename__ = "queue"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160))
    emailaddress: Mapped[Optional[str]] = mapped_column(String(320))
    description: Mapped[Optional[str]] = mapped_column(Text)
    business_unit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)
    statecode: Mapped[int] = mapped_column(Integer, default=State.active)
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Equipment(Base):
    """A facility or piece of equipment."""

    __tablename__ = "equipment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160))
    emailaddress: Mapped[Optional[str]] = mapped_column(String(320))
    description: Mapped[Optional[str]] = mapped_column(Text)
    site: Mapped[Optional[str]] = mapped_column(String(160))
    business_unit_id: Mapped[str] = mapped_column(ForeignKey("businessunit.id"), index=True)
    statecode: Mapped[int] = mapped_column(Integer, default=State.active)
    createdon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modifiedon: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


#: entity name -> model class
ENTITY_MODELS: dict[str, type[Base]] = {
    "account": Account,
    "contact": Contact,
    "lead": Lead,
    "queue": Queue,
    "systemuser": SystemUser,
    "equipment": Equipment,
}



# Case-insensitive address lookup across every email field of every entity is an index probe.
for _entity, (_primary, _others) in EMAIL_FIELDS.items():
    _model = ENTITY_MODELS[_entity]
    for _field in (_primary, *_others):
        Index(f"ix_{_entity}_{_field}_lower", func.lower(getattr(_model, _field)))
Index("ix_systemuser_domainname_lower", func.lower(SystemUser.domainname), unique=True)


# ---------------------------------------------------------------------------------------------------------
# Activities


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


# ---------------------------------------------------------------------------------------------------------
# Routing state (synchronisation state: store/sync_links.py)


class MailboxState(Base):
    """Health and read position of one configured mailbox (keyed by its name in the config)."""

    __tablename__ = "mailboxstate"

    name: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # ews / graph / imap / pop3 / forward
    owner_type: Mapped[Optional[str]] = mapped_column(String(32))
    owner_id: Mapped[Optional[str]] = mapped_column(String(36))
    cursor: Mapped[Optional[str]] = mapped_column(Text)  # EWS sync state, UIDVALIDITY:UID, UIDL set
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)  # permanent ones: disable after
    #: polls in a row that failed, of any kind (the router backs off, alerts and `abook status` shows it)
    failures_in_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_poll_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    messages_tracked: Mapped[int] = mapped_column(Integer, default=0)
    # Lease so that two daemons sharing one PostgreSQL never poll the same mailbox at once.
    lease_holder: Mapped[Optional[str]] = mapped_column(String(128))
    lease_until: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class MailArrival(Base):
    """One message the router read, by sender: the sliding window of the router's loop damping."""

    __tablename__ = "mailarrival"
    __table_args__ = (Index("ix_mailarrival_window", "mailbox", "sender", "arrived_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320))  # lower-cased address
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Deployment-wide values the store must remember (tracking number allocation, ...)."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


Index("ix_activityparty_address_lower", func.lower(ActivityParty.addressused))


# Mappings kept in domain modules of their own register on ``Base.metadata`` here, so whoever imports the
# models (Alembic, the schema test) sees every table.
from abook.store import daemons as _daemons  # noqa: E402,F401
from abook.store import sync_links as _sync_links  # noqa: E402,F401
from abook.store import sync_leases as _sync_leases  # noqa: E402,F401
from abook.store import replies as _replies  # noqa: E402,F401
