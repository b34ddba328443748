"""CRM users as an admin manages them (`abook user`): creation, passwords, settings, roles.

Every function is a ``*_txn(session, ...)`` that returns frozen values (``UserInfo``, ``Credentials``),
never ORM instances. Names resolve as ``owners.user_ids_for_name_txn`` says (id, domainname, internal
email; case-insensitive); a name that denotes nothing raises ``NotFound``, any other mistake
``UserError``: one line an admin can act on.

Passwords arrive here already hashed (``abook/passwords.py``); no function returns a hash except
``credentials_for_name_txn``, whose value hides it from ``repr``. Tracking numbers (SPEC "allocated once
per user") come from the ``next_tracking_number`` row of ``Setting``, in the caller's transaction, and are
never reused or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sqlalchemy import Integer, Text, cast, func, insert, select, update
from sqlalchemy.orm import Session

from abook.errors import NotFound, UserError
from abook.store.models import BusinessUnit, Setting, State, SystemUser
from abook.store.org import find_business_unit_txn, find_role_txn
from abook.store.owners import user_ids_for_name_txn
from abook.store.settings import SETTINGS, parse_email

_COLUMNS = {"email": "internalemailaddress"}
TRACKING_NUMBER_KEY = "next_tracking_number"


@dataclass(frozen=True)
class UserInfo:
    id: str
    domainname: str
    fullname: str
    firstname: str | None
    lastname: str | None
    email: str | None
    business_unit_id: str
    business_unit: str
    active: bool
    has_password: bool
    tracking_number: int | None
    roles: tuple[str, ...]
    address_book_matching: str
    local_filter_scope: str
    local_filter_ldap: str | None
    local_filter_include_inactive: bool
    tracking_option: str
    incoming_method: str
    outgoing_method: str


@dataclass(frozen=True)
class Credentials:
    """What a bind needs to check a password. The hash never shows in a repr or a log."""

    user_id: str
    domainname: str
    active: bool
    password_hash: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------------------
# Look-ups


def _user(session: Session, name: str) -> SystemUser:
    ids = user_ids_for_name_txn(session, name)
    if not ids:
        raise NotFound(f"no user {name!r}")
    if len(ids) > 1:
        raise UserError(f"{name!r} is the email address of {len(ids)} users: name one by its user name or id")
    user = session.get(SystemUser, ids[0])
    assert user is not None
    return user


def _info(session: Session, user: SystemUser) -> UserInfo:
    unit = session.get(BusinessUnit, user.business_unit_id)
    return UserInfo(
        id=user.id,
        domainname=user.domainname,
        fullname=user.fullname or user.domainname,
        firstname=user.firstname,
        lastname=user.lastname,
        email=user.internalemailaddress,
        business_unit_id=user.business_unit_id,
        business_unit=unit.name if unit is not None else user.business_unit_id,
        active=user.statecode == State.active,
        has_password=bool(user.password_hash),
        tracking_number=user.tracking_number,
        roles=tuple(sorted(r.name for r in user.roles)),
        address_book_matching=user.address_book_matching,
        local_filter_scope=user.local_filter_scope,
        local_filter_ldap=user.local_filter_ldap,
        local_filter_include_inactive=bool(user.local_filter_include_inactive),
        tracking_option=user.tracking_option,
        incoming_method=user.incoming_method,
        outgoing_method=user.outgoing_method,
    )


def user_info_txn(session: Session, name: str) -> UserInfo:
    return _info(session, _user(session, name))


def list_users_txn(session: Session) -> list[UserInfo]:
    users = session.scalars(select(SystemUser).order_by(func.lower(SystemUser.domainname)))
    return [_info(session, u) for u in users]


def credentials_for_name_txn(session: Session, name: str) -> Credentials | None:
    """For a bind: the user ``name`` denotes, whether active, and their hash; None if unknown or ambiguous."""
    ids = user_ids_for_name_txn(session, name)
    if len(ids) != 1:
        return None
    user = session.get(SystemUser, ids[0])
    assert user is not None
    return Credentials(user.id, user.domainname, user.statecode == State.active, user.password_hash)


# ---------------------------------------------------------------------------------------------------------
# Tracking numbers


def allocate_tracking_number_txn(session: Session) -> int:
    """The next free tracking number, taken for good in the caller's transaction.

    The counter row is bumped by one UPDATE first, which takes the row lock (PostgreSQL) or the write lock
    (SQLite) before anything is read, so concurrent allocations queue instead of sharing a number. Numbers
    already held (users imported with their own) are skipped, and a number is never handed out twice,
    even after its user is deleted.
    """
    key = TRACKING_NUMBER_KEY
    held = session.scalar(select(func.max(SystemUser.tracking_number))) or 0
    if session.get(Setting, key) is None:
        _insert_ignoring_conflict(session, key, str(held + 1))
    while True:
        bumped = session.execute(
            update(Setting)
            .where(Setting.key == key)
            .values(value=cast(cast(Setting.value, Integer) + 1, Text))
            .returning(Setting.value)
            .execution_options(synchronize_session=False)
        ).scalar_one()
        number = int(bumped) - 1
        if number > 0 and session.scalar(select(SystemUser.id).where(SystemUser.tracking_number == number)) is None:
            return number


def _insert_ignoring_conflict(session: Session, key: str, value: str) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(Setting).values(key=key, value=value).on_conflict_do_nothing(index_elements=["key"]))
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(
            sqlite_insert(Setting).values(key=key, value=value).on_conflict_do_nothing(index_elements=["key"])
        )
    else:  # pragma: no cover - abook runs on SQLite and PostgreSQL
        session.execute(insert(Setting).values(key=key, value=value))


def ensure_tracking_number_txn(session: Session, user_id: str) -> int:
    """The user's tracking number, allocating one now for a user created without (an import)."""
    user = session.get(SystemUser, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    if user.tracking_number is None:
        user.tracking_number = allocate_tracking_number_txn(session)
        session.flush()
    return user.tracking_number


# ---------------------------------------------------------------------------------------------------------
# Users


def _fullname(first: str | None, last: str | None, fallback: str) -> str:
    return " ".join(p for p in (first, last) if p) or fallback


def _check_email_free(session: Session, email: str | None, user_id: str | None = None) -> None:
    if not email:
        return
    holder = session.scalar(
        select(SystemUser.domainname).where(
            func.lower(SystemUser.internalemailaddress) == email.lower(), SystemUser.id != (user_id or "")
        )
    )
    if holder is not None:
        raise UserError(f"{email} is already the email address of user {holder!r}")


def create_user_txn(
    session: Session,
    domainname: str,
    business_unit: str,
    *,
    firstname: str | None = None,
    lastname: str | None = None,
    email: str | None = None,
    password_hash: str | None = None,
    roles: Iterable[str] = (),
) -> UserInfo:
    """A new active user in ``business_unit`` (name or id) with the next tracking number and ``roles``."""
    domainname = domainname.strip()
    if not domainname or any(c.isspace() for c in domainname):
        raise UserError(f"bad user name {domainname!r}: expected a login name without spaces")
    if session.scalar(select(SystemUser.id).where(func.lower(SystemUser.domainname) == domainname.lower())):
        raise UserError(f"user {domainname!r} already exists")
    unit = find_business_unit_txn(session, business_unit)
    email = parse_email("email", email or "")
    _check_email_free(session, email)
    user = SystemUser(
        domainname=domainname,
        firstname=firstname or None,
        lastname=lastname or None,
        fullname=_fullname(firstname, lastname, domainname),
        internalemailaddress=email,
        business_unit_id=unit.id,
        password_hash=password_hash,
        tracking_number=allocate_tracking_number_txn(session),
        statecode=State.active,
    )
    granted = [find_role_txn(session, name) for name in roles]
    user.roles = list({role.id: role for role in granted}.values())
    session.add(user)
    session.flush()
    return _info(session, user)


def set_password_hash_txn(session: Session, name: str, password_hash: str) -> None:
    _user(session, name).password_hash = password_hash


def update_settings_txn(session: Session, name: str, settings: Mapping[str, Any]) -> UserInfo:
    """Apply settings already checked by ``parse_settings``."""
    user = _user(session, name)
    for key, value in settings.items():
        if key not in SETTINGS:
            raise UserError(f"unknown setting {key!r}")
        if key == "email":
            _check_email_free(session, value, user.id)
        setattr(user, _COLUMNS.get(key, key), value)
    if {"firstname", "lastname"} & set(settings):
        user.fullname = _fullname(user.firstname, user.lastname, user.domainname)
    session.flush()
    return _info(session, user)


def change_roles_txn(session: Session, name: str, grant: Iterable[str] = (), revoke: Iterable[str] = ()) -> UserInfo:
    user = _user(session, name)
    for role_name in grant:
        role = find_role_txn(session, role_name)
        if role not in user.roles:
            user.roles.append(role)
    for role_name in revoke:
        role = find_role_txn(session, role_name)
        if role in user.roles:
            user.roles.remove(role)
    session.flush()
    return _info(session, user)




#: what ``new_user_default`` answers for a column a new user gets no fixed value for
NO_DEFAULT = object()


def new_user_default(column: str) -> Any:
    """The value a new user is created with in ``column`` (the mapping's scalar default), or NO_DEFAULT."""
    col = SystemUser.__table__.c.get(column)
    if col is None or col.default is None or not col.default.is_scalar:
        return NO_DEFAULT
    return col.default.arg


@dataclass(frozen=True)
class BindCandidate:
    """What a bind checks of the user a bind name denotes (``directory/auth.py``)."""

    user_id: str
    domainname: str
    mail: str
    password_hash: str | None = field(repr=False)
    active: bool


def bind_candidate_txn(session: Session, user_id: str) -> BindCandidate:
    r = session.execute(
        select(SystemUser.id, SystemUser.domainname, SystemUser.internalemailaddress, SystemUser.password_hash,
               SystemUser.statecode).where(SystemUser.id == user_id)
    ).one()
    return BindCandidate(r.id, r.domainname or "", r.internalemailaddress or "", r.password_hash,
                         r.statecode == State.active)


# ---------------------------------------------------------------------------------------------------------
# Who takes part in contact, appointment and task synchronisation


@dataclass(frozen=True)
class SyncUser:
    id: str
    name: str
    email: str | None


def sync_users_txn(session: Session, name: str | None = None) -> list[SyncUser]:
    """Active users with sync enabled (or the one named, enabled or not)."""
    stmt = select(SystemUser.id, SystemUser.domainname, SystemUser.internalemailaddress)
    if name is not None:
        ids = user_ids_for_name_txn(session, name)
        if len(ids) != 1:
            raise NotFound(f"no user {name!r}") if not ids else UserError(f"{name!r} names {len(ids)} users")
        stmt = stmt.where(SystemUser.id == ids[0])
    else:
        stmt = stmt.where(SystemUser.sync_enabled.is_(True), SystemUser.statecode == State.active)
    return [SyncUser(i, n, e) for i, n, e in session.execute(stmt.order_by(SystemUser.domainname))]
