"""The daemon's router over directory mailboxes (tests/fakes DirMailSource), for the kill-at-every-step test.

``python -m tests.integration.router_runner CONFIG MAILDIR``: like ``abook serve`` (same root service,
db pool, RouterService, SIGTERM handling) except that each mailbox is read from ``MAILDIR/<name>``,
so a killed and restarted process sees the mailbox as it left it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.internet import reactor

from abook.config import load_config
from abook.logs import begin_logging
from abook.routing.service import RouterService
from abook.store import Store, make_engine, schema
from abook.tap import AbookService
from abook.threads import ThreadPoolRunner, ThreadPoolService
from tests.fakes.mail_source import DirMailSource


def main(config_path: str, maildir: str) -> None:
    config = load_config(config_path)
    begin_logging(config.logging.level, config.logging.file)
    db_pool = ThreadPoolService("db", 1, config.store.threads)
    store = Store(make_engine(config.store_url), ThreadPoolRunner(reactor, db_pool.pool))
    schema.check(store.engine)
    root = AbookService(config, store, reactor)
    db_pool.setServiceParent(root)
    RouterService(config, store, reactor, source_factory=lambda mb: DirMailSource(Path(maildir) / mb.name)
                  ).setServiceParent(root)
    root.privilegedStartService()
    reactor.callWhenRunning(root.startService)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)  # type: ignore[attr-defined]
    reactor.run(installSignalHandlers=True)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
