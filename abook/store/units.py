"""Reshaping the business-unit tree (`abook bu rename|move|delete`): the repairs an admin needs after the
first units went in the wrong place.

The tree keeps one root, the organisation. A move never makes a cycle (a unit cannot go under itself or a
unit below it); ``make_root_txn`` puts a unit at the top and the old root under it, which is how a unit
added under the wrong root becomes the organisation. Deleting a unit moves everything it holds (units
below it, users, queues, facilities, roles, the owning unit of records and activities) to a named unit
first; the root is never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from abook.errors import UserError
from abook.store.models import (
    Account, Activity, BusinessUnit, Contact, Equipment, Lead, Queue, Role, SystemUser, utcnow,
)
from abook.store.org import BusinessUnitInfo, find_business_unit_txn

#: (model, column, what an admin calls one row, and several) for everything that names a business unit
HOLDERS = (
    (BusinessUnit, BusinessUnit.parent_id, "unit below it", "units below it"),
    (SystemUser, SystemUser.business_unit_id, "user", "users"),
    (Queue, Queue.business_unit_id, "queue", "queues"),
    (Equipment, Equipment.business_unit_id, "facility", "facilities"),
    (Account, Account.owningbusinessunit_id, "account", "accounts"),
    (Contact, Contact.owningbusinessunit_id, "contact", "contacts"),
    (Lead, Lead.owningbusinessunit_id, "lead", "leads"),
    (Activity, Activity.owningbusinessunit_id, "activity", "activities"),
    (Role, Role.business_unit_id, "role", "roles"),
)


@dataclass(frozen=True)
class Deleted:
    name: str
    #: (what, how many) moved to ``to``, only the kinds that were there (``what`` agrees with the number)
    moved: tuple[tuple[str, int], ...]
    to: str | None


def _info(session: Session, unit: BusinessUnit) -> BusinessUnitInfo:
    parent = session.get(BusinessUnit, unit.parent_id) if unit.parent_id else None
    return BusinessUnitInfo(unit.id, unit.name, unit.parent_id, parent.name if parent else None)


def _below(session: Session, unit_id: str) -> set[str]:
    """The ids of ``unit_id`` and every unit under it."""
    children: dict[str | None, list[str]] = {}
    for uid, parent in session.execute(select(BusinessUnit.id, BusinessUnit.parent_id)):
        children.setdefault(parent, []).append(uid)
    found, todo = set(), [unit_id]
    while todo:
        uid = todo.pop()
        if uid not in found:
            found.add(uid)
            todo.extend(children.get(uid, ()))
    return found


def rename_business_unit_txn(session: Session, name: str, new_name: str) -> tuple[str, BusinessUnitInfo]:
    """Rename a unit; returns its old name and the renamed unit."""
    unit = find_business_unit_txn(session, name)
    old_name = unit.name
    new_name = new_name.strip()
    if not new_name:
        raise UserError("a business unit needs a name")
    taken = session.scalar(select(BusinessUnit.name).where(func.lower(BusinessUnit.name) == new_name.lower(),
                                                           BusinessUnit.id != unit.id))
    if taken is not None:
        raise UserError(f"business unit {taken!r} already exists")
    unit.name = new_name
    session.flush()
    return old_name, _info(session, unit)


def move_business_unit_txn(session: Session, name: str, parent: str) -> BusinessUnitInfo:
    """Put ``name`` (and everything below it) under ``parent``."""
    unit = find_business_unit_txn(session, name)
    target = find_business_unit_txn(session, parent)
    if target.id in _below(session, unit.id):
        where = "itself" if target.id == unit.id else f"{target.name}, which is below it"
        raise UserError(f"cannot move {unit.name} under {where}: the tree would loop")
    if unit.parent_id is None:
        raise UserError(f"{unit.name} is the organisation's root: make another unit the root first "
                        f"(`abook bu move OTHER --root`)")
    unit.parent_id = target.id
    session.flush()
    return _info(session, unit)


def make_root_txn(session: Session, name: str) -> tuple[BusinessUnitInfo, tuple[str, ...]]:
    """Make ``name`` the organisation's root; the old root (every other root) goes under it.
    Returns the unit and the names of the units that went under it."""
    unit = find_business_unit_txn(session, name)
    if unit.parent_id is None:
        raise UserError(f"{unit.name} is already a root business unit")
    roots = list(session.scalars(select(BusinessUnit).where(BusinessUnit.parent_id.is_(None),
                                                            BusinessUnit.id != unit.id)))
    unit.parent_id = None
    session.flush()
    for root in roots:
        root.parent_id = unit.id
    session.flush()
    return _info(session, unit), tuple(r.name for r in roots)


def delete_business_unit_txn(session: Session, name: str, to: str | None) -> Deleted:
    """Delete ``name`` after moving what it holds to ``to`` (required when it holds anything)."""
    unit = find_business_unit_txn(session, name)
    if unit.parent_id is None:
        raise UserError(f"{unit.name} is the organisation's root and cannot be deleted")
    counted = [(one, several, session.scalar(select(func.count()).select_from(model).where(column == unit.id)) or 0)
               for model, column, one, several in HOLDERS]
    held = [(one if n == 1 else several, n) for one, several, n in counted if n]
    target = find_business_unit_txn(session, to) if to is not None else None
    if target is None and held:
        listed = ", ".join(f"{n} {what}" for what, n in held)
        raise UserError(f"{unit.name} holds {listed}: give --to UNIT to move them there before it is deleted")
    if target is not None:
        if target.id == unit.id:
            raise UserError(f"cannot move what {unit.name} holds to {unit.name} itself")
        if target.id in _below(session, unit.id):
            raise UserError(f"cannot move what {unit.name} holds to {target.name}, which is below it: "
                            f"move {target.name} elsewhere first, or choose another unit")
        now = utcnow()
        for model, column, _one, _several in HOLDERS:
            values = {column.key: target.id, **({"modifiedon": now} if hasattr(model, "modifiedon") else {})}
            session.execute(update(model).where(column == unit.id).values(values)
                            .execution_options(synchronize_session=False))
    session.expire_all()
    session.delete(session.get(BusinessUnit, unit.id))
    session.flush()
    return Deleted(unit.name, tuple(held), target.name if target else None)
