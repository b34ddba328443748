"""What the router tracks, read over real sockets from fake IMAP servers (tests/fakes/imap_server.py) into a
real store: the poll on a Clock with its mail calls run inline, so the test decides which mailbox is read
first. The owner's incoming method, replies read before the email they answer, the untracked rows the
router writes itself, and one parse per message."""

from __future__ import annotations

import email.feedparser
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
from sqlalchemy import select
from twisted.internet.task import Clock

from abook.config import parse_config
from abook.mailbox.registry import open_source
from abook.routing.poller import PollerDeps
from abook.routing.pollers import MailPollService
from abook.store import Store
from abook.store.models import Activity, Email, SystemUser, UntrackedMessage
from abook.threads import SyncRunner
from tests.fakes.imap_server import FakeImapServer
from tests.unit.routing.conftest import Org, seed_org

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def org(store: Store) -> Org:
    return seed_org(store)


@pytest.fixture
def imap() -> Iterator[Any]:
    servers: list[FakeImapServer] = []

    def start() -> FakeImapServer:
        servers.append(FakeImapServer().start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def mailbox(name: str, owner: str, server: FakeImapServer) -> dict[str, Any]:
    return {"name": name, "type": "imap", "owner": owner, "host": "127.0.0.1", "port": server.port,
            "security": "none", "username": name, "password": f"pw-{name}", "interval": 60.0, "timeout": 5.0}


def poll(store: Store, *mailboxes: dict[str, Any], router: dict[str, Any] | None = None) -> None:
    """One poll of each mailbox, in the order given, each to its end (the mail calls run inline)."""
    config = parse_config({"mailboxes": list(mailboxes), "router": router or {}})
    clock = Clock()
    clock.advance(T0)
    deps = PollerDeps(store=store, mail=SyncRunner(), clock=clock, router=config.router, tracking=config.tracking,
                      source_factory=open_source, holder="test")
    service = MailPollService(config.mailboxes, deps)
    service.startService()
    stopped: list[Any] = []
    service.stopService().addBoth(stopped.append)
    assert stopped == [None]


def mail(message_id: str, sender: str, to: str, subject: str, *extra: str) -> bytes:
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{message_id}>",
               "Date: Mon, 07 Dec 2026 11:00:00 +0000", *extra]
    return ("\r\n".join(headers) + "\r\n\r\nText.\r\n").encode()


def email_of(store: Store, message_id: str) -> tuple[str | None, str | None, str | None]:
    """(correlation method, regarding type, regarding id) of the tracked email with this Message-ID."""
    with store.transaction() as s:
        row = s.execute(select(Email.correlation_method, Activity.regarding_type, Activity.regarding_id)
                        .join(Activity, Activity.id == Email.activity_id).where(Email.message_id == message_id)).one()
        return tuple(row)  # type: ignore[return-value]


def untracked(store: Store) -> list[tuple[str, str | None, str | None, str | None, str | None]]:
    with store.transaction() as s:
        return [tuple(r) for r in s.execute(  # type: ignore[misc]
            select(UntrackedMessage.reason, UntrackedMessage.message_id, UntrackedMessage.sender,
                   UntrackedMessage.subject, UntrackedMessage.detail).order_by(UntrackedMessage.id))]


def test_a_mailbox_whose_owner_takes_no_incoming_mail_tracks_nothing(store, org, imap) -> None:
    with store.transaction() as s:
        s.get(SystemUser, org.jane).incoming_method = "none"
    server = imap()
    server.deliver(mail("one@customer.test", "carl@customer.test", "jane@example.com", "hello"))
    poll(store, mailbox("jane", "jane.doe", server))
    with store.transaction() as s:
        assert s.scalars(select(Email.activity_id)).all() == []
    assert untracked(store) == [("disabled", "one@customer.test", "carl@customer.test", "hello",
                                 "systemuser jane.doe: incoming method is 'none'")]
    assert all("$CRMTracked" not in flags for flags in server.flags().values())  # left as it was


def _crm_email_regarding_the_contact(store: Store, org: Org) -> None:
    """Email the CRM sent to Carl regarding his contact record, Message-ID <crm-0@example.com>."""
    with store.transaction() as s:
        a = Activity(activitytypecode="email", owner_id=org.jane, subject="Your quote", statecode=1, statuscode=3,
                     regarding_type="contact", regarding_id=org.contact)
        a.email = Email(message_id="crm-0@example.com", message_key="m:crm-0", directioncode=True, statuscode_cache=3)
        s.add(a)


PARENT = mail("parent@customer.test", "carl@customer.test", "jane@example.com", "Re: Your quote",
              "In-Reply-To: <crm-0@example.com>")
#: a colleague's answer to Carl's reply, in Bob's mailbox only; its References name only Carl's reply
REPLY = mail("reply@partner.test", "ann@partner.test", "bob@example.com, carl@customer.test", "Re: Re: Your quote",
             "In-Reply-To: <parent@customer.test>", "References: <parent@customer.test>")


@pytest.mark.parametrize("order", ["parent first", "reply first", "reply first, one batch"])
def test_a_reply_read_before_the_email_it_answers_takes_its_regarding_record(store, org, imap, order: str) -> None:
    _crm_email_regarding_the_contact(store, org)
    jane, bob = imap(), imap()
    if order == "reply first, one batch":
        jane.deliver(REPLY)
        jane.deliver(PARENT)
        poll(store, mailbox("jane", "jane.doe", jane))
    else:
        jane.deliver(PARENT)
        bob.deliver(REPLY)
        mailboxes = [mailbox("jane", "jane.doe", jane), mailbox("bob", "bob", bob)]
        poll(store, *(mailboxes if order == "parent first" else reversed(mailboxes)))
    assert email_of(store, "parent@customer.test") == ("in_reply_to", "contact", org.contact)
    assert email_of(store, "reply@partner.test") == ("in_reply_to", "contact", org.contact)


def test_untracked_rows_the_router_writes_read_like_the_engines(store, org, imap) -> None:
    """Loop damping's rows went through a writer of their own: Message-ID with its <>, subject undecoded."""
    server = imap()
    for n in range(3):
        server.deliver(mail(f"loop-{n}@customer.test", "Carl <Carl@Customer.test>", "jane@example.com",
                            "=?utf-8?q?caf=C3=A9?="))
    poll(store, mailbox("jane", "jane.doe", server), router={"loop_max_messages": 1})
    detail = "more than 1 messages from this sender within the loop window"
    assert untracked(store) == [("loop", f"loop-{n}@customer.test", "Carl@Customer.test", "café", detail)
                                for n in (1, 2)]


def test_each_message_is_parsed_once_between_the_mailbox_and_the_store(store, org, imap, monkeypatch) -> None:
    parses: list[int] = []
    close = email.feedparser.FeedParser.close

    def counted(self: Any) -> Any:
        parses.append(1)
        return close(self)

    monkeypatch.setattr(email.feedparser.FeedParser, "close", counted)
    server = imap()
    for n in range(5):
        server.deliver(mail(f"once-{n}@customer.test", "carl@customer.test", "jane@example.com", f"n {n}"))
    poll(store, mailbox("jane", "jane.doe", server))
    with store.transaction() as s:
        assert len(s.scalars(select(Email.activity_id)).all()) == 5
    assert len(parses) == 5
