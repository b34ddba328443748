"""The daemon's heartbeat in the store (store/daemons.py): written at start and every
``HEARTBEAT_SECONDS`` on the ``db`` pool (never on the reactor), marked stopped at a clean stop. A
heartbeat that fails (the store is down) is logged once per outage and tried again at the next beat."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timezone
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from abook import __version__
from abook.monitor import reason
from abook.store.daemons import HEARTBEAT_SECONDS, heartbeat_txn, stopped_txn


class Heartbeat(Service):
    log = Logger()

    def __init__(self, store: Any, reactor: Any, daemon_id: str, interval: float = HEARTBEAT_SECONDS) -> None:
        self.setName("heartbeat")
        self.store = store
        self._reactor = reactor
        self.daemon_id = daemon_id
        self.interval = interval
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self._started: datetime | None = None
        self._loop: task.LoopingCall | None = None
        self._failing = False

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._reactor.seconds(), timezone.utc)

    def startService(self) -> None:
        super().startService()
        self._started = self._now()
        self._loop = task.LoopingCall(self.beat)
        self._loop.clock = self._reactor
        self._loop.start(self.interval, now=True)

    def beat(self) -> defer.Deferred:
        d = self.store.run(heartbeat_txn, self.daemon_id, self.host, self.pid, __version__, self._started,
                           self._now())

        def ok(_: Any) -> None:
            if self._failing:
                self.log.info("heartbeat written again")
            self._failing = False

        def failed(failure: Any) -> None:
            if not self._failing:
                self.log.warn("could not write the heartbeat: {error}", error=self._reason(failure))
            self._failing = True

        return d.addCallbacks(ok, failed)

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        d = self.store.run(stopped_txn, self.daemon_id, self.pid, self._now())
        return d.addErrback(lambda f: self.log.warn("could not mark the daemon stopped: {error}",
                                                     error=self._reason(f)))

    def _reason(self, failure: Any) -> str:
        return reason(failure.value, getattr(getattr(self.store.engine, "url", None), "password", None))
