"""Who may read what: the SQL predicate selecting exactly the records a user may read.

SPEC section 1, "Security": business units form a tree and every user belongs to one; a role grants, per
entity, a read depth (none, user, business unit, parent-child business units, organisation); a user's
effective depth is the widest over their roles; for business-unit-owned entities (queue, systemuser,
equipment) "user" depth means the user's own unit; inactive users have no principal at all.

* ``load_principal_txn(session, user_id)`` / ``principal_for_name_txn(session, name)`` build the frozen
  ``Principal`` (effective depths, business-unit subtree, address-book settings) once per bind;
* ``readable(principal, entity)`` is a SQLAlchemy boolean expression over ``models.ENTITY_MODELS[entity]``
  for use in any ``select()``; ``listed`` adds what an address book needs (active, has a primary email);
* ``owner_scope(principal, entity, scope)`` is the owner part of a local data filter (SPEC "Per-user
  settings"), and ``local_data_filter(principal)`` the whole of it except the LDAP filter over contact
  attributes, which the directory compiles.

Every value reaches SQL as a bound parameter.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from sqlalchemy import ColumnElement, Select, and_, false, func, select, true
from sqlalchemy.orm import Session

from abook.store.models import (
    BU_OWNED,
    EMAIL_FIELDS,
    ENTITIES,
    ENTITY_MODELS,
    BusinessUnit,
    ReadDepth,
    Role,
    RolePrivilege,
    State,
    SystemUser,
    user_roles,
)
from abook.store.owners import user_ids_for_name_txn  # noqa: F401 (named here before owners.py)
from abook.store.records import Principal

#: the owner scopes a local data filter may name (``ReadDepth`` names wider than none)
OWNER_SCOPES = ("user", "business_unit", "parent_child", "organisation")

#: a parent-child subtree larger than this is matched by a recursive subquery instead of bound ids
MAX_BOUND_SUBTREE = 200


class FrozenDepths(Mapping[str, ReadDepth]):
    """A read-only, hashable depth per entity, so a ``Principal`` is a true frozen value (a cache key)."""

    __slots__ = ("_depths",)

    def __init__(self, depths: Mapping[str, ReadDepth]) -> None:
        self._depths = dict(depths)

    def __getitem__(self, entity: str) -> ReadDepth:
        return self._depths[entity]

    def __iter__(self) -> Iterator[str]:
        return iter(self._depths)

    def __len__(self) -> int:
        return len(self._depths)

    def __hash__(self) -> int:
        return hash(frozenset(self._depths.items()))

    def __repr__(self) -> str:
        return "FrozenDepths({" + ", ".join(f"{e!r}: {d.name}" for e, d in self._depths.items()) + "})"


def subtree_select(business_unit_id: str) -> Select[Any]:
    """``SELECT id`` of a business unit and every unit below it (a recursive CTE; stops on cycles)."""
    bu = BusinessUnit.__table__
    tree = select(bu.c.id).where(bu.c.id == business_unit_id).cte("bu_subtree", recursive=True)
    # UNION (not UNION ALL) drops rows already found, so a corrupt parent cycle cannot loop forever.
    tree = tree.union(select(bu.c.id).where(bu.c.parent_id == tree.c.id))
    return select(tree.c.id)


def business_unit_subtree_txn(session: Session, business_unit_id: str) -> frozenset[str]:
    return frozenset(session.scalars(subtree_select(business_unit_id)))


def effective_depths_txn(session: Session, user_id: str) -> dict[str, ReadDepth]:
    """Per entity of ``models.ENTITIES``, the widest read depth over all of the user's roles."""
    rows = session.execute(
        select(RolePrivilege.entity, func.max(RolePrivilege.read_depth))
        .join(user_roles, user_roles.c.role_id == RolePrivilege.role_id)
        .where(user_roles.c.systemuser_id == user_id)
        .group_by(RolePrivilege.entity)
    )
    widest = {entity: ReadDepth(depth) for entity, depth in rows if entity in ENTITIES and depth is not None}
    return {entity: widest.get(entity, ReadDepth.none) for entity in ENTITIES}


def load_principal_txn(session: Session, user_id: str) -> Principal | None:
    """The principal for an active user, or None for an unknown or inactive one."""
    # Columns, not the entity: loading a SystemUser would also load its roles and their privileges.
    user = session.execute(
        select(
            SystemUser.id,
            SystemUser.business_unit_id,
            SystemUser.statecode,
            SystemUser.domainname,
            SystemUser.address_book_matching,
            SystemUser.local_filter_scope,
            SystemUser.local_filter_ldap,
            SystemUser.local_filter_include_inactive,
        ).where(SystemUser.id == user_id)
    ).one_or_none()
    if user is None or user.statecode != State.active:
        return None
    role_names = session.scalars(
        select(Role.name)
        .join(user_roles, user_roles.c.role_id == Role.id)
        .where(user_roles.c.systemuser_id == user_id)
        .order_by(Role.name)
    )
    return Principal(
        user_id=user.id,
        business_unit_id=user.business_unit_id,
        depths=FrozenDepths(effective_depths_txn(session, user.id)),
        bu_subtree=business_unit_subtree_txn(session, user.business_unit_id),
        address_book_matching=user.address_book_matching or "synchronised",
        local_filter_scope=user.local_filter_scope or "user",
        local_filter_ldap=user.local_filter_ldap or None,
        local_filter_include_inactive=bool(user.local_filter_include_inactive),
        domainname=user.domainname,
        roles=tuple(role_names),
    )


