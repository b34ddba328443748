"""Who owns tracked mail: a user or queue by name or address, and the user who owns a queue's email.

A queue's email is owned by ``tracking.queue_owner`` when it is set (an active user's name), else by a
System Administrator of the queue's business unit or of the nearest unit above that has one, else by
the longest-standing active user of the queue's unit or of the nearest unit above that has any.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from abook.errors import ConfigError
from abook.store.models import BusinessUnit, Queue, Role, State, SystemUser, user_roles

SYSTEM_ADMINISTRATOR = "System Administrator"


@dataclass(frozen=True)
class OwnerInfo:
    type: str  # systemuser / queue
    id: str
    #: the user who owns the activities tracked for this owner; None: ``no_owner`` says why
    activity_owner_id: str | None
    business_unit_id: str | None
    tracking_option: str
    active: bool
    name: str
    incoming_method: str = "none"
    #: why there is no activity owner (a queue only)
    no_owner: str | None = None


def queue_owner_problem_txn(session: Session, queue_owner: str) -> str | None:
    """What is wrong with ``tracking.queue_owner`` as the store sees it (an unknown or inactive user), or
    None when it names an active user or is empty."""
    if not queue_owner:
        return None
    state = session.scalar(select(SystemUser.statecode).where(func.lower(SystemUser.domainname) == queue_owner.lower())
                           .order_by(SystemUser.statecode))
    if state is None:
        return f"no user named {queue_owner!r} in the store"
    if state != State.active:
        return f"user {queue_owner!r} is inactive"
    return None


def check_queue_owner_txn(session: Session, queue_owner: str, file: str = "") -> None:
    """Raise ConfigError (``tracking.queue_owner: ...``) when the setting names no active user: every queue
    message would be left untracked (``no_owner``). ``abook check-config`` and the daemon's start ask."""
    problem = queue_owner_problem_txn(session, queue_owner)
    if problem is not None:
        raise ConfigError(f"{problem}: it must name an active user, who owns the email tracked from queues",
                          path="tracking.queue_owner", file=file)


def _oldest(session: Session, where: Any) -> SystemUser | None:
    return session.scalars(select(SystemUser).where(where, SystemUser.statecode == State.active)
                           .order_by(SystemUser.createdon, SystemUser.id)).first()


def _units_up(session: Session, bu_id: str | None) -> list[str]:
    """The unit and every unit above it, nearest first (a cycle ends the walk)."""
    units: list[str] = []
    while bu_id and bu_id not in units:
        units.append(bu_id)
        bu_id = session.scalar(select(BusinessUnit.parent_id).where(BusinessUnit.id == bu_id))
    return units


def _queue_default_owner(session: Session, queue: Queue) -> SystemUser | None:
    units = _units_up(session, queue.business_unit_id)
    admins = select(user_roles.c.systemuser_id).join(Role, Role.id == user_roles.c.role_id).where(
        Role.name == SYSTEM_ADMINISTRATOR)
    for bu_id in units:
        admin = _oldest(session, (SystemUser.business_unit_id == bu_id) & SystemUser.id.in_(admins))
        if admin is not None:
            return admin
    for bu_id in units:
        anyone = _oldest(session, SystemUser.business_unit_id == bu_id)
        if anyone is not None:
            return anyone
    return None


def queue_activity_owner_txn(session: Session, queue: Queue, queue_owner: str) -> tuple[SystemUser | None, str | None]:
    """(the user who owns the queue's tracked email, None) or (None, why there is none)."""
    if queue_owner:
        problem = queue_owner_problem_txn(session, queue_owner)
        if problem is not None:
            return None, f"tracking.queue_owner: {problem}"
        return _oldest(session, func.lower(SystemUser.domainname) == queue_owner.lower()), None
    user = _queue_default_owner(session, queue)
    if user is None:
        return None, (f"queue {queue.name}: no active user in its business unit or above to own its email "
                      "(set tracking.queue_owner)")
    return user, None


_USER_T = SystemUser.__table__
_OWNER_USER = select(_USER_T.c.id, _USER_T.c.business_unit_id, _USER_T.c.tracking_option, _USER_T.c.statecode,
                     _USER_T.c.domainname, _USER_T.c.incoming_method).where(_USER_T.c.id == bindparam("id"))


def owner_info_txn(session: Session, owner_type: str, owner_id: str, queue_owner: str = "") -> OwnerInfo | None:
    if owner_type == "systemuser":
        row = session.connection().execute(_OWNER_USER, {"id": owner_id}).first()
        if row is None:
            return None
        return OwnerInfo("systemuser", row.id, row.id, row.business_unit_id, row.tracking_option,
                         row.statecode == State.active, row.domainname, row.incoming_method)
    if owner_type == "queue":
        queue = session.get(Queue, owner_id)
        if queue is None:
            return None
        user, why = queue_activity_owner_txn(session, queue, queue_owner)
        return OwnerInfo("queue", queue.id, user.id if user else None,
                         user.business_unit_id if user else queue.business_unit_id,
                         queue.tracking_option, queue.statecode == State.active, queue.name, queue.incoming_method,
                         why)
    return None


def find_user_txn(session: Session, name_or_email: str) -> str | None:
    """A user id by user name (domainname) or by either email address, case-insensitively."""
    key = name_or_email.strip().lower()
    return session.scalar(
        select(SystemUser.id)
        .where(or_(func.lower(SystemUser.domainname) == key,
                   func.lower(SystemUser.internalemailaddress) == key,
                   func.lower(SystemUser.personalemailaddress) == key))
        .order_by(SystemUser.statecode, SystemUser.createdon)
    )


def find_queue_txn(session: Session, name_or_email: str) -> str | None:
    key = name_or_email.strip().lower()
    return session.scalar(
        select(Queue.id)
        .where(or_(func.lower(Queue.emailaddress) == key, func.lower(Queue.name) == key))
        .order_by(Queue.statecode, Queue.createdon)
    )
