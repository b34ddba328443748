"""A small CRM to track mail against: one organisation, users, a queue, and customers sharing addresses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from abook.config.model import TrackingConfig
from abook.store import Store
from abook.store.models import (
    Account,
    ActivityParty,
    BusinessUnit,
    Contact,
    Lead,
    Queue,
    Role,
    SystemUser,
    UntrackedMessage,
)
from abook.tracking.api import Owner, TrackRequest, TrackResult
from abook.tracking.engine import track_txn

MAIL = Path(__file__).resolve().parents[2] / "data" / "mail"


@dataclass(frozen=True)
class Crm:
    bu: str
    jane: str  # user, tracking option "all"
    admin: str  # System Administrator of the organisation
    support: str  # queue support@corp.example
    contact: str  # shares alice@example.com with lead and user "shared"
    lead: str
    shared_user: str
    account: str  # sales@customer.example
    bob: str  # contact bob@example.net


def seed(store: Store) -> Crm:
    with store.transaction() as s:
        bu = BusinessUnit(name="Org")
        s.add(bu)
        s.flush()
        admin_role = Role(name="System Administrator")
        admin = SystemUser(domainname="admin", fullname="Ada Admin", internalemailaddress="admin@corp.example",
                           business_unit_id=bu.id, roles=[admin_role], incoming_method="router")
        jane = SystemUser(domainname="jane", fullname="Jane Doe", internalemailaddress="jane@corp.example",
                          personalemailaddress="Jane.Doe@Home.example", business_unit_id=bu.id,
                          incoming_method="router")
        shared = SystemUser(domainname="shared", fullname="Sam Shared", internalemailaddress="sam@corp.example",
                            personalemailaddress="ALICE@example.com", business_unit_id=bu.id,
                            incoming_method="router")
        s.add_all([admin, jane, shared])
        s.flush()
        support = Queue(name="Support", emailaddress="support@corp.example", business_unit_id=bu.id,
                        incoming_method="router")
        common = {"owner_id": jane.id, "owningbusinessunit_id": bu.id}
        contact = Contact(fullname="Alice Contact", emailaddress2="Alice@Example.com", **common)
        lead = Lead(fullname="Alice Lead", emailaddress1="alice@EXAMPLE.com", **common)
        account = Account(name="Customer Ltd", emailaddress3="sales@customer.example", **common)
        bob = Contact(fullname="Bob Contact", emailaddress1="bob@example.net", **common)
        s.add_all([support, contact, lead, account, bob])
        s.flush()
        return Crm(bu.id, jane.id, admin.id, support.id, contact.id, lead.id, shared.id, account.id, bob.id)


@pytest.fixture
def crm(store: Store) -> Crm:
    return seed(store)


@pytest.fixture
def config() -> TrackingConfig:
    return TrackingConfig()


def track(store: Store, raw: bytes, owner: Owner, *, mailbox: str = "jane-inbox", arrival: str = "router",
          direction: str = "in", config: TrackingConfig | None = None, external_id: str | None = None) -> TrackResult:
    request = TrackRequest(raw=raw, mailbox=mailbox, owner=owner, arrival=arrival,  # type: ignore[arg-type]
                           direction=direction, external_id=external_id)  # type: ignore[arg-type]
    with store.transaction() as s:
        return track_txn(s, request, config or TrackingConfig())


def user(crm_user_id: str) -> Owner:
    return Owner("systemuser", crm_user_id)


def set_option(store: Store, model: type, record_id: str, option: str) -> None:
    with store.transaction() as s:
        s.get(model, record_id).tracking_option = option  # type: ignore[union-attr]


def untracked_reasons(store: Store) -> list[str]:
    with store.transaction() as s:
        return list(s.scalars(select(UntrackedMessage.reason).order_by(UntrackedMessage.id)))


def parties_of(store: Store, activity_id: str) -> list[tuple[int, str | None, str | None, str | None, str | None]]:
    with store.transaction() as s:
        rows = s.execute(
            select(ActivityParty.participationtypemask, ActivityParty.party_type, ActivityParty.party_id,
                   ActivityParty.addressused, ActivityParty.display_name)
            .where(ActivityParty.activity_id == activity_id)
            .order_by(ActivityParty.id)
        )
        return sorted((tuple(r) for r in rows), key=lambda r: (r[0], r[1] or ""))  # type: ignore[misc]


def count(store: Store, model: type) -> int:
    with store.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def message(*headers: str, body: str = "Hello.\r\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")
