"""The CRM side's listing for synchronisation: a user's records with their versions, without values
(``crm_listing_txn``, on the ``db`` pool; the values and writes are ``crm.py``).

Scope (docs/sync.md section 1): contacts in the user's local data filter (owner scope, active unless the
user includes inactive ones, the role's read depth, and the filter's LDAP part when the deployment gives
``ldap_ids``); appointments the user organises or attends (an appointment with no organiser party is
organised by its owner); tasks, faxes, letters and phone calls the user owns. Linked records outside the
scope are listed too, marked ``in_scope=False``, so the planner can tell "left the filter" from "deleted".

A record's version (``etag``) is its ``modifiedon``, with the parent account's for contacts (the company
name comes from it) and, for tasks, whether the actual end has passed (that completes the mailbox task).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Optional

from sqlalchemy import and_, case, exists, false, or_, select
from sqlalchemy.orm import Session

from abook.store.activities import aware
from abook.store.enums import TASK_KINDS, ActivityState
from abook.store.models import Account, Activity, ActivityParty, Contact, ParticipationType
from abook.store.records import Principal
from abook.store.security import load_principal_txn, local_data_filter, readable
from abook.store.sync_links import SyncLink
from abook.sync.model import CrmEntry

#: (session, principal) -> ids of the contacts the user's LDAP local filter matches; None: no LDAP part
LdapIds = Callable[[Session, Principal], Optional[set[str]]]

_ATTENDEE_MASKS = (int(ParticipationType.organiser), int(ParticipationType.required_attendee),
                   int(ParticipationType.optional_attendee))


def stamp(t: datetime | None) -> str:
    """A time as it stands in a version (``etag``); the values side (crm.py) builds the same versions."""
    t = aware(t)
    return t.strftime("%Y%m%d%H%M%S%f") if t is not None else "-"


def crm_listing_txn(session: Session, user_id: str, entity: str, now: datetime,
                    ldap_ids: LdapIds | None = None) -> list[CrmEntry]:
    """Every record in the user's scope and every linked record that still exists, without values."""
    linked = and_(SyncLink.systemuser_id == user_id, SyncLink.entity == entity)
    if entity == "contact":
        return _contacts(session, user_id, linked, ldap_ids)
    if entity == "appointment":
        return _appointments(session, user_id, linked, now)
    if entity == "task":
        return _tasks(session, user_id, linked, now)
    raise ValueError(f"unknown sync entity {entity!r}")


def _contacts(session: Session, user_id: str, linked: Any, ldap_ids: LdapIds | None) -> list[CrmEntry]:
    principal = load_principal_txn(session, user_id)
    scope: Any = false() if principal is None else and_(readable(principal, "contact"), local_data_filter(principal))
    ids: Optional[set[str]] = None
    if principal is not None and principal.local_filter_ldap:
        if ldap_ids is None:
            raise ValueError("this user's local data filter has an LDAP part, and no LDAP filter matcher was given")
        ids = ldap_ids(session, principal) or set()
    link = SyncLink.__table__.alias("l")
    stmt = (select(Contact.id, Contact.modifiedon, Account.modifiedon, Contact.owner_id, case((scope, True), else_=False))
            .outerjoin(Account, Account.id == Contact.parentcustomer_id)
            .outerjoin(link, and_(link.c.crm_id == Contact.id, link.c.systemuser_id == user_id))
            .where(or_(scope, link.c.id.is_not(None))))
    out = []
    for cid, modified, account_modified, owner, in_scope in session.execute(stmt):
        in_scope = bool(in_scope) and (ids is None or cid in ids)
        out.append(CrmEntry(cid, "contact", f"{stamp(modified)}|{stamp(account_modified)}", in_scope,
                            owned=owner == user_id))
    return out


def _party(user_id: str, masks: tuple[int, ...]) -> Any:
    return exists().where(ActivityParty.activity_id == Activity.id, ActivityParty.party_type == "systemuser",
                          ActivityParty.party_id == user_id, ActivityParty.participationtypemask.in_(masks))


def _appointments(session: Session, user_id: str, linked: Any, now: datetime) -> list[CrmEntry]:
    organiser_party = exists().where(ActivityParty.activity_id == Activity.id,
                                     ActivityParty.participationtypemask == int(ParticipationType.organiser))
    owned = or_(_party(user_id, (int(ParticipationType.organiser),)),
                and_(~organiser_party, Activity.owner_id == user_id))
    scope = or_(owned, _party(user_id, _ATTENDEE_MASKS))
    link = SyncLink.__table__.alias("l")
    stmt = (select(Activity.id, Activity.modifiedon, Activity.statecode, Activity.scheduledend, Activity.globalobjectid,
                   case((scope, True), else_=False), case((owned, True), else_=False))
            .outerjoin(link, and_(link.c.crm_id == Activity.id, link.c.systemuser_id == user_id))
            .where(Activity.activitytypecode == "appointment", or_(scope, link.c.id.is_not(None))))
    out = []
    for aid, modified, state, end, uid, in_scope, is_owner in session.execute(stmt):
        end = aware(end)
        open_ = state in (ActivityState.open, ActivityState.scheduled)
        out.append(CrmEntry(aid, "appointment", stamp(modified), bool(in_scope), owned=bool(is_owner),
                            pending=open_ and (end is None or end > now), locked=not open_,
                            uid=uid or default_uid(aid)))
    return out


def _tasks(session: Session, user_id: str, linked: Any, now: datetime) -> list[CrmEntry]:
    link = SyncLink.__table__.alias("l")
    scope = Activity.owner_id == user_id
    stmt = (select(Activity.id, Activity.activitytypecode, Activity.modifiedon, Activity.statecode, Activity.actualend,
                   case((scope, True), else_=False))
            .outerjoin(link, and_(link.c.crm_id == Activity.id, link.c.systemuser_id == user_id))
            .where(Activity.activitytypecode.in_(TASK_KINDS), or_(scope, link.c.id.is_not(None))))
    out = []
    for aid, kind, modified, state, actual_end, in_scope in session.execute(stmt):
        ended = actual_end is not None and aware(actual_end) <= now
        out.append(CrmEntry(aid, kind, f"{stamp(modified)}|{int(ended)}", bool(in_scope), owned=bool(in_scope),
                            pending=state == ActivityState.open))
    return out


def default_uid(activity_id: str) -> str:
    return f"{activity_id}@abook"
