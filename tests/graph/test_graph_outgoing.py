"""Replay: the outgoing queue (OutgoingService on a Clock, the store on SQLite) sending Pending Send email
through Graph ``sendMail`` with MIME, never twice: a lost reply or an admin's retry finds the message
in Sent Items by its Message-ID instead of sending it again."""

from __future__ import annotations

from typing import Any

import pytest

from abook.routing.outgoing import resolve_stuck_txn
from abook.store import Store
from abook.store.models import Activity, EmailStatus
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.integration.test_outgoing_smtp import Outgoing, email_row, org, pending_email  # noqa: F401 (fixture)


def graph_outgoing(store: Store, server: GraphServer, secret: str = CLIENT_SECRET) -> Outgoing:
    """The SMTP tests' outgoing service on a Clock, with ``transport = "graph"``."""
    r = server.responder
    graph = {"tenant": TENANT, "client_id": CLIENT_ID, "client_secret": secret, "authority_host": r.base,
             "graph_url": r.graph_url, "max_retry_wait": 0}
    return Outgoing(store, {"transport": "graph", "graph": graph, "ca_file": server.ca_file, "timeout": 10.0})


@pytest.fixture
def jane_box(graph_server: GraphServer) -> Any:
    graph_server.responder.add_mailbox("jane@example.com")
    box = graph_server.responder.store.mailboxes["jane@example.com"]
    box.sent.clear()
    return box


def test_sent_as_the_senders_mailbox_with_bcc_in_the_mime(store, org, graph_server, jane_box) -> None:
    activity = pending_email(store, org)
    out = graph_outgoing(store, graph_server)
    out.service.startService()
    email, _ = email_row(store, activity)
    assert email.statuscode_cache == EmailStatus.sent
    (sent,) = jane_box.sent
    assert sent == b"Bcc: boss@example.com\r\n" + email.raw  # Bcc only for Exchange, which strips it
    out.stop()


def test_a_lost_reply_is_not_sent_twice(store, org, graph_server, jane_box) -> None:
    activity = pending_email(store, org, to="carl@customer.test")
    graph_server.responder.lose_reply("/sendMail")
    out = graph_outgoing(store, graph_server)
    out.service.startService()
    email, _ = email_row(store, activity)
    assert email.statuscode_cache == EmailStatus.pending_send and "ConnectionError" in email.last_error
    assert len(jane_box.sent) == 1  # it did go out; the reply was lost
    out.clock.advance(60)
    email, _ = email_row(store, activity)
    assert email.statuscode_cache == EmailStatus.sent
    assert len(jane_box.sent) == 1  # found in Sent Items by its Message-ID: not sent again
    out.stop()


def test_throttled_send_is_retried_later_and_sent_once(store, org, graph_server, jane_box) -> None:
    activity = pending_email(store, org, to="carl@customer.test")
    graph_server.responder.throttle("/sendMail", status=429, retry_after=30)
    out = graph_outgoing(store, graph_server)
    out.service.startService()
    email, _ = email_row(store, activity)
    assert email.statuscode_cache == EmailStatus.pending_send and "429 TooManyRequests" in email.last_error
    assert jane_box.sent == []
    out.clock.advance(60)
    assert email_row(store, activity)[0].statuscode_cache == EmailStatus.sent and len(jane_box.sent) == 1
    out.stop()


def test_an_admins_retry_of_a_stuck_email_that_had_left_sends_nothing(store, org, graph_server, jane_box) -> None:
    activity = pending_email(store, org, to="carl@customer.test")
    out = graph_outgoing(store, graph_server)
    out.service.startService()
    out.stop()
    assert len(jane_box.sent) == 1
    with store.transaction() as s:  # as if the daemon had died after sendMail, before recording it
        a = s.get(Activity, activity)
        a.email.statuscode_cache = a.statuscode = EmailStatus.sending
    with store.transaction() as s:  # `abook outgoing retry ID`
        assert resolve_stuck_txn(s, activity, "retry")
    again = graph_outgoing(store, graph_server)
    again.service.startService()
    assert email_row(store, activity)[0].statuscode_cache == EmailStatus.sent
    assert len(jane_box.sent) == 1
    again.stop()


def test_a_refused_app_fails_the_email_at_once(store, org, graph_server, jane_box) -> None:
    activity = pending_email(store, org, to="carl@customer.test")
    out = graph_outgoing(store, graph_server, secret="not-the-secret")
    out.service.startService()
    email, _ = email_row(store, activity)
    assert email.statuscode_cache == EmailStatus.failed and "invalid_client" in email.last_error
    assert "not-the-secret" not in email.last_error and jane_box.sent == []
    out.stop()
