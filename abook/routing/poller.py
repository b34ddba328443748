"""MailPollService: one poller per mailbox, each on its own LoopingCall and interval.

A tick: claim the mailbox's lease -> read changes since the stored cursor and fetch them (mail pool) ->
one store transaction tracks them and saves the new cursor (``batch.commit_batch_txn``) -> mark each
message (mail pool) -> mark its sighting (store). LoopingCall waits for the tick's Deferred, so polls of
one mailbox never overlap; a tick catches everything, records it (``health``), backs off and never
re-raises, so one broken mailbox never stops the loop or the others.

``ABOOK_TEST_CRASH_AT`` (after_fetch, after_commit, before_mark, after_mark) is a test-only hook: the
process exits at once at that step, so the exactly-once test can kill it between any two steps.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from abook.config.mail import EwsOptions, MailboxConfig
from abook.config.model import TrackingConfig
from abook.config.base import Secret
from abook.config.routing import RouterConfig, UserMailboxTemplate
from abook.mailbox.errors import CursorInvalid, MailboxError, MessageGone
from abook.mailbox.interfaces import IMailSource, MessageRef
from abook.routing import health, state
from abook.routing.batch import (
    BatchResult, BatchSpec, Fetched, LeaseLost, MessageFailed, PostAction, commit_batch_txn,
)
from abook.tracking.api import mark_sighting_txn
from abook.store import Store
from abook.threads import IBlockingRunner
from abook.tracking.api import Owner

SourceFactory = Callable[[MailboxConfig], IMailSource]


def open_source_blocking(config: MailboxConfig) -> IMailSource:
    """The configured backend (branch ``mailboxes``), imported only when a mailbox is polled."""
    from abook.mailbox.registry import open_source

    return open_source(config)


def crash_point(step: str) -> None:
    """TEST ONLY: exit the process at ``step`` when ABOOK_TEST_CRASH_AT names it."""
    if os.environ.get("ABOOK_TEST_CRASH_AT") == step:
        os._exit(1)


@dataclass(frozen=True)
class PollerDeps:
    store: Store
    mail: IBlockingRunner
    clock: Any
    router: RouterConfig
    tracking: TrackingConfig
    source_factory: SourceFactory
    holder: str

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)


class MailboxPoller:
    log = Logger()

    def __init__(self, mailbox: MailboxConfig, deps: PollerDeps) -> None:
        self.mailbox = mailbox
        self.deps = deps
        self._source: IMailSource | None = None
        self._owner: Owner | None = None
        self._ready = False
        self._recover = True  # re-mark what a crash left unmarked, once per start
        self._transient = 0
        self._not_before = 0.0
        self._stopping = False
        self._current: defer.Deferred | None = None
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = deps.clock

    @property
    def name(self) -> str:
        return self.mailbox.name

    def start(self) -> None:
        self._loop.start(self.mailbox.interval, now=True).addErrback(
            lambda f: self.log.failure("poller of {mailbox} died", f, mailbox=self.name))

    def stop(self) -> defer.Deferred:
        """Stop ticking; fires once the tick in hand (if any) has finished and the source is closed."""
        self._stopping = True
        if self._loop.running:
            self._loop.stop()
        done = settled(self._current) if self._current is not None else defer.succeed(None)
        return done.addCallback(lambda _: defer.ensureDeferred(self._close()))

    def tick(self) -> defer.Deferred | None:
        if self._stopping or self.deps.clock.seconds() < self._not_before:
            return None
        d = defer.ensureDeferred(self._poll())
        d.addErrback(lambda f: defer.ensureDeferred(self._failed(f)))
        d.addErrback(lambda f: self.log.failure("recording the failure of {mailbox} failed", f, mailbox=self.name))
        self._current = d
        d.addBoth(self._idle)
        return d

    def _idle(self, result: Any) -> None:
        self._current = None
        return None

    async def _poll(self) -> None:
        deps, store = self.deps, self.deps.store
        if not self._ready:
            if self.mailbox.role == "router":
                self._owner = await store.run(state.resolve_owner_txn, self.mailbox.owner or "")
                if self._owner is None:
                    if not await store.run(state.ensure_state_txn, self.name, self.mailbox.type, None):
                        # disabled (by this failure, or another): not polled, as claim_lease_txn would say
                        self.log.debug("not polling {mailbox}: disabled", mailbox=self.name)
                        return
                    raise health.OwnerUnknown(
                        f"owner {self.mailbox.owner!r} is no user or queue in the store" if self.mailbox.owner
                        else "a router mailbox needs an owner (a user name or queue:<address>)")
            kind = "forward" if self.mailbox.role == "forward" else self.mailbox.type
            await store.run(state.ensure_state_txn, self.name, kind, self._owner)
            self._ready = True
        lease = await store.run(state.claim_lease_txn, self.name, deps.holder, deps.now(), deps.router.lease_seconds)
        if lease is None:
            self.log.debug("not polling {mailbox}: disabled, or leased by another daemon", mailbox=self.name)
            return
        try:
            await self._poll_leased(lease.cursor)
        finally:
            await store.run(state.release_lease_txn, self.name, deps.holder)

    async def _poll_leased(self, cursor: str | None) -> None:
        deps = self.deps
        if self._source is None:
            self._source = await deps.mail.run(deps.source_factory, self.mailbox)
        source = self._source
        if self._recover:
            await self._remark(source)
            self._recover = False
        while not self._stopping:
            batch = await deps.mail.run(source.changes_blocking, cursor, self.mailbox.batch_size)
            fetched = []
            for ref in batch.messages:
                try:
                    fetched.append(Fetched(ref.external_id, await deps.mail.run(source.fetch_blocking, ref)))
                except MessageGone:  # deleted or moved since it was listed: nothing left to track
                    self.log.info("{external_id} left {mailbox} before it was read", external_id=ref.external_id,
                                  mailbox=self.name)
            if fetched:
                crash_point("after_fetch")
            result = await self._commit(tuple(fetched), batch.cursor)
            if fetched:
                crash_point("after_commit")
                self.log.info("polled {mailbox}: {count} new, {tracked} tracked", mailbox=self.name,
                              count=len(fetched), tracked=result.tracked)
            await self._apply(source, result.actions)
            cursor = batch.cursor
            if not batch.more:
                break
        await deps.store.run(state.record_success_txn, self.name, deps.now())
        self._transient = 0

    def _spec(self) -> BatchSpec:
        r = self.deps.router
        return BatchSpec(mailbox=self.name, holder=self.deps.holder, role=self.mailbox.role, owner=self._owner,
                         tracking=self.deps.tracking, lease_seconds=r.lease_seconds, loop_max=r.loop_max_messages,
                         loop_window=timedelta(minutes=r.loop_window_minutes),
                         forward_remove=r.forward_remove_wrappers)

    async def _commit(self, fetched: tuple[Fetched, ...], cursor: str) -> BatchResult:
        skip: tuple[tuple[str, str], ...] = ()
        while True:
            try:
                return await self.deps.store.run(commit_batch_txn, replace(self._spec(), skip=skip), fetched,
                                                 cursor, self.deps.now())
            except MessageFailed as e:
                self.log.error("tracking {external_id} from {mailbox} failed, left untracked: {error}",
                               external_id=e.external_id, mailbox=self.name, error=e.error)
                skip += ((e.external_id, e.error),)

    async def _apply(self, source: IMailSource, actions: tuple[PostAction, ...]) -> None:
        for action in actions:
            crash_point("before_mark")
            ref = MessageRef(action.external_id)
            if action.action == "remove":
                await self.deps.mail.run(source.remove_blocking, ref)
            else:
                await self.deps.mail.run(source.mark_tracked_blocking, ref)
            crash_point("after_mark")
            for activity_id in action.activity_ids:
                await self.deps.store.run(mark_sighting_txn, activity_id, self.name)

    async def _remark(self, source: IMailSource) -> None:
        """Finish what a crash interrupted: sightings committed but never marked in the mailbox."""
        unmarked = await self.deps.store.run(state.unmarked_sightings_txn, self.name)
        by_ref: dict[str, list[str]] = {}
        for u in unmarked:
            # forward mailbox sightings are "<wrapper id>#<n>": the wrapper is what gets removed or marked
            ref = u.external_id.split("#", 1)[0] if self.mailbox.role == "forward" else u.external_id
            by_ref.setdefault(ref, []).append(u.activity_id)
        if not by_ref:
            return
        self.log.info("re-marking {count} messages of {mailbox} left unmarked", count=len(by_ref), mailbox=self.name)
        kind = "remove" if self.mailbox.role == "forward" and self.deps.router.forward_remove_wrappers else "mark"
        await self._apply(source, tuple(PostAction(ref, kind, tuple(ids)) for ref, ids in by_ref.items()))

    async def _failed(self, failure: Failure) -> None:
        deps = self.deps
        permanent = health.is_permanent(failure)
        error = health.describe(failure)
        if failure.check(CursorInvalid):
            self.log.warn("cursor of {mailbox} is no longer valid, reading it again from the start: {error}",
                          mailbox=self.name, error=error)
            await deps.store.run(state.reset_cursor_txn, self.name)
        elif permanent or failure.check(MailboxError, LeaseLost):
            self.log.warn("poll of {mailbox} failed: {error}", mailbox=self.name, error=error)
        else:
            self.log.failure("poll of {mailbox} failed", failure, mailbox=self.name)
        self._recover = True
        await self._close()
        self._ready = self._ready and not failure.check(health.OwnerUnknown)
        status = await deps.store.run(state.record_failure_txn, self.name, error, permanent,
                                      deps.router.disable_after_failures, deps.now())
        if status.disabled:
            self.log.critical("ALERT: mailbox {mailbox} disabled after {failures} failures ({error}); "
                              "fix it, then run `abook mailbox enable {mailbox}`",
                              mailbox=self.name, failures=status.consecutive_failures, error=error)
        if not permanent and not failure.check(CursorInvalid):
            self._transient += 1
            delay = health.backoff_delay(self._transient, self.mailbox.interval, deps.router.max_backoff,
                                         health.retry_after_of(failure))
            self._not_before = deps.clock.seconds() + delay
            self.log.info("backing off {mailbox} for {delay:.0f}s", mailbox=self.name, delay=delay)

    async def _close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            try:
                await self.deps.mail.run(source.close_blocking)
            except Exception:
                self.log.failure("closing {mailbox} failed", mailbox=self.name)


class MailPollService(Service):
    """Every mailbox's poller: the configured ones, and (with a template) one per router user or queue.

    With ``[router.user_mailbox_template]`` the store is rescanned every ``rescan_interval`` seconds:
    a user or queue that switched to incoming method ``router`` gets a poller without a restart, one
    that left it loses its poller. Config mailboxes always win over derived ones for the same owner.
    """

    log = Logger()

    def __init__(self, mailboxes: list[MailboxConfig], deps: PollerDeps) -> None:
        self.setName("mail-pollers")
        self.deps = deps
        self._configured = list(mailboxes)
        self.pollers: dict[str, MailboxPoller] = {}
        self._rescan: task.LoopingCall | None = None
        self._rescanning: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        for mailbox in self._configured:
            self._add(mailbox)
        if self.deps.router.user_mailbox_template is not None:
            self._rescan = task.LoopingCall(self.rescan)
            self._rescan.clock = self.deps.clock
            self._rescan.start(self.deps.router.rescan_interval, now=True)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._rescan is not None and self._rescan.running:
            self._rescan.stop()
        waits = [p.stop() for p in self.pollers.values()]
        if self._rescanning is not None:
            waits.append(settled(self._rescanning))
        self.pollers = {}
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def _add(self, mailbox: MailboxConfig) -> None:
        poller = MailboxPoller(mailbox, self.deps)
        self.pollers[mailbox.name] = poller
        poller.start()

    def rescan(self) -> defer.Deferred:
        d = defer.ensureDeferred(self._rescan_once())
        d.addErrback(lambda f: self.log.failure("rescanning router users failed", f))
        self._rescanning = d
        return d

    async def _rescan_once(self) -> None:
        template = self.deps.router.user_mailbox_template
        assert template is not None
        owners = await self.deps.store.run(state.router_owners_txn)
        taken = {(m.owner or "").lower() for m in self._configured}
        wanted = [o for o in owners if o.user.lower() not in taken]
        derived = await self.deps.mail.run(derive_mailboxes_blocking, template, tuple(wanted))
        if not self.running:
            return
        names = {m.name for m in derived}
        for name in [n for n in self.pollers if n.startswith(DERIVED_PREFIX) and n not in names]:
            self.log.info("stopping poller of {mailbox}: no longer incoming method router", mailbox=name)
            await self.pollers.pop(name).stop()
        for mailbox in derived:
            if mailbox.name not in self.pollers and self.running:
                self.log.info("starting poller of {mailbox}", mailbox=mailbox.name)
                self._add(mailbox)


DERIVED_PREFIX = "auto:"


def derive_mailboxes_blocking(template: UserMailboxTemplate, owners: tuple[state.RouterOwner, ...]
                              ) -> tuple[MailboxConfig, ...]:
    """A MailboxConfig per router owner from the template (reads per-mailbox secret files)."""
    from abook.config import placeholders

    out = []
    for owner in owners:
        # {username}: the user name, or a queue's address (config/placeholders.py)
        username = placeholders.fill(template.username, owner.user.removeprefix("queue:"), owner.email, owner.id)
        password = template.password
        if template.password_dir:
            path = Path(template.password_dir) / username
            if path.is_file():
                password = Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        ews = None
        if template.ews is not None:
            ews = EwsOptions.model_validate({**template.ews.model_dump(), "primary_smtp_address": owner.email})
        out.append(MailboxConfig(
            name=DERIVED_PREFIX + owner.user, type=template.type, role="router", owner=owner.user,
            host=template.host, port=template.port, security=template.security, ca_file=template.ca_file,
            username=username, password=password, folder=template.folder, interval=template.interval,
            batch_size=template.batch_size, ews=ews))
    return tuple(out)


def settled(d: defer.Deferred) -> defer.Deferred:
    """A Deferred that fires (with None) when ``d`` does, leaving ``d``'s own result alone."""
    done: defer.Deferred = defer.Deferred()
    d.addBoth(lambda r: (done.callback(None), r)[1])
    return done
