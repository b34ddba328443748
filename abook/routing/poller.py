"""MailboxPoller: one mailbox's polls, each on its own LoopingCall and interval (``pollers.MailPollService``
runs one per mailbox).

A tick: claim the mailbox's lease -> read changes since the stored cursor and fetch them (mail pool) ->
one store transaction tracks them and saves the new cursor (``batch.commit_batch_txn``) -> mark each
message (mail pool) -> mark its sighting (store). LoopingCall waits for the tick's Deferred, so polls of
one mailbox never overlap; a tick catches everything, records it (``health``), backs off and never
re-raises, so one broken mailbox never stops the loop or the others.

Nothing wedges a mailbox: every mailbox operation runs within ``command_timeout`` (then the source's
connection is cut), a message over ``max_message_bytes`` is recorded as untracked ``too_large`` without
being downloaded, a sighting whose message cannot be marked under its old id is found again by its
Message-ID or retired, and polls that keep failing, in whatever way (a cursor reset too, from the second
in a row), are backed off and alerted on after ``alert_after_failures``.

``ABOOK_TEST_CRASH_AT`` (after_fetch, after_commit, before_mark, after_mark) is a test-only hook: the
process exits at once at that step, so the exactly-once test can kill it between any two steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from abook.config.mail import MailboxConfig
from abook.config.model import TrackingConfig
from abook.config.routing import RouterConfig
from abook.mailbox.errors import CursorInvalid, MailboxError, MessageGone, TooLarge, Unavailable
from abook.mailbox.interfaces import IMailSource, MessageRef
from abook.monitor import metrics
from abook.routing import health
from abook.routing.batch import (
    BatchResult, BatchSpec, Fetched, LeaseLost, MessageFailed, PostAction, commit_batch_txn,
)
from abook.store import Store, mailboxes, owners
from abook.store.outage import StoreOutage
from abook.threads import IBlockingRunner
from abook.store.records import Owner

SourceFactory = Callable[[MailboxConfig], IMailSource]

#: seconds a mailbox operation in hand may still take once the daemon is stopping (then it is cut)
STOP_GRACE = 5.0


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
        self._recover = True  # re-mark what a crash or a failure left unmarked
        self._failures = 0  # polls in a row that failed
        self._reread = False  # the cursor was reset: the next success is the re-read, not yet a recovery
        self._not_before = 0.0
        self._stopping = False
        self._stop_by = 0.0  # once stopping: when every mail operation still to come is cut
        self._current: defer.Deferred | None = None
        self._deadline: Any = None  # the IDelayedCall that cuts the mail operation in hand
        self._cut: str | None = None  # why the operation in hand was cut
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
        self._stop_by = self.deps.clock.seconds() + STOP_GRACE
        if self._loop.running:
            self._loop.stop()
        deadline = self._deadline
        if deadline is not None and deadline.active() and deadline.getTime() > self._stop_by:
            deadline.reset(STOP_GRACE)  # finish what is in hand if it is quick, but never wait on a slow server
        done = settled(self._current) if self._current is not None else defer.succeed(None)
        return done.addCallback(lambda _: defer.ensureDeferred(self._close()))

    def tick(self) -> defer.Deferred | None:
        if self._stopping:
            return None
        if self.deps.clock.seconds() < self._not_before:
            metrics.get().cycle(self.deps.clock.seconds())  # backed off: the router is not stuck
            return None
        d = defer.ensureDeferred(self._poll())
        d.addErrback(lambda f: defer.ensureDeferred(self._failed(f)))
        d.addCallback(lambda _: metrics.get().cycle(self.deps.clock.seconds()))  # polled, or its failure recorded
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
                self._owner = await store.run(owners.owner_for_config_txn, self.mailbox.owner or "")
                if self._owner is None:
                    if not await store.run(mailboxes.ensure_state_txn, self.name, self.mailbox.type, None):
                        # disabled (by this failure, or another): not polled, as claim_lease_txn would say
                        self.log.debug("not polling {mailbox}: disabled", mailbox=self.name)
                        return
                    raise health.OwnerUnknown(
                        f"owner {self.mailbox.owner!r} is no user or queue in the store" if self.mailbox.owner
                        else "a router mailbox needs an owner (a user name or queue:<address>)")
            kind = "forward" if self.mailbox.role == "forward" else self.mailbox.type
            await store.run(mailboxes.ensure_state_txn, self.name, kind, self._owner)
            self._ready = True
        lease = await store.run(mailboxes.claim_lease_txn, self.name, deps.holder, deps.now(),
                                deps.router.lease_seconds)
        if lease is None:
            self.log.debug("not polling {mailbox}: disabled, or leased by another daemon", mailbox=self.name)
            return
        try:
            await self._poll_leased(lease.cursor)
        except BaseException:
            # the poll's own error is the one to log: a release that fails too (the store went away) must
            # not replace it; the lease then runs out by itself
            try:
                await store.run(mailboxes.release_lease_txn, self.name, deps.holder)
            except Exception as e:
                self.log.debug("releasing the lease of {mailbox} failed too: {error}", mailbox=self.name,
                               error=f"{type(e).__name__}: {e}")
            raise
        await store.run(mailboxes.release_lease_txn, self.name, deps.holder)

    async def _poll_leased(self, cursor: str | None) -> None:
        deps = self.deps
        if self._source is None:
            self._source = await deps.mail.run(deps.source_factory, self.mailbox)
        source = self._source
        if self._recover:
            self._recover = await self._remark(source)
        limit = deps.tracking.max_message_bytes
        while not self._stopping:
            batch = await self._mail("listing new mail", source.changes_blocking, cursor, self.mailbox.batch_size)
            fetched = []
            for ref in batch.messages:
                try:
                    fetched.append(Fetched(ref.external_id, await self._mail("downloading a message",
                                                                            source.fetch_blocking, ref, limit),
                                           direction=ref.direction))
                except MessageGone:  # deleted or moved since it was listed: nothing left to track
                    self.log.info("{external_id} left {mailbox} before it was read", external_id=ref.external_id,
                                  mailbox=self.name)
                except TooLarge as e:  # recorded as untracked too_large; stays in the mailbox, unmarked
                    fetched.append(Fetched(ref.external_id, e.head, oversize=_oversize(e, limit), direction=ref.direction))
            if fetched:
                crash_point("after_fetch")
            result = await self._commit(tuple(fetched), batch.cursor)
            metrics.get().batch(len(fetched), result.tracked, result.reasons)
            metrics.get().cycle(deps.clock.seconds())
            if fetched:
                crash_point("after_commit")
                self.log.info("polled {mailbox}: {count} new, {tracked} tracked", mailbox=self.name,
                              count=len(fetched), tracked=result.tracked)
            await self._apply(source, result.actions)
            cursor = batch.cursor
            if not batch.more:
                break
        if self._reread:
            self._reread = False  # a re-read after a reset: the next incremental poll shows it recovered
        else:
            if self._failures >= deps.router.alert_after_failures:
                self.log.warn("mailbox {mailbox} polled again after {failures} failed polls", mailbox=self.name,
                              failures=self._failures)
            self._failures = 0
        await deps.store.run(mailboxes.record_success_txn, self.name, deps.now(), self._failures)
        metrics.get().poll_ok(self.name, deps.clock.seconds())

    async def _mail(self, what: str, f: Callable[..., Any], *args: Any) -> Any:
        """One mailbox operation on the mail pool, within ``command_timeout``: past it (or soon after the
        daemon starts stopping) the source's connection is cut and the operation fails as Unavailable."""
        self._cut = None
        seconds = self.mailbox.command_timeout
        if self._stopping:  # the rest of the poll in hand shares the grace left
            seconds = min(seconds, max(self._stop_by - self.deps.clock.seconds(), 0.0))
        self._deadline = self.deps.clock.callLater(seconds, self._expire)
        try:
            return await self.deps.mail.run(f, *args)
        except Exception as e:
            if self._cut is None:
                raise
            raise Unavailable(f"{self.name}: {what} {self._cut}") from None
        finally:
            deadline, self._deadline = self._deadline, None
            if deadline.active():
                deadline.cancel()

    def _expire(self) -> None:
        if self._stopping:
            self._cut = "was cut short: the daemon is stopping"
        else:
            self._cut = f"took more than command_timeout ({self.mailbox.command_timeout:g}s)"
        self.log.warn("cutting the connection of {mailbox}: {what}", mailbox=self.name, what=self._cut)
        if self._source is not None:
            self._source.abort()

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
        store = self.deps.store
        for action in actions:
            crash_point("before_mark")
            ref = MessageRef(action.external_id, message_id=action.message_id)
            mark = source.remove_blocking if action.action == "remove" else source.mark_tracked_blocking
            try:
                moved = await self._mail("marking a message", mark, ref)
            except MessageGone as e:  # no longer there, under its id or its Message-ID: nothing left to mark
                self.log.info("{external_id} left {mailbox} before it was marked, its sighting is retired: {error}",
                              external_id=action.external_id, mailbox=self.name, error=str(e))
                if action.activity_ids:
                    await store.run(mailboxes.retire_sightings_txn, self.name, action.activity_ids)
                continue
            crash_point("after_mark")
            if action.activity_ids:
                # a forward mailbox's sightings name the wrapper's inner messages: they keep their ids
                now_at = moved.external_id if moved is not None and self.mailbox.role != "forward" else None
                await store.run(mailboxes.sightings_marked_txn, self.name, action.activity_ids, now_at)

    async def _remark(self, source: IMailSource) -> bool:
        """Finish what a crash or a failure interrupted: sightings committed but never marked in the mailbox.
        A message the server refuses to mark is left for later, so it never keeps new mail from being read;
        a connection failure fails the poll. Returns whether any was left."""
        unmarked = await self.deps.store.run(mailboxes.unmarked_sightings_txn, self.name)
        forward = self.mailbox.role == "forward"
        by_ref: dict[str, tuple[list[str], str | None]] = {}
        for u in unmarked:
            # forward mailbox sightings are "<wrapper id>#<n>": the wrapper is what gets removed or marked
            ref = u.external_id.split("#", 1)[0] if forward else u.external_id
            by_ref.setdefault(ref, ([], None if forward else u.message_id))[0].append(u.activity_id)
        if not by_ref:
            return False
        self.log.info("re-marking {count} messages of {mailbox} left unmarked", count=len(by_ref), mailbox=self.name)
        kind = "remove" if forward and self.deps.router.forward_remove_wrappers else "mark"
        left = False
        for ref, (ids, message_id) in by_ref.items():
            try:
                await self._apply(source, (PostAction(ref, kind, tuple(ids), message_id),))
            except Unavailable:
                raise
            except MailboxError as e:
                self.log.warn("re-marking {external_id} of {mailbox} failed, left for later: {error}",
                              external_id=ref, mailbox=self.name, error=str(e))
                left = True
        return left

    async def _failed(self, failure: Failure) -> None:
        deps = self.deps
        permanent = health.is_permanent(failure)
        error = health.describe(failure)
        reset = failure.check(CursorInvalid) is not None
        self._failures += 1
        metrics.get().poll_failed("cursor_reset" if reset else "permanent" if permanent else "transient")
        if reset:
            self.log.warn("cursor of {mailbox} is no longer valid, reading it again from the start: {error}",
                          mailbox=self.name, error=error)
        elif permanent or failure.check(MailboxError, LeaseLost, StoreOutage):  # the store logs its outage too
            self.log.warn("poll of {mailbox} failed: {error}", mailbox=self.name, error=error)
        else:
            self.log.failure("poll of {mailbox} failed", failure, mailbox=self.name)
        self._recover = True
        # the back-off first: it must hold even when the failure cannot be recorded (the store is down)
        if not permanent and not (reset and self._failures == 1):  # a first reset re-reads at the next tick
            delay = health.backoff_delay(self._failures - int(reset), self.mailbox.interval, deps.router.max_backoff,
                                         health.retry_after_of(failure))
            self._not_before = deps.clock.seconds() + delay
            metrics.get().back_off(self.name, True)
            self.log.info("backing off {mailbox} for {delay:.0f}s", mailbox=self.name, delay=delay)
        if reset:
            self._reread = True
        await self._close()
        self._ready = self._ready and not failure.check(health.OwnerUnknown)
        if self._failures == deps.router.alert_after_failures:
            self.log.critical("ALERT: {failures} polls of mailbox {mailbox} failed in a row, the last with {error}; "
                              "it is backed off meanwhile (`abook status` shows it)",
                              mailbox=self.name, failures=self._failures, error=error)
        try:
            if reset:
                await deps.store.run(mailboxes.reset_cursor_txn, self.name)
            status = await deps.store.run(mailboxes.record_failure_txn, self.name, error, permanent,
                                          deps.router.disable_after_failures, deps.now(), self._failures)
        except StoreOutage as e:  # logged once by the store; the back-off above holds meanwhile
            self.log.debug("the failure of {mailbox} is not recorded: {error}", mailbox=self.name, error=str(e))
            return
        if status.disabled:
            metrics.get().mailboxes_disabled.inc()
            self.log.critical("ALERT: mailbox {mailbox} disabled after {failures} failures ({error}); "
                              "fix it, then run `abook mailbox enable {mailbox}`",
                              mailbox=self.name, failures=status.consecutive_failures, error=error)

    async def _close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            try:
                await self.deps.mail.run(source.close_blocking)
            except Exception:
                self.log.failure("closing {mailbox} failed", mailbox=self.name)


def _oversize(e: TooLarge, limit: int) -> str:
    """The untracked reason's detail for a message over the limit, for the admin's list."""
    if e.announced:
        return f"{e.size} bytes, more than {limit} (the size the server announced: not downloaded)"
    return f"{e.size} bytes or more, more than {limit} (found while downloading: cut off at the limit)"


def settled(d: defer.Deferred) -> defer.Deferred:
    """A Deferred that fires (with None) when ``d`` does, leaving ``d``'s own result alone."""
    done: defer.Deferred = defer.Deferred()
    d.addBoth(lambda r: (done.callback(None), r)[1])
    return done
