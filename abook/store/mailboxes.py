"""What the router keeps per mailbox (``MailboxState``, ``MailArrival``): rows, leases, health, cursors, the
senders that arrived lately (loop damping), the sightings still to mark, and what ``abook status`` shows.

A daemon polls a mailbox only while it holds the row's lease, claimed with one conditional UPDATE
(free, expired, or already ours), so two daemons sharing PostgreSQL never poll one mailbox at once.
The cursor is written by ``save_cursor_txn``, which ``routing/batch.py`` calls in the transaction of the
messages it covers. Which user or queue a mailbox's owner means is ``store/owners.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from abook.store.models import Email, EmailSighting, MailArrival, MailboxState, Queue, SystemUser
from abook.store.records import Owner


@dataclass(frozen=True)
class Lease:
    cursor: str | None
    consecutive_failures: int


@dataclass(frozen=True)
class FailureState:
    consecutive_failures: int
    disabled: bool


@dataclass(frozen=True)
class Unmarked:
    activity_id: str
    external_id: str
    #: the email's normalised Message-ID, to find the message again when its external id no longer applies
    message_id: str | None = None


def ensure_state_txn(session: Session, name: str, kind: str, owner: Owner | None) -> bool:
    """Create the mailbox's row if it is missing; return whether it is enabled."""
    values = dict(name=name, kind=kind, owner_type=owner.type if owner else None,
                  owner_id=owner.id if owner else None, enabled=True, consecutive_failures=0, messages_tracked=0)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(MailboxState).values(**values).on_conflict_do_nothing(index_elements=["name"]))
    row = session.get(MailboxState, name)
    assert row is not None
    row.kind = kind
    if owner is not None:
        row.owner_type, row.owner_id = owner.type, owner.id
    return bool(row.enabled)


