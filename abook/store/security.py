"""Who may read what: the SQL predicate selecting exactly the records a user may read.

``load_principal_txn(session, user_id)`` builds a ``Principal`` (effective depth per entity, business-unit
subtree); ``readable(principal, entity)`` returns a SQLAlchemy boolean expression over
``models.ENTITY_MODELS[entity]`` for use in any ``select()``.
(Stub: implemented by the foundation work.)
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false
from sqlalchemy.orm import Session

from abook.store.records import Principal


def load_principal_txn(session: Session, user_id: str) -> Principal | None:
    """The principal for an active user, or None for an unknown or inactive one."""
    raise NotImplementedError


def readable(principal: Principal, entity: str) -> ColumnElement[bool]:
    return false()
