"""Who may read what: the SQL predicate selecting exactly the records a user may read.

TEMPORARY version on the ``directory`` branch, written against the signatures the security work
provides (``readable``, ``listed``, ``owner_scope``, ``load_principal_txn``); replaced by theirs on merge.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, select, true
from sqlalchemy.orm import Session

from abook.store.models import (
    BU_OWNED,
    EMAIL_FIELDS,
    ENTITIES,
    ENTITY_MODELS,
    BusinessUnit,
    ReadDepth,
    State,
    SystemUser,
)
from abook.store.records import Principal


def load_principal_txn(session: Session, user_id: str) -> Principal | None:
    """The principal for an active user, or None for an unknown or inactive one."""
    user = session.get(SystemUser, user_id)
    if user is None or user.statecode != State.active:
        return None
    depths = {e: ReadDepth.none for e in ENTITIES}
    for role in user.roles:
        for p in role.privileges:
            if p.entity in depths and p.read_depth > depths[p.entity]:
                depths[p.entity] = ReadDepth(p.read_depth)
    children: dict[str | None, list[str]] = {}
    for bu_id, parent in session.execute(select(BusinessUnit.id, BusinessUnit.parent_id)):
        children.setdefault(parent, []).append(bu_id)
    subtree, todo = set(), [user.business_unit_id]
    while todo:
        bu = todo.pop()
        if bu not in subtree:
            subtree.add(bu)
            todo.extend(children.get(bu, ()))
    return Principal(
        user_id=user.id,
        business_unit_id=user.business_unit_id,
        depths=depths,
        bu_subtree=frozenset(subtree),
        address_book_matching=user.address_book_matching,
        local_filter_scope=user.local_filter_scope,
        local_filter_ldap=user.local_filter_ldap,
        local_filter_include_inactive=bool(user.local_filter_include_inactive),
        domainname=user.domainname,
        roles=tuple(r.name for r in user.roles),
    )


def _columns(entity: str) -> tuple:
    model = ENTITY_MODELS[entity]
    if entity in BU_OWNED:
        return None, model.business_unit_id  # type: ignore[attr-defined]
    return model.owner_id, model.owningbusinessunit_id  # type: ignore[attr-defined]


def _scope(principal: Principal, entity: str, depth: ReadDepth) -> ColumnElement[bool]:
    owner, bu = _columns(entity)
    if depth == ReadDepth.none:
        return false()
    if depth == ReadDepth.user and owner is not None:
        return owner == principal.user_id
    if depth in (ReadDepth.user, ReadDepth.business_unit):
        return bu == principal.business_unit_id
    if depth == ReadDepth.parent_child:
        return bu.in_(sorted(principal.bu_subtree))
    return true()


def readable(principal: Principal, entity: str) -> ColumnElement[bool]:
    return _scope(principal, entity, principal.depth(entity))


def listed(principal: Principal, entity: str) -> ColumnElement[bool]:
    """Readable, active and with a primary email: what an address book may show."""
    model = ENTITY_MODELS[entity]
    primary = getattr(model, EMAIL_FIELDS[entity][0])
    return and_(readable(principal, entity), model.statecode == State.active,  # type: ignore[attr-defined]
                primary.is_not(None), primary != "")


_SCOPES = {"user": ReadDepth.user, "business_unit": ReadDepth.business_unit,
           "parent_child": ReadDepth.parent_child, "organisation": ReadDepth.organisation}


def owner_scope(principal: Principal, entity: str, scope: str) -> ColumnElement[bool]:
    """Records owned within ``scope`` (a local data filter's owner scope) of the principal."""
    return _scope(principal, entity, _SCOPES.get(scope, ReadDepth.user))
