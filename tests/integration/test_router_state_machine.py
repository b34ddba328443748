"""Random faults against the real router: a Hypothesis state machine drives a fake IMAP and a fake POP3 server
(tests/fakes, real sockets on 127.0.0.1) through random sequences of new mail, dropped connections (before
or after a command took effect), UIDVALIDITY changes, reassigned UIDLs, messages expunged by another
client, server restarts and router restarts, while the real pollers (``MailPollService`` with
``ImapSource`` and ``Pop3Source``, on a Clock, the store on SQLite) poll both.

Each step is a poll interval in which several faults are drawn independently, so that the interleavings
that matter (a mark lost, then the folder rebuilt before it is retried) come up in a few examples. After
every step: no message is tracked twice, and POP3 never deleted a message it had not tracked. At the
end, faults stop and the router polls until it settles: every message still in a mailbox is tracked
exactly once and marked there (IMAP: the keyword; POP3 with delete_after_tracking: deleted), and both
mailboxes are healthy, so new mail is always read in the end.

Examples are few (``ABOOK_HYPOTHESIS_SCALE`` multiplies them): the suite runs it in about 20 s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from sqlalchemy import func, select
from twisted.internet.task import Clock

from abook.config import parse_config
from abook.routing.poller import PollerDeps, open_source_blocking
from abook.routing.pollers import MailPollService
from abook.store import Store, make_engine, schema
from abook.store.models import Email, EmailSighting, MailboxState
from abook.threads import SyncRunner
from tests.fakes.fault_server import message
from tests.fakes.imap_server import FakeImapServer
from tests.fakes.pop3_server import FakePop3Server
from tests.unit.routing.conftest import seed_org

SCALE = float(os.environ.get("ABOOK_HYPOTHESIS_SCALE", "1"))
INTERVAL = 1.0
MAX_BACKOFF = 4.0
#: ticks of the Clock (each past any back-off) the router gets to settle once faults stop
SETTLE_TICKS = 12
IMAP_COMMANDS = ["EXAMINE", "SELECT", "SEARCH", "FETCH", "STORE"]
POP3_COMMANDS = ["UIDL", "LIST", "TOP", "DELE", "QUIT"]
#: a fault that happens in about one step of four
LIKELY = st.integers(0, 3).map(lambda n: n == 0)

_template: list[Path] = []


def template_store() -> Path:
    """A migrated SQLite store with the routing tests' organisation, made once and copied per example."""
    if not _template:
        path = Path(tempfile.mkdtemp(prefix="abook-sm-")) / "template.sqlite3"
        store = Store(make_engine(f"sqlite:///{path}"))
        schema.upgrade(store.engine)
        seed_org(store)
        store.dispose()
        _template.append(path)
    return _template[0]


class RouterUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="abook-sm-"))
        shutil.copy(template_store(), self.dir / "abook.sqlite3")
        self.store = Store(make_engine(f"sqlite:///{self.dir / 'abook.sqlite3'}"))
        self.imap = FakeImapServer().start()
        self.pop3 = FakePop3Server().start()
        self.clock = Clock()
        common = {"owner": "jane.doe", "host": "127.0.0.1", "security": "none", "username": "jane",
                  "password": "pw-jane", "interval": INTERVAL, "timeout": 5.0, "batch_size": 3}
        config = parse_config({
            "mailboxes": [{"name": "imap", "type": "imap", "port": self.imap.port, **common},
                          {"name": "pop3", "type": "pop3", "port": self.pop3.port, "delete_after_tracking": True,
                           **common}],
            "router": {"max_backoff": MAX_BACKOFF, "loop_max_messages": 100000}})
        self.deps = PollerDeps(store=self.store, mail=SyncRunner(), clock=self.clock, router=config.router,
                               tracking=config.tracking, source_factory=open_source_blocking, holder="state-machine")
        self.mailboxes = config.mailboxes
        self.service: MailPollService | None = None
        self.serial = 0
        #: Message-ID (as delivered, with brackets) -> mailbox
        self.delivered: dict[str, str] = {}

    @initialize()
    def start_router(self) -> None:
        self.service = MailPollService(self.mailboxes, self.deps)
        self.service.startService()

    # -- what happens: one step is a poll interval, with several faults drawn independently

    @rule(imap_new=st.integers(0, 2), pop3_new=st.integers(0, 2),
          imap_drop=st.none() | st.tuples(st.sampled_from(IMAP_COMMANDS), st.sampled_from(["before", "after"])),
          pop3_drop=st.none() | st.tuples(st.sampled_from(POP3_COMMANDS), st.sampled_from(["before", "after"])),
          rebuild=LIKELY, renumber=LIKELY, imap_expunge=st.none() | st.integers(0, 1000),
          pop3_expunge=st.none() | st.integers(0, 1000), servers_restart=LIKELY, router_restart=LIKELY,
          seconds=st.sampled_from([INTERVAL, MAX_BACKOFF + 1]))
    def poll_interval(self, imap_new: int, pop3_new: int, imap_drop: tuple[str, str] | None,
                      pop3_drop: tuple[str, str] | None, rebuild: bool, renumber: bool, imap_expunge: int | None,
                      pop3_expunge: int | None, servers_restart: bool, router_restart: bool, seconds: float) -> None:
        """New mail arrives and faults are armed; time passes (the router polls); then the servers change under
        it before the next poll: the IMAP folder rebuilt (UIDVALIDITY), POP3 UIDLs reassigned, a message
        expunged by another client, the servers or the router restarted."""
        for box, count in (("imap", imap_new), ("pop3", pop3_new)):
            for _ in range(count):
                self.serial += 1
                self.delivered[f"<{box}-{self.serial}@customer.test>"] = box
                (self.imap if box == "imap" else self.pop3).deliver(message(self.serial, tag=box))
        if imap_drop:
            self.imap.fail(*imap_drop[:1], when=imap_drop[1])
        if pop3_drop:
            self.pop3.fail(*pop3_drop[:1], when=pop3_drop[1])
        self.clock.advance(seconds)
        if rebuild:
            self.imap.bump_validity()
        if renumber:
            self.pop3.renumber()
        if imap_expunge is not None:
            with self.imap.lock:
                uids = [m.uid for m in self.imap.messages]
            if uids:
                self.imap.expunge(uids[imap_expunge % len(uids)])
        if pop3_expunge is not None:
            ids = self.pop3.message_ids()
            if ids:
                self.pop3.expunge(ids[pop3_expunge % len(ids)])
        if servers_restart:
            self.imap.drop_connections()
            self.pop3.drop_connections()
        if router_restart:
            assert self.service is not None
            self.service.stopService()
            self.service = MailPollService(self.mailboxes, self.deps)
            self.service.startService()

    def tick(self, seconds: float = INTERVAL) -> None:
        self.clock.advance(seconds)

    # -- what must always hold

    @invariant()
    def nothing_tracked_twice(self) -> None:
        with self.store.transaction() as s:
            ids = s.scalars(select(Email.message_id)).all()
        assert len(ids) == len(set(ids)), sorted(ids)
        assert {f"<{i}>" for i in ids} <= set(self.delivered)

    @invariant()
    def pop3_deletes_only_tracked_mail(self) -> None:
        with self.pop3.lock:
            deleted = list(self.pop3.deleted)
        assert len(deleted) == len(set(deleted)), deleted
        assert set(deleted) <= self.tracked_ids(), (deleted, self.tracked_ids())

    def tracked_ids(self) -> set[str]:
        with self.store.transaction() as s:
            return {f"<{i}>" for i in s.scalars(select(Email.message_id))}

    # -- the end: faults stop, the router settles

    def teardown(self) -> None:
        try:
            if self.service is not None:
                self.settle()
        finally:
            if self.service is not None and self.service.running:
                self.service.stopService()
            self.imap.stop()
            self.pop3.stop()
            self.store.dispose()
            shutil.rmtree(self.dir, ignore_errors=True)

    def settle(self) -> None:
        self.imap.clear_faults()
        self.pop3.clear_faults()
        for _ in range(SETTLE_TICKS):
            self.tick(MAX_BACKOFF + 1)
            if self.settled():
                break
        tracked = self.tracked_ids()
        flags = self.imap.flags()
        assert set(flags) <= tracked, ("IMAP mail never read", set(flags) - tracked)
        assert all("$CRMTracked" in f for f in flags.values()), ("IMAP mail never marked", flags)
        assert self.pop3.message_ids() == [], ("POP3 mail never tracked or deleted", self.pop3.message_ids())
        with self.store.transaction() as s:
            counts = dict(s.execute(select(Email.message_id, func.count(EmailSighting.id))
                                    .join(EmailSighting, EmailSighting.email_id == Email.activity_id)
                                    .group_by(Email.message_id)).all())
            unmarked = s.execute(select(EmailSighting.mailbox, EmailSighting.external_id)
                                 .where(EmailSighting.marked.is_(False),
                                        EmailSighting.external_id.is_not(None))).all()
            states = {r.name: (r.last_error, r.failures_in_row) for r in s.scalars(select(MailboxState))}
        assert all(n == 1 for n in counts.values()), counts
        assert unmarked == [], unmarked
        assert states == {"imap": (None, 0), "pop3": (None, 0)}, states
        with self.store.transaction() as s:
            marked = set(s.scalars(select(Email.message_id)
                                   .join(EmailSighting, EmailSighting.email_id == Email.activity_id)
                                   .where(EmailSighting.mailbox == "imap", EmailSighting.marked.is_(True))))
        assert {f"<{i}>" for i in marked} >= set(flags), "a message in the folder has no marked sighting"

    def settled(self) -> bool:
        flags = self.imap.flags()
        with self.store.transaction() as s:
            healthy = s.scalar(select(func.count()).select_from(MailboxState).where(
                MailboxState.last_error.is_(None), MailboxState.failures_in_row == 0)) == 2
        return (healthy and set(flags) <= self.tracked_ids() and all("$CRMTracked" in f for f in flags.values())
                and self.pop3.message_ids() == [])


RouterUnderFaults.TestCase.settings = settings(
    max_examples=max(1, int(20 * SCALE)), stateful_step_count=15, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_router_under_random_faults = RouterUnderFaults.TestCase
