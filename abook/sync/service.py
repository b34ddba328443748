"""SyncService: every user with sync enabled is synchronised every ``sync.interval``, spread over it.

One LoopingCall ticks every few seconds and starts the syncs that are due, at most ``sync.threads`` at
once (each user's mailbox calls run on the ``sync`` pool, store transactions on ``db``). A user's first
turn is offset by a hash of their id, so a thousand users do not all start at once. A user whose sync is
running is never started again until it ends. A mailbox-wide error (server down, credentials refused)
is recorded (``abook sync status``) and the user backs off: the delay doubles from interval / 4 up to
``sync.max_backoff`` (or what the server asked). A tick never raises (a LoopingCall would die).

Several daemons may share the store: a user is synced only under their sync lease (store/sync_leases.py),
renewed every third of ``sync.lease_seconds`` while the sync runs and released with the time the user is
due again, so no user is synced by two daemons at once and a dead daemon's users move on when its leases
run out.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from abook.monitor import metrics
from abook.config.sync import SyncConfig
from abook.mailbox.errors import Unavailable
from abook.mailbox.pim.interfaces import IPimStore
from abook.store import Store, outage
from abook.store.sync_leases import claim_sync_txn, release_sync_txn, renew_sync_txn
from abook.store.sync_links import record_run_txn
from abook.store.users import SyncUser, sync_users_txn
from abook.sync.crm import LdapIds
from abook.sync.engine import Interrupted, SyncEngine
from abook.sync.setup import open_mailbox_blocking, policies
from abook.threads import IBlockingRunner, ThreadPoolRunner, ThreadPoolService

MailboxFactory = Callable[[SyncUser], IPimStore]
TICK = 5.0


def spread(user_id: str, interval: float) -> float:
    """A user's fixed offset within the interval (the same on every start)."""
    return int(hashlib.sha256(user_id.encode()).hexdigest()[:8], 16) % 10_000 / 10_000 * interval


class LeaseLost(Interrupted):
    """The user's sync lease went to another daemon (this one renewed it too late): stop before the next write."""


