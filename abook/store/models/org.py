"""The organisation: business units, security roles and their read depths, users, queues and equipment."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from abook.store.enums import ReadDepth, State
from abook.store.keys import new_id, utcnow
from abook.store.models.base import Base, MailSettingsMixin


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
