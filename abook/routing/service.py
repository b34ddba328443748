"""RouterService: the router's part of the daemon (the ``mail`` pool, the pollers, the outgoing queue).

Start order: the pool, then pollers and the outgoing queue. Stop order matters more: pollers and the
outgoing queue first, *waiting* for the work in hand (a MultiService does not make siblings wait for
each other), and only then the pool they run on.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger

from abook.config import AbookConfig
from abook.routing.outgoing import OutgoingService
from abook.routing.poller import PollerDeps, SourceFactory, open_source_blocking
from abook.routing.pollers import MailPollService
from abook.store import Store
from abook.threads import ThreadPoolRunner, ThreadPoolService


def daemon_id(config: AbookConfig) -> str:
    """This daemon's name in mailbox leases: stable across restarts, so a restart reclaims its leases
    at once instead of waiting for them to expire; a daemon elsewhere waits ``lease_seconds``."""
    return config.router.daemon_id or f"{socket.gethostname()}:{config.config_dir}"


class RouterService(MultiService):
    log = Logger()

    def __init__(self, config: AbookConfig, store: Store, reactor: Any,
                 source_factory: SourceFactory = open_source_blocking) -> None:
        super().__init__()
        self.setName("router")
        self.pool = ThreadPoolService("mail", 1, config.router.mail_threads)
        mail = ThreadPoolRunner(reactor, self.pool.pool)
        deps = PollerDeps(store=store, mail=mail, clock=reactor, router=config.router, tracking=config.tracking,
                          source_factory=source_factory, holder=daemon_id(config))
        self.pollers = MailPollService(config.mailboxes, deps)
        self.pollers.setServiceParent(self)
        self.outgoing: OutgoingService | None = None
        if config.smtp is not None:
            self.outgoing = OutgoingService(store, mail, reactor, config.smtp, config.router, config.tracking)
            self.outgoing.setServiceParent(self)

    def startService(self) -> None:
        self.pool.startService()
        super().startService()
        self.log.info("router started: {count} mailboxes configured, outgoing {outgoing}",
                      count=len(self.pollers.pollers), outgoing="on" if self.outgoing else "off")

    def reload_mailboxes(self, config: AbookConfig) -> defer.Deferred:
        """Apply new ``[[mailboxes]]`` tables (SIGHUP); fires with what was done."""
        return self.pollers.reload(config.mailboxes)

    def stopService(self) -> defer.Deferred:
        d = defer.maybeDeferred(super().stopService)
        d.addBoth(lambda r: (self.pool.stopService(), r)[1])
        return d