class SyncService(Service):
    log = Logger()

    def __init__(self, config: SyncConfig, store: Store, reactor: Any, *, mail: Optional[IBlockingRunner] = None,
                 mailbox_factory: Optional[MailboxFactory] = None, ldap_ids: LdapIds | None = None,
                 tick: float | None = None, holder: str | None = None) -> None:
        self.setName("sync")
        #: this daemon's name in sync leases (``router.daemon_id``)
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self.config = config
        self.store = store
        self._reactor = reactor
        self.pool: Optional[ThreadPoolService] = None
        if mail is None:
            self.pool = ThreadPoolService("sync", 1, config.threads)
            mail = ThreadPoolRunner(reactor, self.pool.pool)
        self.mail = mail
        template = config.mailbox
        self.mailbox_factory = mailbox_factory or (lambda user: open_mailbox_blocking(template, user))  # type: ignore[arg-type]
        self.engine = SyncEngine(store, mail, policies(config), ldap_ids=ldap_ids,
                                 max_item_failures=config.max_item_failures,
                                 clock=lambda: datetime.fromtimestamp(reactor.seconds(), timezone.utc))
        #: a short interval (a test, a small site) is not rounded up to the default tick
        self.tick_seconds = tick if tick is not None else min(TICK, config.interval / 4)
        self.users: dict[str, SyncUser] = {}
        self.due: dict[str, float] = {}
        self.failures: dict[str, int] = {}
        self.in_progress: dict[str, defer.Deferred] = {}
        self.mailboxes: dict[str, IPimStore] = {}
        self._loop: Optional[task.LoopingCall] = None
        self._renewal: Optional[task.LoopingCall] = None
        #: users whose sync lease this daemon holds (their sync is running)
        self.leased: set[str] = set()
        #: of those, the users whose lease another daemon has taken: their sync stops before its next write
        self.lost: set[str] = set()
        self._last_rescan: Optional[float] = None
        self._rescanning = False

    def startService(self) -> None:
        super().startService()
        if self.pool is not None:
            self.pool.startService()
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = self._reactor
        self._loop.start(self.tick_seconds, now=True)
        self._renewal = task.LoopingCall(self.renew)
        self._renewal.clock = self._reactor
        self._renewal.start(self.config.lease_seconds / 3, now=False)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        for loop in (self._loop, self._renewal):
            if loop is not None and loop.running:
                loop.stop()
        d = defer.DeferredList(list(self.in_progress.values()), consumeErrors=True)

        def close(_: Any) -> Any:
            for mailbox in self.mailboxes.values():
                try:
                    mailbox.close_blocking()
                except Exception:  # noqa: BLE001 - closing is best effort at shutdown
                    pass
            if self.pool is not None:
                self.pool.stopService()

        return d.addBoth(close)

    # -- leases

    def _at(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, timezone.utc)

    @defer.inlineCallbacks
    def renew(self) -> Any:
        """Keep the leases of the syncs in hand (never raises: the LoopingCall would stop)."""
        try:
            users = tuple(sorted(self.leased))
            lost = yield self.store.run(renew_sync_txn, users, self.holder, self._at(self._reactor.seconds()),
                                        self.config.lease_seconds)
            for user_id in lost:
                if user_id in self.leased:  # not released meanwhile
                    self.lost.add(user_id)
                    self.log.warn("lost the sync lease of {user} (renewed too late): its sync stops before "
                                  "its next write", user=getattr(self.users.get(user_id), "name", user_id))
        except Exception:  # noqa: BLE001 - the next renewal tries again; the lease may run out meanwhile
            outage.log_failure(self.log, Failure(), "renewing sync leases failed")

    def _still_leased(self, user_id: str) -> None:
        if user_id in self.lost:
            raise LeaseLost(user_id)

    # -- ticks

    @defer.inlineCallbacks
    def tick(self) -> Any:
        try:
            now = self._reactor.seconds()
            if self._last_rescan is None or now - self._last_rescan >= self.config.rescan_interval:
                yield self._rescan(now)
            for user_id in sorted(self.due, key=self.due.__getitem__):
                if len(self.in_progress) >= self.config.threads:
                    break
                if self.due[user_id] <= now and user_id not in self.in_progress:
                    self.start(user_id)
        except Exception:  # noqa: BLE001 - a tick never raises: the LoopingCall would stop for good
            outage.log_failure(self.log, Failure(), "sync tick failed")

    @defer.inlineCallbacks
    def _rescan(self, now: float) -> Any:
        self._last_rescan = now
        users = yield self.store.run(sync_users_txn)
        current = {u.id: u for u in users}
        for gone in set(self.users) - set(current):
            self.due.pop(gone, None)
        for user_id in set(current) - set(self.users):
            self.due[user_id] = now + spread(user_id, self.config.interval)
        self.users = current

    def start(self, user_id: str) -> defer.Deferred:
        """Sync one user now (unless their sync is running: then that one's Deferred)."""
        if user_id in self.in_progress:
            return self.in_progress[user_id]
        d = defer.ensureDeferred(self._sync(user_id))
        self.in_progress[user_id] = d

        def done(result: Any) -> Any:
            self.in_progress.pop(user_id, None)
            return result

        return d.addBoth(done)

    async def _sync(self, user_id: str) -> None:
        user = self.users.get(user_id)
        now = self._reactor.seconds()
        if user is None:
            return
        try:
            claim = await self.store.run(claim_sync_txn, user_id, self.holder, self._at(now),
                                         self.config.lease_seconds)
        except Exception:  # noqa: BLE001 - the store is out of reach: try again later, never raise
            outage.log_failure(self.log, Failure(), "claiming the sync lease of {user} failed", user=user.name)
            self.due[user_id] = now + min(self.config.interval, self.config.lease_seconds)
            return
        if not claim.claimed:  # another daemon syncs them, or has just synced them
            assert claim.retry_at is not None
            self.due[user_id] = max(claim.retry_at.timestamp(), now + self.tick_seconds)
            return
        self.leased.add(user_id)
        try:
            await self._sync_leased(user, now)
        except LeaseLost:
            self.log.info("stopped syncing {user}: another daemon holds the lease now", user=user.name)
        finally:
            self.leased.discard(user_id)
            self.lost.discard(user_id)
            try:
                await self.store.run(release_sync_txn, user_id, self.holder,
                                     self._at(self.due.get(user_id, now + self.config.interval)))
            except Exception as e:  # noqa: BLE001 - the lease runs out by itself
                self.log.debug("releasing the sync lease of {user} failed: {error}", user=user.name,
                               error=f"{type(e).__name__}: {e}")

    async def _sync_leased(self, user: SyncUser, now: float) -> None:
        user_id = user.id
        self.due[user_id] = now + self.config.interval  # until it ends one way or the other
        try:
            mailbox = self.mailboxes.get(user_id)
            if mailbox is None:
                mailbox = await self.mail.run(self.mailbox_factory, user)
                self.mailboxes[user_id] = mailbox
            for entity in self.config.entities:
                if entity in getattr(mailbox, "entities", ()):
                    # the engine calls this at each of its crash-safe points between writes
                    await self.engine.sync(user_id, mailbox, entity, crash=lambda _step: self._still_leased(user_id))
            self.failures.pop(user_id, None)
            self.due[user_id] = now + self.config.interval
            metrics.get().sync_runs.labels("ok").inc()
        except LeaseLost:
            raise
        except Exception as e:  # noqa: BLE001 - recorded, backed off, never raised into the loop
            failures = self.failures[user_id] = self.failures.get(user_id, 0) + 1
            metrics.get().sync_runs.labels("failed").inc()
            delay = min(self.config.interval / 4 * 2 ** (failures - 1), self.config.max_backoff)
            if isinstance(e, Unavailable) and e.retry_after:
                delay = min(max(delay, e.retry_after), self.config.max_backoff)
            self.due[user_id] = now + delay
            message = f"{type(e).__name__}: {e}"[:2000]
            self.log.warn("sync of {user} failed ({failures} in a row), next try in {delay:.0f}s: {error}",
                          user=user.name, failures=failures, delay=delay, error=message)
            self.mailboxes.pop(user_id, None)
            at = datetime.fromtimestamp(now, timezone.utc)
            for entity in self.config.entities:
                await self.store.run(record_run_txn, user_id, entity, at=at, error=message, counts={},
                                     next_attempt_at=datetime.fromtimestamp(now + delay, timezone.utc))