def claim_lease_txn(session: Session, name: str, holder: str, now: datetime, seconds: float) -> Lease | None:
    """Take (or renew) the mailbox's lease; None when it is disabled or another daemon holds it."""
    result = session.execute(
        update(MailboxState)
        .where(MailboxState.name == name, MailboxState.enabled.is_(True),
               or_(MailboxState.lease_holder.is_(None), MailboxState.lease_holder == holder,
                   MailboxState.lease_until < now))
        .values(lease_holder=holder, lease_until=now + timedelta(seconds=seconds), last_poll_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.execute(select(MailboxState.cursor, MailboxState.consecutive_failures)
                          .where(MailboxState.name == name)).one()
    return Lease(row.cursor, row.consecutive_failures)


def release_lease_txn(session: Session, name: str, holder: str) -> None:
    session.execute(update(MailboxState).where(MailboxState.name == name, MailboxState.lease_holder == holder)
                    .values(lease_holder=None, lease_until=None).execution_options(synchronize_session=False))


def record_success_txn(session: Session, name: str, now: datetime, failures_in_row: int = 0) -> None:
    """A poll succeeded. ``failures_in_row`` stays above 0 (with the last error) after the re-read that
    follows a cursor reset: only a poll from a stored cursor shows the mailbox has recovered."""
    values: dict[str, object] = {"last_success_at": now, "consecutive_failures": 0, "failures_in_row": failures_in_row}
    if failures_in_row == 0:
        values["last_error"] = None
    session.execute(update(MailboxState).where(MailboxState.name == name).values(**values)
                    .execution_options(synchronize_session=False))


def record_failure_txn(session: Session, name: str, error: str, permanent: bool, disable_after: int,
                       now: datetime, failures_in_row: int = 1) -> FailureState:
    """Record a failed poll. Permanent failures count towards disabling; every failure shows, with the
    number of polls in a row that failed (``abook status``)."""
    row = session.get(MailboxState, name)
    if row is None:
        return FailureState(0, False)
    row.last_error = error[:2000]
    row.last_poll_at = now
    row.failures_in_row = failures_in_row
    if permanent:
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        if row.enabled and row.consecutive_failures >= disable_after:
            row.enabled = False
            return FailureState(row.consecutive_failures, True)
    return FailureState(row.consecutive_failures or 0, False)


def reset_cursor_txn(session: Session, name: str) -> None:
    session.execute(update(MailboxState).where(MailboxState.name == name).values(cursor=None)
                    .execution_options(synchronize_session=False))


def enable_mailbox_txn(session: Session, name: str) -> bool:
    row = session.get(MailboxState, name)
    if row is None:
        return False
    row.enabled, row.consecutive_failures, row.lease_holder, row.lease_until = True, 0, None, None
    return True


def unmarked_sightings_txn(session: Session, name: str) -> tuple[Unmarked, ...]:
    """Messages committed as tracked in this mailbox but not marked there yet (a crash or a failure before
    the mark)."""
    rows = session.execute(select(EmailSighting.email_id, EmailSighting.external_id, Email.message_id)
                           .join(Email, Email.activity_id == EmailSighting.email_id)
                           .where(EmailSighting.mailbox == name, EmailSighting.marked.is_(False),
                                  EmailSighting.external_id.is_not(None))
                           .order_by(EmailSighting.id))
    return tuple(Unmarked(r.email_id, r.external_id, r.message_id) for r in rows)


def sightings_marked_txn(session: Session, name: str, activity_ids: tuple[str, ...],
                         external_id: str | None = None) -> None:
    """The message of these sightings is marked in the mailbox; ``external_id``: it was found under that id
    (its old one no longer applied), which the sightings keep from now on."""
    values: dict[str, object] = {"marked": True}
    if external_id is not None:
        values["external_id"] = external_id
    session.execute(update(EmailSighting)
                    .where(EmailSighting.mailbox == name, EmailSighting.email_id.in_(activity_ids))
                    .values(**values).execution_options(synchronize_session=False))


def retire_sightings_txn(session: Session, name: str, activity_ids: tuple[str, ...]) -> None:
    """The message of these sightings is no longer in the mailbox, under its id or its Message-ID: nothing is
    left to mark. The sightings stay (the email was seen there), unmarked, without an external id, so they
    are never tried again."""
    session.execute(update(EmailSighting)
                    .where(EmailSighting.mailbox == name, EmailSighting.email_id.in_(activity_ids),
                           EmailSighting.marked.is_(False))
                    .values(external_id=None).execution_options(synchronize_session=False))


def save_cursor_txn(session: Session, name: str, holder: str, cursor: str, lease_until: datetime,
                    tracked: int) -> bool:
    """Save the cursor that covers a committed batch and renew the lease, counting ``tracked`` messages;
    False when ``holder`` no longer holds the lease (another daemon took the mailbox)."""
    saved = session.execute(
        update(MailboxState).where(MailboxState.name == name, MailboxState.lease_holder == holder)
        .values(cursor=cursor, lease_until=lease_until, messages_tracked=MailboxState.messages_tracked + tracked)
        .execution_options(synchronize_session=False))
    return saved.rowcount == 1  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------------------
# Arrivals (loop damping)


def arrivals_since_txn(session: Session, name: str, senders: list[str], since: datetime) -> dict[str, int]:
    """sender -> how many of its messages arrived in the mailbox after ``since`` (senders without any left out)."""
    counts: dict[str, int] = {}
    for start in range(0, len(senders), 500):
        rows = session.execute(select(MailArrival.sender, func.count()).where(
            MailArrival.mailbox == name, MailArrival.sender.in_(senders[start:start + 500]),
            MailArrival.arrived_at > since).group_by(MailArrival.sender))
        counts.update((sender, n) for sender, n in rows)
    return counts


def record_arrivals_txn(session: Session, name: str, senders: list[str], now: datetime) -> None:
    """One arrival per item of ``senders`` (a sender once per message), at ``now``."""
    session.execute(insert(MailArrival), [{"mailbox": name, "sender": sender, "arrived_at": now} for sender in senders])


def prune_arrivals_txn(session: Session, name: str, until: datetime) -> None:
    """Forget the mailbox's arrivals at or before ``until`` (they left the loop window)."""
    session.execute(delete(MailArrival).where(MailArrival.mailbox == name, MailArrival.arrived_at <= until)
                    .execution_options(synchronize_session=False))


# ---------------------------------------------------------------------------------------------------------
# What `abook status` shows


@dataclass(frozen=True)
class MailboxStatus:
    name: str
    kind: str
    owner: str
    enabled: bool
    last_poll: datetime | None
    last_success: datetime | None
    last_error: str | None
    tracked: int
    failures: int
    #: polls in a row that failed, of any kind
    failures_in_row: int = 0


def _owner_name(session: Session, owner_type: str | None, owner_id: str | None) -> str:
    if owner_type == "systemuser" and owner_id:
        user = session.get(SystemUser, owner_id)
        return user.domainname if user else owner_id
    if owner_type == "queue" and owner_id:
        queue = session.get(Queue, owner_id)
        return f"queue:{queue.emailaddress}" if queue else owner_id
    return "-"


def mailbox_statuses_txn(session: Session, configured: tuple[tuple[str, str, str], ...]) -> tuple[MailboxStatus, ...]:
    """Every mailbox's health by name; ``configured``: (name, kind, owner) of each config mailbox, shown even
    before its first poll."""
    rows = {r.name: r for r in session.scalars(select(MailboxState).order_by(MailboxState.name))}
    out = []
    for name, kind, owner in configured:
        if name not in rows:
            out.append(MailboxStatus(name, kind, owner, True, None, None, "never polled", 0, 0))
    for r in rows.values():
        out.append(MailboxStatus(r.name, r.kind, _owner_name(session, r.owner_type, r.owner_id), bool(r.enabled),
                                 r.last_poll_at, r.last_success_at, r.last_error, r.messages_tracked or 0,
                                 r.consecutive_failures or 0, r.failures_in_row or 0))
    out.sort(key=lambda m: m.name)
    return tuple(out)
