"""The synchronisation state: links between CRM records and mailbox items, sync tokens, conflicts, item errors.

One ``SyncLink`` per user, CRM record and mailbox item (vdirsyncer's status table): both ids, the mailbox
item's change key or etag, the CRM record's version (``crm_etag``), and per side the mapped values last
seen (JSON) and their hash. A link is ``linked``; ``pending`` while a create is under way (the CRM id
is already in the item, so recovery finds it); a ``tombstone``: the mailbox copy was deleted and
the CRM record is not to be copied again until it changes (docs/sync.md section 3, contacts); or
``detached``: the copy stays in the mailbox, carrying the CRM id, while the sync leaves it alone (the record
left the filter, the item lost its Tracked category), remembered so that the pair merges again from its
last-synced values if it comes back, instead of the record being copied a second time.

``*_txn`` functions take a Session first and return frozen values (``LinkRecord``, ...). Conflicts and item
errors are read and written by ``sync_conflicts``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Optional

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from abook.store.models import Base, utcnow

Values = Mapping[str, Optional[str]]


class SyncLink(Base):
    """A CRM record linked to an item in one user's mailbox."""

    __tablename__ = "synclink"
    __table_args__ = (
        UniqueConstraint("systemuser_id", "crm_id", name="uq_synclink_crm"),
        UniqueConstraint("systemuser_id", "entity", "mailbox_id", name="uq_synclink_mailbox"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    systemuser_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16))  # contact / appointment / task (the mailbox's kind)
    crm_type: Mapped[str] = mapped_column(String(32))  # contact / appointment / task / fax / letter / phonecall
    crm_id: Mapped[str] = mapped_column(String(36))
    mailbox_id: Mapped[Optional[str]] = mapped_column(String(1024))
    mailbox_etag: Mapped[Optional[str]] = mapped_column(String(512))
    crm_etag: Mapped[Optional[str]] = mapped_column(String(128))
    crm_hash: Mapped[Optional[str]] = mapped_column(String(64))
    mailbox_hash: Mapped[Optional[str]] = mapped_column(String(64))
    crm_values: Mapped[Optional[str]] = mapped_column(Text)
    mailbox_values: Mapped[Optional[str]] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="linked")
    #: the user owned (contacts, tasks) or organised (appointments) the record at the last sync
    owned: Mapped[bool] = mapped_column(Boolean, default=False)
    #: the winner an admin chose for an open conflict (``abook sync resolve``), applied by the next sync
    resolve: Mapped[Optional[str]] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    #: abook created the item after the listing its saved sync token came from: until a later delta lists
    #: it, its absence from a delta proves nothing (created and deleted between two tokens, it never existed
    #: for the server's change log), so the next sync reads it to see whether it is still there
    verify: Mapped[bool] = mapped_column(Boolean, default=False)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_synclink_user_entity", SyncLink.systemuser_id, SyncLink.entity)


class SyncState(Base):
    """Per user and entity: the mailbox's sync token and the health of the last runs."""

    __tablename__ = "syncstate"

    systemuser_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id", ondelete="CASCADE"), primary_key=True)
    entity: Mapped[str] = mapped_column(String(16), primary_key=True)
    token: Mapped[Optional[str]] = mapped_column(Text)
    last_run_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[Optional[str]] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    #: the last run's action counts, JSON ({"create_mailbox": 2, ...})
    last_counts: Mapped[Optional[str]] = mapped_column(Text)


