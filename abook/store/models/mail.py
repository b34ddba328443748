"""The router's state per mailbox (health, cursor, lease), its loop-damping arrivals, and deployment-wide
settings. Synchronisation state is in ``store/sync_links.py``."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from abook.store.models.base import Base


class MailboxState(Base):
    """Health and read position of one configured mailbox (keyed by its name in the config)."""

    __tablename__ = "mailboxstate"

    name: Mapped[str] = mapped_column(String(320), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # ews / graph / imap / pop3 / forward
    owner_type: Mapped[Optional[str]] = mapped_column(String(32))
    owner_id: Mapped[Optional[str]] = mapped_column(String(36))
    cursor: Mapped[Optional[str]] = mapped_column(Text)  # EWS sync state, UIDVALIDITY:UID, UIDL set
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)  # permanent ones: disable after
    #: polls in a row that failed, of any kind (the router backs off, alerts and `abook status` shows it)
    failures_in_row: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_poll_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    messages_tracked: Mapped[int] = mapped_column(Integer, default=0)
    # Lease so that two daemons sharing one PostgreSQL never poll the same mailbox at once.
    lease_holder: Mapped[Optional[str]] = mapped_column(String(128))
    lease_until: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class MailArrival(Base):
    """One message the router read, by sender: the sliding window of the router's loop damping."""

    __tablename__ = "mailarrival"
    __table_args__ = (Index("ix_mailarrival_window", "mailbox", "sender", "arrived_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320))  # lower-cased address
    arrived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Setting(Base):
    """Deployment-wide values the store must remember (tracking number allocation, ...)."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
