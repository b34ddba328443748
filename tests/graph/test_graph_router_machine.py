"""Random faults against the real router polling an Exchange Online mailbox through the Graph backend and
the responder (a Hypothesis state machine, as tests/integration/test_router_state_machine.py does for IMAP
and POP3): new mail in the Inbox and Sent Items, throttling (429/503 with Retry-After) on any request,
replies lost after Graph carried a request out (a mark, a delta page, a download), delta states expired
(410), entries repeated in a round, messages deleted by the user, router restarts.

After every step nothing is tracked twice. At the end the faults stop and the router settles: every
message still in the mailbox is tracked exactly once and carries the tracked category, and the mailbox
is healthy.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select
from twisted.internet.task import Clock

from abook.config import parse_config
from abook.mailbox import graph_client
from abook.routing.poller import PollerDeps, open_source_blocking
from abook.routing.pollers import MailPollService
from abook.store import Store, make_engine
from abook.store.models import Email, EmailSighting, MailboxState
from abook.threads import SyncRunner
from tests.fixtures.graph import GraphServer
from tests.graph.harness import CATEGORY, GraphHarness
from tests.integration.test_router_state_machine import template_store
from tests.unit.routing.conftest import message

INTERVAL = 1.0
MAX_BACKOFF = 4.0
PATHS = ["/messages/delta", "/$value", "/messages/"]
LIKELY = st.integers(0, 3).map(lambda n: n == 0)


class GraphRouterUnderFaults(RuleBasedStateMachine):
    server: GraphServer = None  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="abook-graph-sm-"))
        shutil.copy(template_store(), self.dir / "abook.sqlite3")
        self.store = Store(make_engine(f"sqlite:///{self.dir / 'abook.sqlite3'}"))
        self.h = GraphHarness(self.server)
        self.r = self.h.responder
        self.clock = Clock()
        table = self.h.table(name="jane", owner="jane.doe", interval=INTERVAL, batch_size=3,
                             graph={"max_retry_wait": 0})
        config = parse_config({"mailboxes": [table],
                               "router": {"max_backoff": MAX_BACKOFF, "loop_max_messages": 100000}})
        self.deps = PollerDeps(store=self.store, mail=SyncRunner(), clock=self.clock, router=config.router,
                               tracking=config.tracking, source_factory=open_source_blocking, holder="graph-machine")
        self.mailboxes = config.mailboxes
        self.service: MailPollService | None = None
        self.serial = 0

    @initialize()
    def start_router(self) -> None:
        self.service = MailPollService(self.mailboxes, self.deps)
        self.service.startService()

    @rule(inbox_new=st.integers(0, 2), sent_new=st.integers(0, 1),
          throttle=st.none() | st.tuples(st.sampled_from(PATHS), st.sampled_from([429, 503])),
          lose=st.none() | st.sampled_from(PATHS), expire=LIKELY, repeat=LIKELY,
          user_delete=st.none() | st.integers(0, 1000), router_restart=LIKELY,
          seconds=st.sampled_from([INTERVAL, MAX_BACKOFF + 1]))
    def poll_interval(self, inbox_new: int, sent_new: int, throttle: tuple[str, int] | None, lose: str | None,
                      expire: bool, repeat: bool, user_delete: int | None, router_restart: bool,
                      seconds: float) -> None:
        for folder, count in (("inbox", inbox_new), ("sentitems", sent_new)):
            for _ in range(count):
                self.serial += 1
                sender = "jane@example.com" if folder == "sentitems" else "carl@customer.test"
                self.r.deliver(self.h.address, message(self.serial, sender=sender), folder)
        if throttle:
            self.r.throttle(throttle[0], status=throttle[1], retry_after=1)
        if lose:
            self.r.lose_reply(lose)
        if repeat:
            self.r.repeat_next_entry()
        self.clock.advance(seconds)
        if expire:
            self.r.expire_delta(self.h.address)
        if user_delete is not None:
            with self.r.lock:
                inbox = self.r.store.in_folder(self.h.address, "inbox")
                if inbox:
                    self.r.store.move(inbox[user_delete % len(inbox)], "deleteditems")
        if router_restart:
            assert self.service is not None
            self.service.stopService()
            self.service = MailPollService(self.mailboxes, self.deps)
            self.service.startService()

    @invariant()
    def nothing_tracked_twice(self) -> None:
        with self.store.transaction() as s:
            ids = s.scalars(select(Email.message_id)).all()
        assert len(ids) == len(set(ids)), sorted(ids)

    def teardown(self) -> None:
        try:
            if self.service is not None:
                self.settle()
        finally:
            if self.service is not None and self.service.running:
                self.service.stopService()
            with self.r.lock:
                self.r._throttles.clear()
                self.r._lose.clear()
                self.r.store.repeat_next = False
            self.store.dispose()
            shutil.rmtree(self.dir, ignore_errors=True)

    def settle(self) -> None:
        with self.r.lock:
            self.r._throttles.clear()
            self.r._lose.clear()
        for _ in range(12):
            self.clock.advance(MAX_BACKOFF + 1)
        left = [m for f in ("inbox", "sentitems") for m in self.r.store.in_folder(self.h.address, f)]
        with self.store.transaction() as s:
            tracked = {f"<{i}>" for i in s.scalars(select(Email.message_id))}
            counts = dict(s.execute(select(Email.message_id, func.count(EmailSighting.id))
                                    .join(EmailSighting, EmailSighting.email_id == Email.activity_id)
                                    .group_by(Email.message_id)).all())
            state = s.get(MailboxState, "jane")
            health = (state.last_error, state.failures_in_row)
        assert {m.header("Message-ID") for m in left} <= tracked, "mail never read"
        assert all(CATEGORY in m.categories for m in left), "mail never marked"
        assert all(n == 1 for n in counts.values()), counts
        assert health == (None, 0), health


GraphRouterUnderFaults.TestCase.settings = settings(max_examples=10, stateful_step_count=12, deadline=None,
                                                    suppress_health_check=list(HealthCheck))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_router_under_graph_faults(graph_server: GraphServer) -> None:
    graph_client._auths.clear()
    GraphRouterUnderFaults.server = graph_server
    GraphRouterUnderFaults.TestCase().runTest()