def principal_for_name_txn(session: Session, name: str) -> Principal | None:
    """The principal for a user named by id, domainname or internal email; None if unknown, ambiguous
    or inactive."""
    ids = user_ids_for_name_txn(session, name)
    if len(ids) != 1:
        return None
    return load_principal_txn(session, ids[0])


def _owner_bu_column(entity: str) -> Any:
    model = ENTITY_MODELS[entity]
    return model.business_unit_id if entity in BU_OWNED else model.owningbusinessunit_id  # type: ignore[attr-defined]


def _in_subtree(principal: Principal, column: Any) -> ColumnElement[bool]:
    subtree = principal.bu_subtree or frozenset({principal.business_unit_id})
    if len(subtree) > MAX_BOUND_SUBTREE:
        return column.in_(subtree_select(principal.business_unit_id))
    return column.in_(sorted(subtree))


def within_depth(principal: Principal, entity: str, depth: ReadDepth) -> ColumnElement[bool]:
    """The records of ``entity`` that lie within ``depth`` of the principal, whatever their roles say."""
    if entity not in ENTITY_MODELS:
        raise ValueError(f"unknown entity {entity!r}")
    if depth == ReadDepth.none:
        return false()
    if depth == ReadDepth.organisation:
        return true()
    bu_column = _owner_bu_column(entity)
    if depth == ReadDepth.user:
        if entity in BU_OWNED:  # owned by a unit: "user" depth means the user's own unit
            return bu_column == principal.business_unit_id
        return ENTITY_MODELS[entity].owner_id == principal.user_id  # type: ignore[attr-defined, no-any-return]
    if depth == ReadDepth.business_unit:
        return bu_column == principal.business_unit_id  # type: ignore[no-any-return]
    return _in_subtree(principal, bu_column)


def readable(principal: Principal, entity: str) -> ColumnElement[bool]:
    """The records of ``entity`` the principal may read (their effective read depth)."""
    return within_depth(principal, entity, principal.depth(entity))


def has_primary_email(entity: str) -> ColumnElement[bool]:
    primary = getattr(ENTITY_MODELS[entity], EMAIL_FIELDS[entity][0])
    return and_(primary.is_not(None), primary != "")


def listed(principal: Principal, entity: str) -> ColumnElement[bool]:
    """What an address book may show: readable, active, and with a non-empty primary email."""
    if principal.depth(entity) == ReadDepth.none:
        return false()
    model = ENTITY_MODELS[entity]
    return and_(readable(principal, entity), model.statecode == State.active, has_primary_email(entity))  # type: ignore[attr-defined]


def owner_scope(principal: Principal, entity: str, scope: str) -> ColumnElement[bool]:
    """The records of ``entity`` whose owner lies within ``scope`` of the principal.

    ``scope`` is one of ``OWNER_SCOPES``. This is ownership only: it does not consult the user's roles,
    so callers AND it with ``readable``/``listed`` (a filter may narrow what a user sees, never widen it).
    """
    if scope not in OWNER_SCOPES:
        raise ValueError(f"unknown owner scope {scope!r}: expected one of {', '.join(OWNER_SCOPES)}")
    return within_depth(principal, entity, ReadDepth[scope])


def local_data_filter(principal: Principal) -> ColumnElement[bool]:
    """The contacts that synchronise to the principal's mailbox, except for ``local_filter_ldap``.

    Default (SPEC): active contacts the user owns. The directory ANDs the compiled LDAP part (if any).
    """
    scope = owner_scope(principal, "contact", principal.local_filter_scope)
    if principal.local_filter_include_inactive:
        return scope
    return and_(scope, ENTITY_MODELS["contact"].statecode == State.active)  # type: ignore[attr-defined]


__all__ = [
    "FrozenDepths",
    "OWNER_SCOPES",
    "business_unit_subtree_txn",
    "effective_depths_txn",
    "has_primary_email",
    "listed",
    "load_principal_txn",
    "local_data_filter",
    "owner_scope",
    "principal_for_name_txn",
    "readable",
    "subtree_select",
    "user_ids_for_name_txn",
    "within_depth",
]
