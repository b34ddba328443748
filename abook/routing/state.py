"""The router's ``_txn`` functions over ``MailboxState``: rows, leases, health, cursors, unmarked sightings.

A daemon polls a mailbox only while it holds the row's lease, claimed with one conditional UPDATE
(free, expired, or already ours), so two daemons sharing PostgreSQL never poll one mailbox at once.
The cursor is written by ``routing/batch.py`` in the transaction of the messages it covers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from abook.store.models import Email, EmailSighting, MailboxState, Queue, State, SystemUser
from abook.tracking.api import Owner


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


def resolve_owner_txn(session: Session, owner: str) -> Owner | None:
    """A config owner (a user name, or ``queue:<address>``) as the store knows it; None if unknown."""
    if owner.startswith("queue:"):
        address = owner[len("queue:"):].lower()
        qid = session.scalars(select(Queue.id).where(func.lower(Queue.emailaddress) == address)).first()
        return Owner("queue", qid) if qid else None
    uid = session.scalars(select(SystemUser.id).where(func.lower(SystemUser.domainname) == owner.lower())).first()
    return Owner("systemuser", uid) if uid else None


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


@dataclass(frozen=True)
class RouterOwner:
    """A user or queue whose incoming method is ``router``: the store's side of a derived mailbox."""

    user: str  # user name, or "queue:<address>"
    email: str
    id: str = ""  # the user's or queue's GUID


def router_owners_txn(session: Session) -> tuple[RouterOwner, ...]:
    users = session.execute(select(SystemUser.domainname, SystemUser.internalemailaddress, SystemUser.id)
                            .where(SystemUser.incoming_method == "router", SystemUser.statecode == State.active,
                                   SystemUser.internalemailaddress.is_not(None))
                            .order_by(SystemUser.domainname))
    queues = session.execute(select(Queue.emailaddress, Queue.id)
                             .where(Queue.incoming_method == "router", Queue.statecode == State.active,
                                    Queue.emailaddress.is_not(None))
                             .order_by(Queue.emailaddress))
    return tuple([RouterOwner(u.domainname, u.internalemailaddress, u.id) for u in users]
                 + [RouterOwner(f"queue:{q.emailaddress}", q.emailaddress, q.id) for q in queues])
