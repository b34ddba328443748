"""``track_many_txn`` gives every message the outcome and rows ``track_txn`` gives it one after the other, on
both databases: copies and replies within the batch, sightings, refusals, oversized and unreadable input."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from abook.config.model import TrackingConfig
from abook.store import Store
from abook.store.models import Activity, ActivityParty, Attachment, Email, EmailSighting, UntrackedMessage
from abook.tracking.api import TrackRequest, TrackResult
from abook.tracking.bulk import track_many_txn
from abook.tracking.engine import track_txn
from tests.unit.tracking.conftest import MAIL, Crm, message, track, user
from tests.unit.tracking.test_engine import _crm_email_with_token

CONFIG = TrackingConfig()


def _requests(store: Store, crm: Crm) -> list[TrackRequest]:
    tracked = track(store, (MAIL / "plain.eml").read_bytes(), user(crm.jane), mailbox="earlier")
    with store.transaction() as s:
        activity = s.get(Activity, tracked.activity_id)
        assert activity is not None
        activity.regarding_type, activity.regarding_id = "account", crm.account
    token = _crm_email_with_token(store, crm, CONFIG)[1]
    first = message("From: Alice <alice@example.com>", "To: bob@example.net, stranger@nowhere.example",
                    "Cc: jane@corp.example, sales@customer.example", "Subject: First", "Message-ID: <b1@x>",
                    "Date: Mon, 02 Nov 2026 10:00:00 +0000")
    attached = message("From: bob@example.net", "To: jane@corp.example", "Subject: With a file",
                       "Message-ID: <b2@x>", 'Content-Type: multipart/mixed; boundary="B"',
                       body='--B\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n--B\r\n'
                            'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"\r\n'
                            'Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n')
    raws = [
        first,
        first,  # the same message again in the same mailbox: a duplicate
        message("From: bob@example.net", "Subject: Re: First", "In-Reply-To: <b1@x>", "Message-ID: <b3@x>"),
        message("From: alice@example.com", "Subject: Re: Plain", "In-Reply-To: <plain-1@example.com>",
                "Message-ID: <b4@x>"),
        (MAIL / "plain.eml").read_bytes(),  # tracked before the batch: a sighting
        message("From: sales@customer.example", f"Subject: RE: Offer {token}", "Message-ID: <b5@x>"),
        b"",  # unreadable
        message("From: alice@example.com", "Subject: Big", "Message-ID: <b6@x>", body="x" * 1_200_000),
        attached,
        message("From: nobody@nowhere.example", "Subject: No id"),
        message("From: bob@example.net", "Subject: Re: Re: First", "References: <b1@x> <b3@x>",
                "Message-ID: <b7@x>"),
    ]
    requests = [TrackRequest(raw, "inbox", user(crm.jane), "router", external_id=str(i)) for i, raw in enumerate(raws)]
    requests.insert(2, TrackRequest(first, "other", user(crm.jane), "router"))  # a copy in a second mailbox
    requests.append(TrackRequest(attached, "sent", user(crm.jane), "router", direction="out"))
    return requests


def _snapshot(session: Session, results: list[TrackResult]) -> list[Any]:
    """Everything the messages wrote, activity ids replaced by the index of the result that created them."""
    names = {r.activity_id: i for i, r in reversed(list(enumerate(results))) if r.activity_id}

    def name(activity_id: str | None) -> object:
        return names.get(activity_id, activity_id)

    def named(text: str | None) -> str | None:
        for activity_id, i in names.items():
            text = text.replace(activity_id, f"#{i}") if text else text
        return text

    out: list[Any] = [(r.outcome, name(r.activity_id), r.reason, named(r.detail)) for r in results]
    for activity_id in sorted(names, key=names.__getitem__):
        activity = session.get(Activity, activity_id)
        email = session.get(Email, activity_id)
        assert activity is not None and email is not None
        out.append((activity.subject, activity.description, activity.regarding_type, activity.regarding_id,
                    activity.owner_id, email.message_key, email.message_id, email.correlation_method,
                    email.directioncode, email.raw, email.body_text))
        out.append(sorted((tuple(r) for r in session.execute(
            select(ActivityParty.participationtypemask, ActivityParty.party_type, ActivityParty.party_id,
                   ActivityParty.addressused, ActivityParty.display_name)
            .where(ActivityParty.activity_id == activity_id)).all()), key=repr))
        out.append(sorted((tuple(r) for r in session.execute(
            select(Attachment.part, Attachment.filename, Attachment.filesize, Attachment.body)
            .where(Attachment.email_id == activity_id)).all()), key=repr))
        out.append(sorted((tuple(r) for r in session.execute(
            select(EmailSighting.mailbox, EmailSighting.external_id, EmailSighting.arrival)
            .where(EmailSighting.email_id == activity_id)).all()), key=repr))
    out.append([(*r[:4], named(r[4])) for r in session.execute(
        select(UntrackedMessage.reason, UntrackedMessage.mailbox, UntrackedMessage.external_id,
               UntrackedMessage.message_id, UntrackedMessage.detail).order_by(UntrackedMessage.id)).all()])
    return out


def test_a_batch_tracks_as_one_by_one(store: Store, crm: Crm) -> None:
    requests = _requests(store, crm)
    with store.sessionmaker() as s:  # rolled back, so the batch below runs against the same store
        one_by_one = [track_txn(s, r, CONFIG) for r in requests]
        expected = _snapshot(s, one_by_one)
        s.rollback()
    assert [r.outcome for r in one_by_one] == [
        "tracked", "untracked", "sighting", "tracked", "tracked", "sighting", "tracked", "untracked", "tracked",
        "tracked", "tracked", "tracked", "sighting"]
    with store.transaction() as s:
        batched = track_many_txn(s, requests, CONFIG)
        assert _snapshot(s, batched) == expected


def test_a_batch_resolves_addresses_once_replies_to_its_own_messages_included(store: Store, crm: Crm) -> None:
    """Replies to messages of the same batch are tracked after its pending rows, with the batch's one
    address resolution; only a message the batch did not parse (here the one over 1 MiB) resolves its own."""
    requests = _requests(store, crm)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        with store.transaction() as s:
            results = track_many_txn(s, requests, CONFIG)
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert [r.outcome for r in results].count("tracked") == 8
    assert len([s for s in seen if "FROM contact" in s and "UNION ALL" in s]) == 2
