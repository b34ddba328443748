"""The CRM's predefined security roles, as read depths over abook's six entities (`abook role add-standard`,
`abook init --standard-roles`), so that a fresh store offers the roles an admin knows from the CRM.

The names are those Microsoft Dynamics CRM 4.0 installs (its "Support User" is Microsoft's own and left
out). abook keeps only the read privilege of the entities it publishes, so each role here is the CRM role
reduced to that: every role reads the Users, Queues and Facilities books organisation-wide (colleagues,
shared mailboxes and rooms are everyone's address book) and accounts and contacts organisation-wide; they
differ in leads. They are a starting point: `abook role set` changes any of them.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from abook.store.models import ENTITIES, ReadDepth, Role
from abook.store.org import RoleInfo, add_role_txn

_ORG, _PC, _USER, _NONE = ReadDepth.organisation, ReadDepth.parent_child, ReadDepth.user, ReadDepth.none

#: role name -> read depth of leads (every other entity: organisation), in the CRM's order
_LEADS: dict[str, ReadDepth] = {
    "CEO-Business Manager": _ORG,
    "CSR Manager": _NONE,
    "Customer Service Representative": _NONE,
    "Marketing Manager": _ORG,
    "Marketing Professional": _ORG,
    "Sales Manager": _PC,
    "Salesperson": _USER,
    "Schedule Manager": _NONE,
    "Scheduler": _NONE,
    "System Administrator": _ORG,
    "System Customizer": _USER,
    "Vice President of Marketing": _ORG,
    "Vice President of Sales": _ORG,
}

STANDARD_ROLES: dict[str, dict[str, ReadDepth]] = {
    name: {entity: (leads if entity == "lead" else _ORG) for entity in ENTITIES} for name, leads in _LEADS.items()
}


def add_standard_roles_txn(session: Session) -> tuple[tuple[RoleInfo, ...], tuple[str, ...]]:
    """Add every standard role the store does not have yet (by name, case-insensitively); a role of that
    name that exists is left as it is. Returns (the roles added, the names already there)."""
    have = {n.lower() for n in session.scalars(select(func.lower(Role.name)))}
    added = tuple(add_role_txn(session, name, depths) for name, depths in STANDARD_ROLES.items()
                  if name.lower() not in have)
    return added, tuple(name for name in STANDARD_ROLES if name.lower() in have)
