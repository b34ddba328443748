"""A real IMailSource without a server, for the router's unit tests.

``FakeMailSource`` keeps messages by UID like an IMAP folder (cursor = the last UID read), records the
tracked mark and removals, and can be told to fail an operation with a mailbox error (health tests).
"""

from __future__ import annotations

import threading

from zope.interface import implementer

from abook.mailbox.interfaces import Batch, IMailSource, MessageRef


@implementer(IMailSource)
class FakeMailSource:
    def __init__(self) -> None:
        self.messages: dict[int, bytes] = {}
        self.tracked: set[int] = set()
        self.removed: set[int] = set()
        self.failures: dict[str, list[Exception]] = {}
        self.calls: list[str] = []
        self.closed = 0
        self._next_uid = 1
        self._lock = threading.Lock()

    def deliver(self, raw: bytes) -> str:
        with self._lock:
            uid = self._next_uid
            self._next_uid += 1
            self.messages[uid] = raw
        return str(uid)

    def fail(self, operation: str, error: Exception, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` ("changes", "fetch", "mark", "remove") raise ``error``."""
        self.failures.setdefault(operation, []).extend([error] * times)

    def _call(self, operation: str) -> None:
        self.calls.append(operation)
        pending = self.failures.get(operation)
        if pending:
            raise pending.pop(0)

    def changes_blocking(self, cursor: str | None, limit: int) -> Batch:
        self._call("changes")
        last = int(cursor or 0)
        uids = sorted(u for u in self.messages if u > last)
        batch = uids[:limit]
        new = str(batch[-1]) if batch else str(last)
        return Batch(tuple(MessageRef(str(u), len(self.messages[u])) for u in batch), new, len(uids) > limit)

    def fetch_blocking(self, ref: MessageRef, limit: int | None = None) -> bytes:
        self._call("fetch")
        return self.messages[int(ref.external_id)]

    def mark_tracked_blocking(self, ref: MessageRef) -> None:
        self._call("mark")
        self.tracked.add(int(ref.external_id))

    def remove_blocking(self, ref: MessageRef) -> None:
        self._call("remove")
        uid = int(ref.external_id)
        self.messages.pop(uid, None)
        self.removed.add(uid)

    def close_blocking(self) -> None:
        self.closed += 1

    def abort(self) -> None:
        self.calls.append("abort")
