"""The daemons sharing a store: one row per daemon (its lease holder name), written by its heartbeat.

Several daemons may serve one PostgreSQL store; ``abook status`` lists each with its host, pid, start,
last heartbeat and the mailbox and sync leases it holds. A daemon writes its row when it starts and every
``HEARTBEAT_SECONDS`` (monitor/heartbeat.py), and marks it stopped when it stops cleanly; a daemon that
died shows as silent once its heartbeat is older than ``STALE_AFTER`` heartbeats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import DateTime, Integer, String, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from abook.store.models import Base, MailboxState

HEARTBEAT_SECONDS = 15.0
#: heartbeats missed before a daemon is shown as silent
STALE_AFTER = 3


class Daemon(Base):
    """One abook daemon that serves (or served) this store."""

    __tablename__ = "daemon"

    #: its name in mailbox leases (``router.daemon_id``, by default "<host name>:<config directory>")
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    stopped_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class DaemonStatus:
    id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    #: mailboxes whose lease it holds now, then "sync:<user>" for the users whose sync it runs
    leases: tuple[str, ...]

    def state(self, now: datetime) -> str:
        if self.stopped_at is not None:
            return "stopped"
        silent = now - _aware(self.heartbeat_at)
        if silent > timedelta(seconds=HEARTBEAT_SECONDS * STALE_AFTER):
            return f"SILENT for {int(silent.total_seconds())}s"
        return "running"


def _aware(t: datetime) -> datetime:
    from datetime import timezone

    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def heartbeat_txn(session: Session, daemon_id: str, host: str, pid: int, version: str, started_at: datetime,
                  now: datetime) -> None:
    """Write this daemon's row (a restart under the same name takes it over)."""
    values = dict(id=daemon_id, host=host, pid=pid, version=version, started_at=started_at, heartbeat_at=now,
                  stopped_at=None)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(Daemon).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_={
        k: getattr(stmt.excluded, k) for k in values if k != "id"}))


def stopped_txn(session: Session, daemon_id: str, pid: int, now: datetime) -> None:
    session.execute(update(Daemon).where(Daemon.id == daemon_id, Daemon.pid == pid)
                    .values(stopped_at=now, heartbeat_at=now).execution_options(synchronize_session=False))


def daemons_txn(session: Session, now: datetime) -> tuple[DaemonStatus, ...]:
    """Every daemon of the store, with the mailbox leases each holds at ``now``."""
    leases: dict[str, list[str]] = {}
    for name, holder in session.execute(select(MailboxState.name, MailboxState.lease_holder)
                                        .where(MailboxState.lease_holder.is_not(None),
                                               MailboxState.lease_until > now)
                                        .order_by(MailboxState.name)):
        leases.setdefault(holder, []).append(name)
    from abook.store.sync_leases import sync_leases_txn

    for holder, users in sync_leases_txn(session, now).items():  # the users whose sync it runs
        leases.setdefault(holder, []).extend(f"sync:{u}" for u in users)
    out = [DaemonStatus(d.id, d.host, d.pid, d.version, d.started_at, d.heartbeat_at, d.stopped_at,
                        tuple(leases.pop(d.id, ())))
           for d in session.scalars(select(Daemon).order_by(Daemon.id))]
    # leases held under a name no heartbeat has written (a daemon older than this table)
    for holder, names in sorted(leases.items()):
        out.append(DaemonStatus(holder, "?", 0, "?", now, now, None, tuple(names)))
    return tuple(out)