class SyncConflict(Base):
    """Both sides changed the same fields differently: what each side had, and who won (if anyone yet)."""

    __tablename__ = "syncconflict"
    __table_args__ = (Index("ix_syncconflict_user_status", "systemuser_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    systemuser_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16))
    crm_type: Mapped[str] = mapped_column(String(32))
    crm_id: Mapped[str] = mapped_column(String(36))
    mailbox_id: Mapped[Optional[str]] = mapped_column(String(1024))
    policy: Mapped[str] = mapped_column(String(16))
    #: crm / mailbox; None while a manual conflict waits for `abook sync resolve`
    winner: Mapped[Optional[str]] = mapped_column(String(16))
    #: JSON {field: {"crm": value, "mailbox": value}}: both values, so the loser's can be read back
    fields: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / resolved
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class SyncIssue(Base):
    """One item that failed to synchronise: skipped, recorded, retried next cycle up to a cap."""

    __tablename__ = "syncissue"
    __table_args__ = (UniqueConstraint("systemuser_id", "entity", "item", name="uq_syncissue_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    systemuser_id: Mapped[str] = mapped_column(ForeignKey("systemuser.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(16))
    item: Mapped[str] = mapped_column(String(1100))  # "crm:<id>" or "mailbox:<id>"
    action: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str] = mapped_column(Text)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------------------------------------------------
# Frozen values


def dump_values(values: Values | None) -> str | None:
    return None if values is None else json.dumps(dict(values), sort_keys=True, separators=(",", ":"))


def load_values(text: str | None) -> dict[str, Optional[str]]:
    return json.loads(text) if text else {}


@dataclass(frozen=True)
class LinkRecord:
    user_id: str
    entity: str
    crm_type: str
    crm_id: str
    mailbox_id: str | None = None
    mailbox_etag: str | None = None
    crm_etag: str | None = None
    crm_hash: str | None = None
    mailbox_hash: str | None = None
    #: the JSON texts of the values; ``crm_values``/``mailbox_values`` parse them when needed
    crm_json: str | None = field(default=None, repr=False)
    mailbox_json: str | None = field(default=None, repr=False)
    state: str = "linked"
    owned: bool = False
    resolve: str | None = None
    failures: int = 0
    id: int | None = None
    verify: bool = False

    @property
    def crm_values(self) -> dict[str, Optional[str]]:
        return load_values(self.crm_json)

    @property
    def mailbox_values(self) -> dict[str, Optional[str]]:
        return load_values(self.mailbox_json)

    def with_values(self, crm: Values | None = None, mailbox: Values | None = None, **changes: Any) -> "LinkRecord":
        if crm is not None:
            changes["crm_json"] = dump_values(crm)
        if mailbox is not None:
            changes["mailbox_json"] = dump_values(mailbox)
        return replace(self, **changes)


_LINK_COLUMNS = ("systemuser_id", "entity", "crm_type", "crm_id", "mailbox_id", "mailbox_etag", "crm_etag", "crm_hash",
                 "mailbox_hash", "crm_values", "mailbox_values", "state", "owned", "resolve", "failures", "id", "verify")


def _link(row: Any) -> LinkRecord:
    return LinkRecord(row.systemuser_id, row.entity, row.crm_type, row.crm_id, row.mailbox_id, row.mailbox_etag,
                      row.crm_etag, row.crm_hash, row.mailbox_hash, row.crm_values, row.mailbox_values, row.state,
                      bool(row.owned), row.resolve, row.failures or 0, row.id, bool(row.verify))


def links_txn(session: Session, user_id: str, entity: str) -> list[LinkRecord]:
    t = SyncLink.__table__
    rows = session.execute(select(*(t.c[c] for c in _LINK_COLUMNS))
                           .where(t.c.systemuser_id == user_id, t.c.entity == entity).order_by(t.c.id))
    return [_link(r) for r in rows]


def link_for_crm_txn(session: Session, user_id: str, crm_id: str) -> LinkRecord | None:
    t = SyncLink.__table__
    row = session.execute(select(*(t.c[c] for c in _LINK_COLUMNS))
                          .where(t.c.systemuser_id == user_id, t.c.crm_id == crm_id)).one_or_none()
    return _link(row) if row is not None else None


def save_link_txn(session: Session, link: LinkRecord) -> LinkRecord:
    """Insert the link (``id`` None) or overwrite the row it came from; returns it with its id."""
    values = dict(systemuser_id=link.user_id, entity=link.entity, crm_type=link.crm_type, crm_id=link.crm_id,
                  mailbox_id=link.mailbox_id, mailbox_etag=link.mailbox_etag, crm_etag=link.crm_etag,
                  crm_hash=link.crm_hash, mailbox_hash=link.mailbox_hash, crm_values=link.crm_json,
                  mailbox_values=link.mailbox_json, state=link.state, owned=link.owned, resolve=link.resolve,
                  failures=link.failures, verify=link.verify, synced_at=utcnow())
    if link.id is None:
        row = SyncLink(**values)
        session.add(row)
        session.flush()
        return replace(link, id=row.id)
    row = session.get(SyncLink, link.id)
    if row is None:  # removed meanwhile (the user was deleted): insert afresh
        return save_link_txn(session, replace(link, id=None))
    for k, v in values.items():
        setattr(row, k, v)
    session.flush()
    return link


def clear_verify_txn(session: Session, link_ids: Iterable[int]) -> None:
    ids = list(link_ids)
    for i in range(0, len(ids), 500):
        session.execute(update(SyncLink).where(SyncLink.id.in_(ids[i:i + 500])).values(verify=False))


def delete_link_txn(session: Session, link_id: int) -> None:
    session.execute(delete(SyncLink).where(SyncLink.id == link_id))


# ---------------------------------------------------------------------------------------------------------
# Tokens and run health


@dataclass(frozen=True)
class StateRecord:
    user_id: str
    entity: str
    token: str | None = None
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_attempt_at: datetime | None = None
    last_counts: Mapping[str, int] = field(default_factory=dict)


def _state(row: SyncState) -> StateRecord:
    return StateRecord(row.systemuser_id, row.entity, row.token, as_utc(row.last_run_at), as_utc(row.last_success_at),
                       row.last_error, row.consecutive_failures or 0, as_utc(row.next_attempt_at),
                       json.loads(row.last_counts) if row.last_counts else {})


def as_utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t


def _state_row(session: Session, user_id: str, entity: str) -> SyncState:
    row = session.get(SyncState, (user_id, entity))
    if row is None:
        row = SyncState(systemuser_id=user_id, entity=entity, consecutive_failures=0)
        session.add(row)
        session.flush()
    return row


def sync_state_txn(session: Session, user_id: str, entity: str) -> StateRecord:
    row = session.get(SyncState, (user_id, entity))
    return _state(row) if row is not None else StateRecord(user_id, entity)


def save_token_txn(session: Session, user_id: str, entity: str, token: str | None) -> None:
    """Saved only once the batch the token covers is committed (docs/sync.md invariant 16)."""
    _state_row(session, user_id, entity).token = token


def record_run_txn(session: Session, user_id: str, entity: str, *, at: datetime, error: str | None,
                   counts: Mapping[str, int], next_attempt_at: datetime | None = None) -> StateRecord:
    row = _state_row(session, user_id, entity)
    row.last_run_at = at
    row.last_counts = json.dumps(dict(counts), sort_keys=True)
    if error is None:
        row.last_success_at, row.last_error, row.consecutive_failures, row.next_attempt_at = at, None, 0, None
    else:
        row.last_error = error[:2000]
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        row.next_attempt_at = next_attempt_at
    session.flush()
    return _state(row)


def sync_states_txn(session: Session) -> list[StateRecord]:
    return [_state(r) for r in session.scalars(select(SyncState).order_by(SyncState.systemuser_id, SyncState.entity))]
