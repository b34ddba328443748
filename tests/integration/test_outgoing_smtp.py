"""Outgoing email through a real SMTP server (aiosmtpd on 127.0.0.1): STARTTLS, TLS, AUTH, retries, failures."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from abook.config import parse_config
from abook.config.model import TrackingConfig
from abook.routing.outgoing import OutgoingService, emails_in_txn, queue_lengths_txn, resolve_stuck_txn
from abook.store import Store
from abook.store.models import Activity, ActivityParty, Email, EmailStatus, ParticipationType
from abook.threads import SyncRunner
from tests.unit.routing.conftest import Org, seed_org

T0 = 1796205600.0  # Wed, 02 Dec 2026 10:00:00 GMT

# aiosmtpd warns that implicit TLS + AUTH "does not require TLS": with implicit TLS the connection is TLS
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def pending_email(store: Store, org: Org, *, to: str | None = None, subject: str = "Your quote",
                  queue_sender: bool = False, owner: str | None = None) -> str:
    with store.transaction() as s:
        a = Activity(activitytypecode="email", owner_id=owner or org.jane, subject=subject,
                     description="Hello Carl,\nthe quote is attached.\n", statecode=1,
                     statuscode=EmailStatus.pending_send)
        a.email = Email(statuscode_cache=EmailStatus.pending_send, directioncode=True)
        if queue_sender:
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.sender, party_type="queue",
                                           party_id=org.support))
        else:
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.sender, party_type="systemuser",
                                           party_id=org.jane))
        if to:
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.to, addressused=to))
        else:
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.to, party_type="contact",
                                           party_id=org.contact))
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.cc, addressused="ann@partner.test"))
            a.parties.append(ActivityParty(participationtypemask=ParticipationType.bcc,
                                           addressused="boss@example.com"))
        s.add(a)
        s.flush()
        return a.id


def email_row(store: Store, activity_id: str) -> tuple[Email, Activity]:
    with store.transaction() as s:
        a = s.get(Activity, activity_id)
        assert a is not None and a.email is not None
        e = a.email
        s.expunge_all()
        return e, a


class Outgoing:
    def __init__(self, store: Store, smtp: dict[str, Any], max_attempts: int = 3) -> None:
        config = parse_config({"smtp": {**smtp, "max_attempts": max_attempts, "retry_backoff": 60.0},
                               "router": {"outgoing_interval": 30.0}})
        self.clock = Clock()
        self.clock.advance(T0)
        assert config.smtp is not None
        self.service = OutgoingService(store, SyncRunner(), self.clock, config.smtp, config.router, config.tracking)

    def stop(self) -> None:
        d = self.service.stopService()
        assert d.called and self.clock.getDelayedCalls() == []


@pytest.fixture
def org(store: Store) -> Org:
    return seed_org(store)


def test_starttls_auth_sends_exact_bytes_with_token_and_message_id(store, org, smtp_server) -> None:
    server = smtp_server("starttls")
    activity_id = pending_email(store, org)
    out = Outgoing(store, server.config())
    out.service.startService()
    assert len(server.received) == 1
    got = server.received[0]
    email, activity = email_row(store, activity_id)
    assert (got.mail_from, got.rcpt_tos, got.login, got.tls) == (
        "jane@example.com", ("carl@customer.test", "ann@partner.test", "boss@example.com"), "router", True)
    assert email.tracking_token == "CRM:0010001"
    assert got.data == email.raw
    assert got.data == (
        "From: Jane Doe <jane@example.com>\r\n"
        "To: carl@customer.test\r\n"
        "Cc: ann@partner.test\r\n"
        "Subject: Your quote CRM:0010001\r\n"
        "Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{email.message_id}>\r\n"
        "Content-Type: text/plain; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "MIME-Version: 1.0\r\n"
        "\r\n"
        "Hello Carl,\r\nthe quote is attached.\r\n"
    ).encode()
    assert email.message_id.endswith("@example.com")
    # a copy of the sent mail read later from a mailbox is recognised as this email, not a new one
    from abook.tracking.api import track_txn
    from abook.tracking.api import Owner, TrackRequest

    with store.transaction() as s:
        seen = track_txn(s, TrackRequest(raw=got.data, mailbox="jane", owner=Owner("systemuser", org.jane),
                                         arrival="router"), TrackingConfig())
    assert (seen.outcome, seen.activity_id) == ("sighting", activity_id)
    assert (email.statuscode_cache, activity.statuscode, activity.statecode) == (3, 3, 1)
    assert email.sent_at is not None and email.delivery_attempts == 1 and email.last_error is None
    out.clock.advance(30)
    assert len(server.received) == 1  # sent once
    out.stop()


def test_implicit_tls_and_a_queue_as_sender(store, org, smtp_server) -> None:
    server = smtp_server("tls")
    activity_id = pending_email(store, org, queue_sender=True, to="carl@customer.test")
    out = Outgoing(store, server.config())
    out.service.startService()
    assert email_row(store, activity_id)[0].last_error is None
    assert [r.tls for r in server.received] == [True]
    assert b"From: Support <support@example.com>\r\n" in server.received[0].data
    assert email_row(store, activity_id)[0].statuscode_cache == EmailStatus.sent
    out.stop()


def test_only_owners_using_the_router_are_sent(store, org, smtp_server) -> None:
    server = smtp_server("starttls")
    bobs = pending_email(store, org, owner=org.bob)  # bob's outgoing method is "client"
    out = Outgoing(store, server.config())
    out.service.startService()
    assert server.received == []
    assert email_row(store, bobs)[0].statuscode_cache == EmailStatus.pending_send
    out.stop()


def test_transient_refusal_retries_with_backoff_then_fails(store, org, smtp_server) -> None:
    server = smtp_server("starttls")
    activity_id = pending_email(store, org, to="someone@tempfail.test")
    out = Outgoing(store, server.config(), max_attempts=3)
    out.service.startService()
    email, _ = email_row(store, activity_id)
    assert (email.statuscode_cache, email.delivery_attempts) == (EmailStatus.pending_send, 1)
    assert "451 4.3.0 try again later" in email.last_error
    first_id = email.message_id
    out.clock.advance(30)  # not due: the first retry waits 60 s
    assert email_row(store, activity_id)[0].delivery_attempts == 1
    out.clock.advance(30)
    assert email_row(store, activity_id)[0].delivery_attempts == 2
    for _ in range(4):  # second retry after 120 s more: the third attempt fails for good
        out.clock.advance(30)
    email, activity = email_row(store, activity_id)
    assert (email.statuscode_cache, activity.statuscode, activity.statecode, email.delivery_attempts) == (8, 8, 0, 3)
    assert email.message_id == first_id and server.received == []
    out.stop()


@pytest.mark.parametrize("case", ["rejected", "bad_password", "no_starttls"])
def test_permanent_errors_fail_at_once(store, org, smtp_server, case: str) -> None:
    server = smtp_server("none" if case == "no_starttls" else "starttls")
    activity_id = pending_email(store, org, to="nobody@reject.test" if case == "rejected" else None)
    smtp = {"bad_password": server.config(password="wrong"), "no_starttls": server.config(security="starttls")
            }.get(case, server.config())
    out = Outgoing(store, smtp)
    out.service.startService()
    email, _ = email_row(store, activity_id)
    assert (email.statuscode_cache, email.delivery_attempts) == (EmailStatus.failed, 1)
    expected = {"rejected": "550 5.1.1 no such user", "bad_password": "SMTPAuthenticationError: 535",
                "no_starttls": "127.0.0.1 offers no STARTTLS; refusing to send in clear text"}[case]
    assert expected in email.last_error
    assert "wrong" not in email.last_error and "smtp-s3cret" not in email.last_error
    out.stop()


def test_connection_refused_is_transient(store, org) -> None:
    from tests.helpers import free_port

    activity_id = pending_email(store, org)
    out = Outgoing(store, {"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout": 5.0})
    out.service.startService()
    email, _ = email_row(store, activity_id)
    assert (email.statuscode_cache, email.delivery_attempts) == (EmailStatus.pending_send, 1)
    assert email.last_error.startswith("cannot connect to 127.0.0.1")
    out.stop()


def test_email_found_in_sending_is_reported_not_resent(store, org, smtp_server) -> None:
    server = smtp_server("starttls")
    activity_id = pending_email(store, org)
    with store.transaction() as s:  # a daemon claimed it and died before the server's answer was recorded
        from abook.routing.outgoing import claim_txn
        from abook.config.model import TrackingConfig
        from datetime import datetime, timezone

        (claimed,) = claim_txn(s, datetime.fromtimestamp(T0, timezone.utc), 10, TrackingConfig())
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        out = Outgoing(store, server.config())
        out.service.startService()
        out.clock.advance(30)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert server.received == []
    warnings = [e for e in events if e.get("activity_id") == activity_id and "not resent" in e["log_format"]]
    assert len(warnings) == 1
    with store.transaction() as s:
        assert [q.activity_id for q in emails_in_txn(s, EmailStatus.sending)] == [activity_id]
        assert queue_lengths_txn(s) == {"pending": 0, "sending": 1, "failed": 0}
        assert resolve_stuck_txn(s, activity_id, "retry")
    out.clock.advance(30)
    assert len(server.received) == 1
    assert f"Message-ID: <{claimed.message_id}>".encode() in server.received[0].data
    out.stop()


def test_two_daemons_claim_an_email_once(store, org) -> None:
    """The claim is a conditional UPDATE 6 -> 7: whoever comes second finds nothing to send."""
    from datetime import datetime, timezone

    from abook.config.model import TrackingConfig
    from abook.routing.outgoing import claim_txn

    activity_id = pending_email(store, org)
    now = datetime.fromtimestamp(T0, timezone.utc)
    with store.transaction() as a:
        first = claim_txn(a, now, 10, TrackingConfig())
    with store.transaction() as b:
        second = claim_txn(b, now, 10, TrackingConfig())
    assert [o.activity_id for o in first] == [activity_id] and second == ()
    assert email_row(store, activity_id)[0].statuscode_cache == EmailStatus.sending


@pytest.mark.parametrize("subject, sent", [
    # another token that begins with this one's characters: this one is still appended (the substring test
    # took it for this one, and a reply would have correlated to the other email)
    ("Re: your order CRM:00100012", "Re: your order CRM:00100012 CRM:0010001"),
    # this token, re-spaced and in lower case by a client: already there, not appended a second time
    ("Re: your quote crm: 0010001", "Re: your quote crm: 0010001"),
])
def test_the_token_is_appended_unless_the_subject_already_has_it(store, org, smtp_server, subject: str,
                                                                  sent: str) -> None:
    server = smtp_server("starttls")
    pending_email(store, org, subject=subject)
    out = Outgoing(store, server.config())
    out.service.startService()
    assert len(server.received) == 1
    assert f"\r\nSubject: {sent}\r\n".encode() in server.received[0].data
    out.stop()
