"""Frozen values that cross the thread boundary. ORM instances never leave a ``*_txn`` function."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

from abook.store.enums import ReadDepth


@dataclass(frozen=True)
class Principal:
    """A bound CRM user as the visibility rules see them.

    ``depths`` is the effective (widest over all roles) read depth per entity name of
    ``models.ENTITIES``; ``bu_subtree`` holds the user's business unit and every unit below it.
    """

    user_id: str
    business_unit_id: str
    depths: Mapping[str, ReadDepth]
    bu_subtree: frozenset[str]
    address_book_matching: str = "synchronised"
    local_filter_scope: str = "user"
    local_filter_ldap: str | None = None
    local_filter_include_inactive: bool = False
    domainname: str = ""
    roles: tuple[str, ...] = field(default_factory=tuple)

    def depth(self, entity: str) -> ReadDepth:
        return self.depths.get(entity, ReadDepth.none)


@dataclass(frozen=True)
class Owner:
    """The user or queue whose mail a mailbox holds (``store/owners.py`` says who a name or address means)."""

    type: Literal["systemuser", "queue"]
    id: str
