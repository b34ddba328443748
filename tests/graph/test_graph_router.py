"""Replay: the real router (MailPollService on a Clock, the store on SQLite) polling an Exchange Online
mailbox through the real Graph backend and the Graph responder: Inbox and Sent Items tracked once,
paging, our own mark not taken for new mail, 410 resync without duplicates, 429 back-off in the health."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from abook.mailbox.graph import GraphSource
from abook.store import Store
from abook.store.models import Email, EmailSighting, MailboxState
from tests.fixtures.graph import GraphServer
from tests.graph.harness import CATEGORY, GraphHarness
from tests.unit.routing.conftest import make_router, message, org  # noqa: F401 (fixtures)


@pytest.fixture
def jane(graph_server: GraphServer) -> GraphHarness:
    return GraphHarness(graph_server)


def _router(make_router: Any, h: GraphHarness, router: dict | None = None, **extra: Any) -> Any:
    table = h.table(name="jane", owner="jane.doe", interval=60.0, **extra)
    source = GraphSource(h.config(**{k: v for k, v in table.items() if k != "graph"}))
    return make_router([table], sources={"jane": source}, start=False, router={"max_backoff": 900.0, **(router or {})})


def _emails(store: Store) -> list[tuple[str, bool]]:
    with store.transaction() as s:
        return sorted((r.message_id, r.directioncode) for r in s.execute(select(Email.message_id, Email.directioncode)))


def _marked(store: Store) -> int:
    with store.transaction() as s:
        return s.scalar(select(func.count()).select_from(EmailSighting).where(EmailSighting.marked.is_(True))) or 0


def test_inbox_and_sent_items_are_tracked_once_and_marked(store, org, make_router, jane: GraphHarness) -> None:
    for n in range(4):
        jane.responder.deliver(jane.address, message(n))
    jane.responder.deliver(jane.address, message(9, sender="jane@example.com", to="carl@customer.test"), "sentitems")
    router = _router(make_router, jane, batch_size=2)
    mark = len(jane.responder.requests)
    router.service.startService()
    assert [m for m, _ in _emails(store)] == [f"m{n}.{s}@test" for n, s in
                                             [(0, "carl@customer.test"), (1, "carl@customer.test"),
                                              (2, "carl@customer.test"), (3, "carl@customer.test"),
                                              (9, "jane@example.com")]]
    assert dict(_emails(store))["m9.jane@example.com@test"] is True, _emails(store)  # sent by the owner: outgoing
    assert _marked(store) == 5
    store_messages = jane.responder.store.in_folder(jane.address, "inbox")
    assert all(CATEGORY in m.categories for m in store_messages)
    deltas = [r for r in jane.responder.requests[mark:] if r.path.endswith("/delta")]
    assert all(r.headers["Prefer"].startswith('IdType="ImmutableId", odata.maxpagesize=') for r in deltas)
    # the next poll: our own marks come back from delta as updates, and are not new mail
    mark = len(jane.responder.requests)
    router.advance(60)
    assert len(_emails(store)) == 5
    assert [r for r in jane.responder.since(mark) if r.endswith("/$value")] == []
    with store.transaction() as s:
        row = s.get(MailboxState, "jane")
        assert (row.messages_tracked, row.last_error) == (5, None)
        assert '"inbox": "https://127.0.0.1' in row.cursor and "$deltatoken" in row.cursor
    router.stop()


def test_sent_items_are_outgoing_and_never_held_as_a_loop(store, org, make_router, jane: GraphHarness) -> None:
    for n in range(5):  # the owner writes to one customer five times: no mail loop
        jane.responder.deliver(jane.address, message(n, sender="jane@example.com", to="carl@customer.test"),
                               "sentitems")
    router = _router(make_router, jane, router={"loop_max_messages": 2})
    router.service.startService()
    assert [d for _, d in _emails(store)] == [True] * 5
    router.stop()


def test_expired_delta_state_reads_again_without_duplicates(store, org, make_router, jane: GraphHarness) -> None:
    for n in range(3):
        jane.responder.deliver(jane.address, message(n))
    router = _router(make_router, jane)
    router.service.startService()
    assert len(_emails(store)) == 3
    # a message tracked but left unmarked (a crash between commit and mark) must not come twice either
    m0 = jane.responder.store.in_folder(jane.address, "inbox")[0]
    m0.categories, m0.extended = [], {}
    jane.responder.expire_delta(jane.address)
    m3 = jane.responder.deliver(jane.address, message(3))
    jane.responder.repeat_next_entry()  # Graph may hand out an entry twice in a round
    mark = len(jane.responder.requests)
    router.advance(60)
    # read again: only the unmarked message and the new one are downloaded, each once
    assert [r.split("/")[-2] for r in jane.responder.since(mark) if r.endswith("/$value")] == [m0.id, m3]
    assert [m for m, _ in _emails(store)] == [f"m{n}.carl@customer.test@test" for n in range(4)]
    with store.transaction() as s:
        row = s.get(MailboxState, "jane")
        assert (row.last_error, row.failures_in_row) == (None, 0)
    assert all(not m.deleted and m.folder == "inbox" for m in jane.responder.store.in_folder(jane.address, "inbox"))
    router.stop()


def test_long_throttle_backs_the_mailbox_off_for_retry_after(store, org, make_router, jane: GraphHarness) -> None:
    jane.responder.deliver(jane.address, message(1))
    jane.responder.throttle("/messages/delta", status=429, retry_after=300)
    router = _router(make_router, jane)
    router.service.startService()
    with store.transaction() as s:
        row = s.get(MailboxState, "jane")
        assert row.last_error.startswith("RateLimited: jane: Graph 429 TooManyRequests")
        assert (row.failures_in_row, row.consecutive_failures, row.enabled) == (1, 0, True)
    mark = len(jane.responder.requests)
    router.advance(60)  # the interval has passed, the server's Retry-After has not: not polled
    router.advance(60)
    assert jane.responder.requests[mark:] == []
    router.advance(180)
    assert len(_emails(store)) == 1
    with store.transaction() as s:
        assert s.get(MailboxState, "jane").last_error is None
    router.stop()
