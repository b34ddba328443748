"""Sync leases: which daemon syncs a user now, and when the user is due next, shared by every daemon.

Several daemons may serve one PostgreSQL store, each running the sync service over every user with sync
enabled. A daemon syncs a user only while it holds the user's lease, claimed as the router claims a
mailbox (``store/mailboxes.py``): one conditional UPDATE of the user's row (free, expired, or already ours,
and due), which PostgreSQL serialises on the row's lock, so of two daemons claiming at once one wins and
the other sees the row taken. The holder renews the lease while the sync runs (every third of
``sync.lease_seconds``) and on release writes when the user is due again (the interval, or the back-off
after a failure), so a user synced by one daemon is not synced again by another before then. A daemon that
dies stops renewing: its leases run out after ``sync.lease_seconds`` and another daemon takes the user up.

Leases are rows, not advisory locks: the ``db`` pool hands a connection to each transaction in turn, and a
session advisory lock would belong to whichever transaction took it, not to the sync; a row also shows in
``abook status`` and outlives nothing but its expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import DateTime, String, and_, false, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from abook.store.models import Base


class SyncLease(Base):
    """One user's sync: who syncs them now (until when), and when they are due next."""

    __tablename__ = "synclease"

    systemuser_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    #: the daemon syncing the user now (``router.daemon_id``), None when nobody is
    holder: Mapped[Optional[str]] = mapped_column(String(128))
    lease_until: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    #: not synced again before this (by any daemon): the interval after a sync, the back-off after a failure
    due_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Claim:
    claimed: bool
    #: not claimed: when it is worth asking again (the user's due time, or the other holder's expiry)
    retry_at: Optional[datetime] = None


def _aware(t: datetime | None) -> datetime | None:
    from datetime import timezone

    return t if t is None or t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def claim_sync_txn(session: Session, user_id: str, holder: str, now: datetime, seconds: float,
                   due_only: bool = True) -> Claim:
    """Take the user's sync lease if it is free (or expired, or ours) and the user is due (``due_only``
    False: due or not, as ``abook sync now``)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(SyncLease).values(systemuser_id=user_id).on_conflict_do_nothing(
        index_elements=["systemuser_id"]))
    result = session.execute(
        update(SyncLease)
        .where(SyncLease.systemuser_id == user_id,
               or_(SyncLease.holder.is_(None), SyncLease.holder == holder, SyncLease.lease_until < now),
               or_(SyncLease.due_at.is_(None), SyncLease.due_at <= now,
                   false() if due_only else true()))
        .values(holder=holder, lease_until=now + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False))
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return Claim(True)
    row = session.execute(select(SyncLease.holder, SyncLease.lease_until, SyncLease.due_at)
                          .where(SyncLease.systemuser_id == user_id)).one()
    times = [t for t in (_aware(row.due_at),) if t is not None and t > now]
    until = _aware(row.lease_until)
    if row.holder not in (None, holder) and until is not None and until >= now:
        times.append(until)
    return Claim(False, max(times) if times else now)


def renew_sync_txn(session: Session, user_ids: tuple[str, ...], holder: str, now: datetime,
                   seconds: float) -> tuple[str, ...]:
    """Extend this daemon's leases of these users; returns the users whose lease it no longer holds."""
    if not user_ids:
        return ()
    session.execute(update(SyncLease)
                    .where(SyncLease.systemuser_id.in_(user_ids), SyncLease.holder == holder)
                    .values(lease_until=now + timedelta(seconds=seconds))
                    .execution_options(synchronize_session=False))
    held = set(session.scalars(select(SyncLease.systemuser_id)
                               .where(SyncLease.systemuser_id.in_(user_ids), SyncLease.holder == holder)))
    return tuple(u for u in user_ids if u not in held)


def release_sync_txn(session: Session, user_id: str, holder: str, due_at: datetime | None) -> None:
    """The sync ended: the lease is free, and the user is not due again before ``due_at`` (None: when they
    were due already)."""
    values: dict[str, object] = {"holder": None, "lease_until": None}
    if due_at is not None:
        values["due_at"] = due_at
    session.execute(update(SyncLease).where(SyncLease.systemuser_id == user_id, SyncLease.holder == holder)
                    .values(**values)
                    .execution_options(synchronize_session=False))


def sync_leases_txn(session: Session, now: datetime) -> dict[str, list[str]]:
    """Holder -> the users (by name) whose sync it holds now (``abook status``)."""
    from abook.store.models import SystemUser

    out: dict[str, list[str]] = {}
    rows = session.execute(select(SyncLease.holder, SystemUser.domainname)
                           .join(SystemUser, SystemUser.id == SyncLease.systemuser_id)
                           .where(and_(SyncLease.holder.is_not(None), SyncLease.lease_until > now))
                           .order_by(SystemUser.domainname))
    for holder, name in rows:
        out.setdefault(holder, []).append(name)
    return out
