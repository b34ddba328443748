"""The records the address books publish: accounts, contacts and leads; every entity by name, and the
``lower()`` index on each of their email fields (resolving an address is an index probe)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from abook.store.enums import EMAIL_FIELDS, State
from abook.store.keys import new_id, utcnow
from abook.store.models.base import Base
from abook.store.models.org import Equipment, Queue, SystemUser


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
