"""Which user or queue a name or address means, one function per rule, and the user who owns a queue's email.

The rules (every comparison of a name or address is case-insensitive unless it says otherwise):

* ``user_ids_for_name_txn``: an admin's or a bind's name for a user: its id, else its user name, else its
  internal email address (all users holding that address; more than one is ambiguous and refused);
* ``user_ids_for_id_txn``: a user id as written in a DN (any case);
* ``user_for_name_or_email_txn``: ``abook track --user``: user name or either email address, active and
  oldest first;
* ``queue_for_name_or_email_txn``: ``abook track --queue``: a queue's email address or name, active and oldest
  first; ``queue_for_name_txn``: ``abook queue``: id, else name, else email address, refusing two matches;
* ``owner_for_config_txn``: a ``[[mailboxes]] owner``: a user name, or ``queue:<address>``;
* ``owner_for_address_txn``: the forward mailbox: the first of the wrapper's addresses that is an active
  user's internal or personal address or an active queue's address;
* ``forward_rule_targets_txn``: ``abook deploy-rule``: a user name or a queue's address or name, compared
  exactly as typed, or every active user and queue whose incoming method is ``forward``;
* ``router_owners_txn`` / ``router_owner_names_txn``: the active users and queues whose incoming method
  is ``router`` (with an address, for derived mailboxes; all of them, for ``abook status``);
* ``mail_setting_txn``: the name and incoming method of a known owner.

A queue's email is owned by ``tracking.queue_owner`` when it is set (an active user's name), else by a
System Administrator of the queue's business unit or of the nearest unit above that has one, else by
the longest-standing active user of the queue's unit or of the nearest unit above that has any.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.orm import Session

from abook.errors import ConfigError, NotFound, UserError
from abook.store.models import BusinessUnit, Queue, Role, State, SystemUser, user_roles
from abook.store.records import Owner

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


# ---------------------------------------------------------------------------------------------------------
# Names and addresses


def user_ids_for_name_txn(session: Session, name: str) -> list[str]:
    """The ids of the users ``name`` denotes: their id, else domainname, else internal email.

    Domain names and email addresses compare case-insensitively. More than one id means the name is
    ambiguous (two users share an email address); callers refuse it rather than pick one.
    """
    name = name.strip()
    if not name:
        return []
    by_id = session.scalar(select(SystemUser.id).where(SystemUser.id == name))
    if by_id is not None:
        return [by_id]
    folded = name.lower()
    by_login = session.scalar(select(SystemUser.id).where(func.lower(SystemUser.domainname) == folded))
    if by_login is not None:
        return [by_login]
    return list(
        session.scalars(
            select(SystemUser.id).where(func.lower(SystemUser.internalemailaddress) == folded).order_by(SystemUser.id)
        )
    )


def user_ids_for_id_txn(session: Session, user_id: str) -> list[str]:
    """The users whose id is ``user_id`` in any case (a DN's RDN value)."""
    return list(session.scalars(select(SystemUser.id).where(func.lower(SystemUser.id) == user_id.lower())))


def user_for_name_or_email_txn(session: Session, name_or_email: str) -> str | None:
    """A user id by user name (domainname) or by either email address, case-insensitively."""
    key = name_or_email.strip().lower()
    return session.scalar(
        select(SystemUser.id)
        .where(or_(func.lower(SystemUser.domainname) == key,
                   func.lower(SystemUser.internalemailaddress) == key,
                   func.lower(SystemUser.personalemailaddress) == key))
        .order_by(SystemUser.statecode, SystemUser.createdon)
    )


def queue_for_name_or_email_txn(session: Session, name_or_email: str) -> str | None:
    """A queue id by email address or name, case-insensitively."""
    key = name_or_email.strip().lower()
    return session.scalar(
        select(Queue.id)
        .where(or_(func.lower(Queue.emailaddress) == key, func.lower(Queue.name) == key))
        .order_by(Queue.statecode, Queue.createdon)
    )


def queue_for_name_txn(session: Session, name: str) -> Queue:
    """A queue by id, name or email address (case-insensitive); NotFound, or UserError when two match."""
    queue = session.get(Queue, name)
    if queue is not None:
        return queue
    folded = name.strip().lower()
    for column in (Queue.name, Queue.emailaddress):
        found = list(session.scalars(select(Queue).where(func.lower(column) == folded).limit(2)))
        if len(found) > 1:
            raise UserError(f"several queues match {name!r}: name one by its id")
        if found:
            return found[0]
    raise NotFound(f"no queue {name!r}")


def owner_for_config_txn(session: Session, owner: str) -> Owner | None:
    """A config owner (a user name, or ``queue:<address>``) as the store knows it; None if unknown."""
    if owner.startswith("queue:"):
        address = owner[len("queue:"):].lower()
        qid = session.scalars(select(Queue.id).where(func.lower(Queue.emailaddress) == address)).first()
        return Owner("queue", qid) if qid else None
    uid = session.scalars(select(SystemUser.id).where(func.lower(SystemUser.domainname) == owner.lower())).first()
    return Owner("systemuser", uid) if uid else None


def owner_for_address_txn(session: Session, addresses: tuple[str, ...]) -> Owner | None:
    """The first of ``addresses`` (lower-cased) that is an active user's internal or personal address, or an
    active queue's address; a user wins over a queue for one address."""
    for address in addresses:
        uid = session.scalars(select(SystemUser.id).where(
            SystemUser.statecode == State.active,
            or_(func.lower(SystemUser.internalemailaddress) == address,
                func.lower(SystemUser.personalemailaddress) == address))).first()
        if uid:
            return Owner("systemuser", uid)
        qid = session.scalars(select(Queue.id).where(
            Queue.statecode == State.active, func.lower(Queue.emailaddress) == address)).first()
        if qid:
            return Owner("queue", qid)
    return None


def forward_rule_targets_txn(session: Session, user: str | None, queue: str | None) -> list[str]:
    """The addresses a forwarding rule is deployed for: the user (by user name) or the queue (by address or
    name), both as typed; with neither, every active user and queue whose incoming method is ``forward``."""
    if user is not None:
        u = session.scalars(select(SystemUser).where(SystemUser.domainname == user)).first()
        if u is None or not u.internalemailaddress:
            raise NotFound(f"no user {user!r} with an email address")
        return [u.internalemailaddress]
    if queue is not None:
        q = session.scalars(select(Queue).where((Queue.emailaddress == queue) | (Queue.name == queue))).first()
        if q is None or not q.emailaddress:
            raise NotFound(f"no queue {queue!r} with an email address")
        return [q.emailaddress]
    users = session.scalars(select(SystemUser.internalemailaddress).where(
        SystemUser.incoming_method == "forward", SystemUser.statecode == State.active,
        SystemUser.internalemailaddress.is_not(None)).order_by(SystemUser.domainname)).all()
    queues = session.scalars(select(Queue.emailaddress).where(
        Queue.incoming_method == "forward", Queue.statecode == State.active,
        Queue.emailaddress.is_not(None)).order_by(Queue.emailaddress)).all()
    return [a for a in list(users) + list(queues) if a]


@dataclass(frozen=True)
class RouterOwner:
    """A user or queue whose incoming method is ``router``: the store's side of a derived mailbox."""

    user: str  # user name, or "queue:<address>"
    email: str
    id: str = ""  # the user's or queue's GUID


def router_owners_txn(session: Session) -> tuple[RouterOwner, ...]:
    """The active users and queues with incoming method router and an email address."""
    users = session.execute(select(SystemUser.domainname, SystemUser.internalemailaddress, SystemUser.id)
                            .where(SystemUser.incoming_method == "router", SystemUser.statecode == State.active,
                                   SystemUser.internalemailaddress.is_not(None))
                            .order_by(SystemUser.domainname))
    queues = session.execute(select(Queue.emailaddress, Queue.id)
                             .where(Queue.incoming_method == "router", Queue.statecode == State.active,
                                    Queue.emailaddress.is_not(None))
                             .order_by(Queue.emailaddress))
    return tuple([RouterOwner(u.domainname, u.internalemailaddress, u.id) for u in users]
                 + [RouterOwner(f"queue:{q.emailaddress}", q.emailaddress, q.id) for q in queues])


def router_owner_names_txn(session: Session) -> list[tuple[str, str | None]]:
    """(owner as a [[mailboxes]] table writes it, email address or None) of every active user and queue with
    incoming method router, with or without an address; a queue without one is ``queue:<name>``."""
    owners: list[tuple[str, str | None]] = [
        (name, email) for name, email in session.execute(
            select(SystemUser.domainname, SystemUser.internalemailaddress)
            .where(SystemUser.incoming_method == "router", SystemUser.statecode == State.active)
            .order_by(SystemUser.domainname))]
    owners += [(f"queue:{email or name}", email) for name, email in session.execute(
        select(Queue.name, Queue.emailaddress)
        .where(Queue.incoming_method == "router", Queue.statecode == State.active).order_by(Queue.name))]
    return owners


def mail_setting_txn(session: Session, owner: Owner) -> tuple[str, str]:
    """(name, incoming method) of a known user or queue: a user's user name, a queue's name."""
    if owner.type == "queue":
        name, method = session.execute(select(Queue.name, Queue.incoming_method).where(Queue.id == owner.id)).one()
    else:
        name, method = session.execute(
            select(SystemUser.domainname, SystemUser.incoming_method).where(SystemUser.id == owner.id)).one()
    return name, method
