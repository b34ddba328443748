"""Users, business units and roles as an admin manages them (`abook user`, `abook bu`, `abook role`).

Every function is a ``*_txn(session, ...)`` that returns frozen values (``UserInfo``, ``BusinessUnitInfo``,
``RoleInfo``, ``Credentials``), never ORM instances. Names resolve as ``security.user_ids_for_name_txn``
says (id, domainname, internal email; case-insensitive); a name that denotes nothing raises ``NotFound``,
any other mistake ``UserError``: one line an admin can act on.

Passwords arrive here already hashed (``abook/passwords.py``); no function returns a hash except
``credentials_for_name_txn``, whose value hides it from ``repr``. Tracking numbers (SPEC "allocated once
per user") come from the ``next_tracking_number`` row of ``Setting``, in the caller's transaction, and are
never reused or changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import Integer, Text, cast, func, insert, select, update
from sqlalchemy.orm import Session

from abook.errors import NotFound, UserError
from abook.store.models import (
    ADDRESS_BOOK_MATCHING,
    ENTITIES,
    INCOMING_METHODS,
    OUTGOING_METHODS,
    TRACKING_OPTIONS,
    BusinessUnit,
    ReadDepth,
    Role,
    RolePrivilege,
    Setting,
    State,
    SystemUser,
)
from abook.store.security import OWNER_SCOPES, user_ids_for_name_txn

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
class BusinessUnitInfo:
    id: str
    name: str
    parent_id: str | None
    parent: str | None
    #: distance from the root (0 for the organisation itself)
    level: int = 0


@dataclass(frozen=True)
class RoleInfo:
    id: str
    name: str
    #: (entity, depth) for every entity of ``models.ENTITIES``, in that order
    depths: tuple[tuple[str, ReadDepth], ...]


@dataclass(frozen=True)
class Credentials:
    """What a bind needs to check a password. The hash never shows in a repr or a log."""

    user_id: str
    domainname: str
    active: bool
    password_hash: str | None = field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------------------
# Settings: names, allowed values, parsing


def _choice(allowed: Sequence[str]) -> Any:
    def parse(key: str, value: str) -> str:
        if value not in allowed:
            raise UserError(f"bad value {value!r} for {key}: expected one of {', '.join(allowed)}")
        return value

    return parse


def _bool(key: str, value: str) -> bool:
    folded = value.lower()
    if folded in ("yes", "true", "on", "1"):
        return True
    if folded in ("no", "false", "off", "0"):
        return False
    raise UserError(f"bad value {value!r} for {key}: expected yes or no")


def _statecode(key: str, value: str) -> int:
    folded = value.lower()
    if folded in ("active", "0"):
        return int(State.active)
    if folded in ("inactive", "1"):
        return int(State.inactive)
    raise UserError(f"bad value {value!r} for {key}: expected active or inactive")


def _ldap_filter(key: str, value: str) -> str | None:
    value = value.strip()
    if value in ("", "none"):
        return None
    from ldaptor.ldapfilter import InvalidLDAPFilter, parseFilter

    try:
        parseFilter(value)
    except InvalidLDAPFilter:
        raise UserError(f"bad value for {key}: {value!r} is not an RFC 4515 filter such as (mail=*@example.com)") from None
    return value


def _text(key: str, value: str) -> str | None:
    return value.strip() or None


def _email(key: str, value: str) -> str | None:
    value = value.strip()
    if value and ("@" not in value or value.startswith("@") or value.endswith("@") or " " in value):
        raise UserError(f"bad value {value!r} for {key}: expected an email address such as jo@example.com")
    return value or None


#: ``abook user set`` key -> parser of its text value (raising UserError with the allowed values)
SETTINGS: dict[str, Any] = {
    "address_book_matching": _choice(ADDRESS_BOOK_MATCHING),
    "local_filter_scope": _choice(OWNER_SCOPES),
    "local_filter_ldap": _ldap_filter,
    "local_filter_include_inactive": _bool,
    "tracking_option": _choice(TRACKING_OPTIONS),
    "incoming_method": _choice(INCOMING_METHODS),
    "outgoing_method": _choice(OUTGOING_METHODS),
    "statecode": _statecode,
    "firstname": _text,
    "lastname": _text,
    "email": _email,
}
_COLUMNS = {"email": "internalemailaddress"}


def parse_settings(pairs: Iterable[str]) -> dict[str, Any]:
    """``["tracking_option=none", "statecode=inactive"]`` -> ``{"tracking_option": "none", "statecode": 1}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise UserError(f"expected key=value, got {pair!r}")
        if key == "tracking_number":
            raise UserError("tracking_number is allocated once when a user is created and never changes")
        if key not in SETTINGS:
            raise UserError(f"unknown setting {key!r}: expected one of {', '.join(SETTINGS)}")
        out[key] = SETTINGS[key](key, value)
    return out


def parse_depths(pairs: Iterable[str]) -> dict[str, ReadDepth]:
    """``["contact=business_unit", "all=user"]`` -> depth per entity; ``all`` sets every entity."""
    out: dict[str, ReadDepth] = {}
    names = ", ".join(d.name for d in ReadDepth)
    for pair in pairs:
        entity, sep, depth = pair.partition("=")
        entity, depth = entity.strip(), depth.strip()
        if not sep:
            raise UserError(f"expected entity=depth, got {pair!r}")
        if entity != "all" and entity not in ENTITIES:
            raise UserError(f"unknown entity {entity!r}: expected one of all, {', '.join(ENTITIES)}")
        if depth not in ReadDepth.__members__:
            raise UserError(f"unknown read depth {depth!r} for {entity}: expected one of {names}")
        for e in ENTITIES if entity == "all" else (entity,):
            out[e] = ReadDepth[depth]
    return out


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


