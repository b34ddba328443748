"""Sync conflicts (both sides changed one field differently) and item errors (an item that failed to sync),
as ``abook sync conflicts`` / ``resolve`` and ``abook sync status`` list them. The link table, the tokens and
the mapped classes are in ``sync_links``.

``*_txn`` functions take a Session first and return frozen values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping, Optional

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from abook.store.models import utcnow
from abook.store.sync_links import SyncConflict, SyncIssue, SyncLink, as_utc

# ---------------------------------------------------------------------------------------------------------
# Conflicts


@dataclass(frozen=True)
class ConflictRecord:
    id: int
    user_id: str
    entity: str
    crm_type: str
    crm_id: str
    mailbox_id: str | None
    policy: str
    winner: str | None
    fields: Mapping[str, Mapping[str, Optional[str]]]
    status: str
    recorded_at: datetime


def _conflict(row: SyncConflict) -> ConflictRecord:
    return ConflictRecord(row.id, row.systemuser_id, row.entity, row.crm_type, row.crm_id, row.mailbox_id, row.policy,
                          row.winner, json.loads(row.fields), row.status, as_utc(row.recorded_at))  # type: ignore[arg-type]


def record_conflict_txn(session: Session, user_id: str, entity: str, crm_type: str, crm_id: str,
                        mailbox_id: str | None, policy: str, winner: str | None,
                        fields: Mapping[str, Mapping[str, Optional[str]]]) -> ConflictRecord:
    """Record a conflict. An open manual conflict of the same record with the same values is not recorded
    twice (a sync that finds it again writes nothing)."""
    text = json.dumps({k: dict(v) for k, v in fields.items()}, sort_keys=True)
    if winner is None:
        same = session.scalars(select(SyncConflict).where(
            SyncConflict.systemuser_id == user_id, SyncConflict.crm_id == crm_id, SyncConflict.status == "open")).all()
        for row in same:
            if row.fields == text:
                return _conflict(row)
            row.status, row.resolved_at = "superseded", utcnow()
    row = SyncConflict(systemuser_id=user_id, entity=entity, crm_type=crm_type, crm_id=crm_id, mailbox_id=mailbox_id,
                       policy=policy, winner=winner, fields=text, status="open" if winner is None else "resolved",
                       recorded_at=utcnow(), resolved_at=None if winner is None else utcnow())
    session.add(row)
    session.flush()
    return _conflict(row)


def conflicts_txn(session: Session, user_id: str | None = None, *, open_only: bool = True) -> list[ConflictRecord]:
    stmt = select(SyncConflict).order_by(SyncConflict.id)
    if user_id is not None:
        stmt = stmt.where(SyncConflict.systemuser_id == user_id)
    if open_only:
        stmt = stmt.where(SyncConflict.status == "open")
    return [_conflict(r) for r in session.scalars(stmt)]


def resolve_conflict_txn(session: Session, conflict_id: int, winner: str) -> ConflictRecord:
    """Choose the winner of an open conflict; the next sync of its user writes the winning values."""
    from abook.errors import NotFound, UserError

    row = session.get(SyncConflict, conflict_id)
    if row is None:
        raise NotFound(f"no conflict {conflict_id}")
    if row.status != "open":
        raise UserError(f"conflict {conflict_id} is already {row.status}")
    if winner not in ("crm", "mailbox"):
        raise UserError(f"bad winner {winner!r}: expected crm or mailbox")
    link = session.scalar(select(SyncLink).where(SyncLink.systemuser_id == row.systemuser_id,
                                                 SyncLink.crm_id == row.crm_id))
    if link is not None:
        link.resolve = winner
    row.winner, row.status, row.resolved_at = winner, "resolved", utcnow()
    session.flush()
    return _conflict(row)


# ---------------------------------------------------------------------------------------------------------
# Item errors


@dataclass(frozen=True)
class IssueRecord:
    user_id: str
    entity: str
    item: str
    action: str
    attempts: int
    last_error: str
    last_at: datetime


def record_issue_txn(session: Session, user_id: str, entity: str, item: str, action: str, error: str) -> int:
    """Count one more failure of an item; returns its attempts so far."""
    row = session.scalar(select(SyncIssue).where(SyncIssue.systemuser_id == user_id, SyncIssue.entity == entity,
                                                 SyncIssue.item == item))
    if row is None:
        row = SyncIssue(systemuser_id=user_id, entity=entity, item=item, action=action, attempts=1,
                        last_error=error[:2000], first_at=utcnow(), last_at=utcnow())
        session.add(row)
    else:
        row.attempts, row.action, row.last_error, row.last_at = row.attempts + 1, action, error[:2000], utcnow()
    session.flush()
    return row.attempts


def clear_issues_txn(session: Session, user_id: str, entity: str, items: Iterable[str]) -> None:
    items = list(items)
    if items:
        session.execute(delete(SyncIssue).where(SyncIssue.systemuser_id == user_id, SyncIssue.entity == entity,
                                                SyncIssue.item.in_(items)))


def issues_txn(session: Session, user_id: str | None = None, entity: str | None = None) -> list[IssueRecord]:
    stmt = select(SyncIssue).order_by(SyncIssue.id)
    if user_id is not None:
        stmt = stmt.where(SyncIssue.systemuser_id == user_id)
    if entity is not None:
        stmt = stmt.where(SyncIssue.entity == entity)
    return [IssueRecord(r.systemuser_id, r.entity, r.item, r.action, r.attempts, r.last_error, as_utc(r.last_at))  # type: ignore[arg-type]
            for r in session.scalars(stmt)]
