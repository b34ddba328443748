"""Business units and security roles (`abook bu`, `abook role`), and queues (`abook queue`).

``*_txn`` functions returning frozen values; names resolve by id or case-insensitive name, and a name that
denotes nothing raises ``NotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abook.errors import NotFound, UserError
from abook.store.models import ENTITIES, BusinessUnit, Queue, ReadDepth, Role, RolePrivilege, State
from abook.store.owners import queue_for_name_txn
from abook.store.settings import parse_email


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
class QueueInfo:
    id: str
    name: str
    email: str | None
    business_unit: str
    active: bool
    tracking_option: str
    incoming_method: str
    outgoing_method: str


def find_business_unit_txn(session: Session, name: str) -> BusinessUnit:
    unit = session.get(BusinessUnit, name)
    if unit is not None:
        return unit
    found = list(session.scalars(select(BusinessUnit).where(func.lower(BusinessUnit.name) == name.strip().lower())))
    if not found:
        raise NotFound(f"no business unit {name!r}")
    if len(found) > 1:
        raise UserError(f"{len(found)} business units are called {name!r}: name one by its id")
    return found[0]


def find_role_txn(session: Session, name: str) -> Role:
    role = session.get(Role, name) or session.scalar(select(Role).where(func.lower(Role.name) == name.strip().lower()))
    if role is None:
        raise NotFound(f"no role {name!r}")
    return role


def add_business_unit_txn(session: Session, name: str, parent: str | None = None) -> BusinessUnitInfo:
    """A new unit under ``parent``; without one, the organisation's root (or the root itself, if first)."""
    name = name.strip()
    if not name:
        raise UserError("a business unit needs a name")
    if session.scalar(select(BusinessUnit.id).where(func.lower(BusinessUnit.name) == name.lower())):
        raise UserError(f"business unit {name!r} already exists")
    if parent is not None:
        parent_unit: BusinessUnit | None = find_business_unit_txn(session, parent)
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
    role = find_role_txn(session, name)
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


# ---------------------------------------------------------------------------------------------------------
# Queues


def _queue_info(session: Session, queue: Queue) -> QueueInfo:
    unit = session.get(BusinessUnit, queue.business_unit_id)
    return QueueInfo(queue.id, queue.name, queue.emailaddress, unit.name if unit else queue.business_unit_id,
                     queue.statecode == State.active, queue.tracking_option, queue.incoming_method,
                     queue.outgoing_method)


def _check_queue_email_free(session: Session, email: str | None, queue_id: str = "") -> None:
    if email:
        holder = session.scalar(
            select(Queue.name).where(func.lower(Queue.emailaddress) == email.lower(), Queue.id != queue_id)
        )
        if holder is not None:
            raise UserError(f"{email} is already the email address of queue {holder!r}")


def create_queue_txn(session: Session, name: str, business_unit: str, email: str | None = None) -> QueueInfo:
    name = name.strip()
    if not name:
        raise UserError("a queue needs a name")
    if session.scalar(select(Queue.id).where(func.lower(Queue.name) == name.lower())):
        raise UserError(f"queue {name!r} already exists")
    unit = find_business_unit_txn(session, business_unit)
    email = parse_email("email", email or "")
    _check_queue_email_free(session, email)
    queue = Queue(name=name, emailaddress=email, business_unit_id=unit.id, statecode=State.active)
    session.add(queue)
    session.flush()
    return _queue_info(session, queue)


def update_queue_settings_txn(session: Session, name: str, settings: Mapping[str, Any]) -> QueueInfo:
    """Apply settings already checked by ``settings.parse_settings(pairs, QUEUE_SETTINGS)``."""
    queue = queue_for_name_txn(session, name)
    for key, value in settings.items():
        if key == "email":
            _check_queue_email_free(session, value, queue.id)
        setattr(queue, {"email": "emailaddress"}.get(key, key), value)
    session.flush()
    return _queue_info(session, queue)


def list_queues_txn(session: Session) -> list[QueueInfo]:
    return [_queue_info(session, q) for q in session.scalars(select(Queue).order_by(func.lower(Queue.name)))]
