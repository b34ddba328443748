"""Fixtures for the router's unit tests: a small organisation, mail sources, a poller on a Clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from abook.config import parse_config
from abook.config.mail import MailboxConfig
from abook.routing.poller import PollerDeps
from abook.routing.pollers import MailPollService
from abook.store import Store
from abook.store.models import BusinessUnit, Contact, Queue, SystemUser
from abook.threads import SyncRunner
from tests.fakes.mail_source import FakeMailSource


@dataclass(frozen=True)
class Org:
    bu: str
    jane: str
    bob: str
    support: str
    contact: str


def seed_org(store: Store) -> Org:
    with store.transaction() as s:
        bu = BusinessUnit(name="Org")
        s.add(bu)
        s.flush()
        jane = SystemUser(domainname="jane.doe", fullname="Jane Doe", internalemailaddress="jane@example.com",
                          business_unit_id=bu.id, incoming_method="router", outgoing_method="router")
        bob = SystemUser(domainname="bob", fullname="Bob", internalemailaddress="bob@example.com",
                         business_unit_id=bu.id, incoming_method="forward", outgoing_method="client")
        support = Queue(name="Support", emailaddress="support@example.com", business_unit_id=bu.id,
                        incoming_method="forward", outgoing_method="router")
        s.add_all([jane, bob, support])
        s.flush()
        contact = Contact(firstname="Carl", lastname="Customer", emailaddress1="carl@customer.test",
                          owner_id=jane.id, owningbusinessunit_id=bu.id)
        s.add(contact)
        s.flush()
        return Org(bu.id, jane.id, bob.id, support.id, contact.id)


@pytest.fixture
def org(store: Store) -> Org:
    return seed_org(store)


def message(n: int, sender: str = "carl@customer.test", to: str = "jane@example.com", subject: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject or f'message {n}'}\r\n"
            f"Message-ID: <m{n}.{sender}@test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n").encode()


class HeldRunner:
    """A mail runner whose calls wait until the test releases them: a poll stays "in hand"."""

    def __init__(self) -> None:
        self.pending: list[tuple[defer.Deferred, Callable[..., Any], tuple]] = []

    def run(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self.pending.append((d, f, args))
        return d

    def release_all(self) -> None:
        while self.pending:
            self.release_next()

    def release_next(self) -> None:
        """Run the oldest held call (calls it leads to are held in turn)."""
        d, f, args = self.pending.pop(0)
        try:
            result = f(*args)
        except Exception as e:  # handed to the caller's errback, as a thread pool would
            d.errback(e)
        else:
            d.callback(result)


@dataclass
class Harness:
    clock: Clock
    sources: dict[str, FakeMailSource]
    service: MailPollService
    deps: PollerDeps

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def stop(self, release: Callable[[], None] | None = None) -> None:
        d = self.service.stopService()
        if release is not None:
            release()
        results: list[Any] = []
        d.addBoth(results.append)
        assert results == [None]
        assert self.clock.getDelayedCalls() == []


@pytest.fixture
def make_router(store: Store) -> Callable[..., Harness]:
    made: list[Harness] = []

    def make(mailboxes: list[dict], holder: str = "test-daemon", router: dict | None = None,
             sources: dict[str, FakeMailSource] | None = None, start: bool = True, mail: Any = None) -> Harness:
        config = parse_config({"mailboxes": mailboxes, "router": router or {}})
        sources = sources if sources is not None else {m["name"]: FakeMailSource() for m in mailboxes}
        clock = Clock()

        def factory(mb: MailboxConfig) -> FakeMailSource:
            if mb.name not in sources:
                sources[mb.name] = FakeMailSource()
            return sources[mb.name]

        deps = PollerDeps(store=store, mail=mail or SyncRunner(), clock=clock, router=config.router,
                          tracking=config.tracking, source_factory=factory, holder=holder)
        h = Harness(clock, sources, MailPollService(config.mailboxes, deps), deps)
        if start:
            h.service.startService()
        made.append(h)
        return h

    yield make  # type: ignore[misc]
    for h in made:
        if h.service.running:
            h.stop()
