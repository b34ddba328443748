"""Replies tracked before the email they answer: linked to it, and to its regarding record, once it arrives.

An email that correlates to nothing while its In-Reply-To or References name Message-IDs abook has not
tracked yet keeps one ``EmailAwait`` row per such id (In-Reply-To first, then References nearest parent
first: the order ``tracking/engine.py`` correlates in). When an email with one of those Message-IDs is
tracked, ``link_waiting_replies_txn`` gives each waiting reply the correlation it would have had if the
two had been tracked the other way round: the method, and the parent's regarding record unless the reply
has one already. A reply is linked once; its rows go then. One indexed query per tracked batch.

A reply's own replies, tracked while it had no regarding record, keep theirs (none): the regarding record
is copied when an email is correlated, as the CRM does, not carried down a conversation afterwards.
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import ForeignKey, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from abook.store.models import Activity, Base, Email

#: a reply waits for at most this many Message-IDs (In-Reply-To and the nearest References)
MAX_AWAITED = 20


class EmailAwait(Base):
    """An uncorrelated email waiting for the email with ``message_id`` (normalised, without <>)."""

    __tablename__ = "emailawait"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email_id: Mapped[str] = mapped_column(ForeignKey("email.activity_id", ondelete="CASCADE"), index=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    #: 0 first: the order correlation tries the ids in
    rank: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))  # in_reply_to / references


def awaited(in_reply_to: Sequence[str], references: Sequence[str]) -> list[tuple[str, str]]:
    """(message id, method) an uncorrelated reply waits for, in correlation order, each id once."""
    out: list[tuple[str, str]] = []
    for mid, method in [(m, "in_reply_to") for m in in_reply_to] + [(m, "references") for m in reversed(references)]:
        if mid and mid not in [m for m, _ in out]:
            out.append((mid[:998], method))
    return out[:MAX_AWAITED]


def await_rows(email_id: str, ids: Sequence[tuple[str, str]]) -> list[dict[str, object]]:
    return [{"email_id": email_id, "message_id": mid, "rank": rank, "method": method}
            for rank, (mid, method) in enumerate(ids)]


def insert_awaits_txn(session: Session, rows: Sequence[dict[str, object]]) -> None:
    if rows:
        session.connection().execute(EmailAwait.__table__.insert(), list(rows))


def link_waiting_replies_txn(session: Session, parents: Sequence[tuple[str, str]]) -> int:
    """``parents``: (Message-ID, email id) of emails just tracked. Link every reply waiting for one of them;
    return how many were linked."""
    by_message_id = {mid: email_id for mid, email_id in parents if mid}
    if not by_message_id:
        return 0
    conn = session.connection()
    table = EmailAwait.__table__
    rows = conn.execute(select(table.c.email_id, table.c.message_id, table.c.method)
                        .where(table.c.message_id.in_(sorted(by_message_id)))
                        .order_by(table.c.email_id, table.c.rank)).all()
    best: dict[str, tuple[str, str]] = {}
    for child, mid, method in rows:
        if child != by_message_id[mid]:
            best.setdefault(child, (by_message_id[mid], method))
    if not best:
        return 0
    activities = Activity.__table__
    regarding = {r.id: (r.regarding_type, r.regarding_id) for r in conn.execute(
        select(activities.c.id, activities.c.regarding_type, activities.c.regarding_id)
        .where(activities.c.id.in_(sorted({parent for parent, _ in best.values()}))))}
    emails = Email.__table__
    for child, (parent, method) in best.items():
        conn.execute(update(emails).where(emails.c.activity_id == child, emails.c.correlation_method.is_(None))
                     .values(correlation_method=method))
        kind, record = regarding.get(parent, (None, None))
        if record is not None:
            conn.execute(update(activities).where(activities.c.id == child, activities.c.regarding_id.is_(None))
                         .values(regarding_type=kind, regarding_id=record))
    conn.execute(delete(table).where(table.c.email_id.in_(sorted(best))))
    return len(best)