def _business_unit(session: Session, name: str) -> BusinessUnit:
    unit = session.get(BusinessUnit, name)
    if unit is not None:
        return unit
    found = list(session.scalars(select(BusinessUnit).where(func.lower(BusinessUnit.name) == name.strip().lower())))
    if not found:
        raise NotFound(f"no business unit {name!r}")
    if len(found) > 1:
        raise UserError(f"{len(found)} business units are called {name!r}: name one by its id")
    return found[0]


def _role(session: Session, name: str) -> Role:
    role = session.get(Role, name) or session.scalar(select(Role).where(func.lower(Role.name) == name.strip().lower()))
    if role is None:
        raise NotFound(f"no role {name!r}")
    return role


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
) -> UserInfo:
    """A new active user in ``business_unit`` (name or id) with the next tracking number and no roles."""
    domainname = domainname.strip()
    if not domainname or any(c.isspace() for c in domainname):
        raise UserError(f"bad user name {domainname!r}: expected a login name without spaces")
    if session.scalar(select(SystemUser.id).where(func.lower(SystemUser.domainname) == domainname.lower())):
        raise UserError(f"user {domainname!r} already exists")
    unit = _business_unit(session, business_unit)
    email = _email("email", email or "")
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
        role = _role(session, role_name)
        if role not in user.roles:
            user.roles.append(role)
    for role_name in revoke:
        role = _role(session, role_name)
        if role in user.roles:
            user.roles.remove(role)
    session.flush()
    return _info(session, user)


# ---------------------------------------------------------------------------------------------------------
# Business units and roles


def add_business_unit_txn(session: Session, name: str, parent: str | None = None) -> BusinessUnitInfo:
    """A new unit under ``parent``; without one, the organisation's root (or the root itself, if first)."""
    name = name.strip()
    if not name:
        raise UserError("a business unit needs a name")
    if session.scalar(select(BusinessUnit.id).where(func.lower(BusinessUnit.name) == name.lower())):
        raise UserError(f"business unit {name!r} already exists")
    if parent is not None:
        parent_unit: BusinessUnit | None = _business_unit(session, parent)
    else:
        roots = list(session.scalars(select(BusinessUnit).where(BusinessUnit.parent_id.is_(None)).limit(2)))
        if len(roots) > 1:
            raise UserError("the organisation has several root business units: give --parent")
        parent_unit = roots[0] if roots else None
    unit = BusinessUnit(name=name, parent_id=parent_unit.id if parent_unit else None)
    session.add(unit)
    session.flush()
    return BusinessUnitInfo(unit.id, unit.name, unit.parent_id, parent_unit.name if parent_unit else None)


def list_business_units_txn(session: Session) -> list[BusinessUnitInfo]:
    """Every unit, the tree in depth-first order (children by name), each with its level."""
    units = list(session.execute(select(BusinessUnit.id, BusinessUnit.name, BusinessUnit.parent_id)))
    by_id = {u.id: u for u in units}
    children: dict[str | None, list[Any]] = {}
    for u in units:
        parent = u.parent_id if u.parent_id in by_id else None
        children.setdefault(parent, []).append(u)
    out: list[BusinessUnitInfo] = []
    seen: set[str] = set()

    def walk(parent: str | None, level: int) -> None:
        for u in sorted(children.get(parent, []), key=lambda u: (u.name.lower(), u.id)):
            if u.id in seen:
                continue
            seen.add(u.id)
            parent_name = by_id[u.parent_id].name if u.parent_id in by_id else None
            out.append(BusinessUnitInfo(u.id, u.name, u.parent_id, parent_name, level))
            walk(u.id, level + 1)

    walk(None, 0)
    return out


def _role_info(role: Role) -> RoleInfo:
    granted = {p.entity: ReadDepth(p.read_depth) for p in role.privileges}
    return RoleInfo(role.id, role.name, tuple((e, granted.get(e, ReadDepth.none)) for e in ENTITIES))


def add_role_txn(session: Session, name: str, depths: Mapping[str, ReadDepth]) -> RoleInfo:
    """A new role granting ``depths`` (entities not named get none)."""
    name = name.strip()
    if not name:
        raise UserError("a role needs a name")
    if session.scalar(select(Role.id).where(func.lower(Role.name) == name.lower())):
        raise UserError(f"role {name!r} already exists: change it with `abook role set`")
    role = Role(name=name)
    role.privileges = [RolePrivilege(entity=e, read_depth=int(d)) for e, d in depths.items()]
    session.add(role)
    session.flush()
    return _role_info(role)


def set_role_depths_txn(session: Session, name: str, depths: Mapping[str, ReadDepth]) -> RoleInfo:
    """Change the named entities' depths of an existing role; the others keep theirs."""
    role = _role(session, name)
    current = {p.entity: p for p in role.privileges}
    for entity, depth in depths.items():
        if entity in current:
            current[entity].read_depth = int(depth)
        else:
            role.privileges.append(RolePrivilege(entity=entity, read_depth=int(depth)))
    session.flush()
    return _role_info(role)


def list_roles_txn(session: Session) -> list[RoleInfo]:
    return [_role_info(r) for r in session.scalars(select(Role).order_by(func.lower(Role.name)))]
