"""Read replicas: PostgreSQL hot standbys (``store.read_urls``) that LDAP searches and binds' lookups read.

Only ``Store.read`` uses them (the LDAP server's reads); writes, the router, sync, heartbeats and every
command-line tool use the primary (``Store.run``). Reads go round the replicas in turn. A replica that
fails a read (stopped, refusing, frozen past ``store.timeout_seconds``, or any other outage) is left out
for ``RETRY_SECONDS`` and the read is run again on the primary at once, so the client never sees the
replica's failure; after that pause the next read tries it again. One warning when a replica goes out of
use, one when it answers again.

What a search sees: a standby replays the primary's WAL a little behind it (usually milliseconds, longer
under load or a long query on the standby). A read served by a replica sees the store as of its last
replayed transaction: a record written a moment ago may not be found yet, and a changed password or a
disabled user takes effect for binds through that replica once replayed. Nothing read there is ever newer
than the primary, and a read never mixes the two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker
from twisted.logger import Logger

#: seconds a replica that failed a read is left out before it is tried again
RETRY_SECONDS = 10.0


@dataclass
class Replica:
    engine: Engine
    sessionmaker: sessionmaker
    #: monotonic time before which it is left out (0: in use)
    down_until: float = 0.0
    failed_reads: int = field(default=0)

    @property
    def name(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)


class Replicas:
    log = Logger()

    def __init__(self, engines: list[Engine], clock: Callable[[], float] = time.monotonic) -> None:
        self.replicas = [Replica(e, sessionmaker(e, expire_on_commit=False)) for e in engines]
        self._clock = clock
        self._next = 0

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def pick(self) -> Replica | None:
        """The next replica in use, in turn; None when none is (then the primary serves the read)."""
        now = self._clock()
        for _ in range(len(self.replicas)):
            replica = self.replicas[self._next % len(self.replicas)]
            self._next += 1
            if replica.down_until <= now:
                return replica
        return None

    def failed(self, replica: Replica, reason: str) -> None:
        replica.failed_reads += 1
        if replica.down_until == 0.0:
            self.log.warn("read replica {replica} failed a read ({reason}); reads go to the primary and it is "
                          "tried again every {retry:g}s", replica=replica.name, reason=reason, retry=RETRY_SECONDS)
        replica.down_until = self._clock() + RETRY_SECONDS

    def succeeded(self, replica: Replica) -> None:
        if replica.down_until != 0.0:
            self.log.warn("read replica {replica} answers again ({failed} reads went to the primary)",
                          replica=replica.name, failed=replica.failed_reads)
            replica.down_until, replica.failed_reads = 0.0, 0

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.engine.dispose()
