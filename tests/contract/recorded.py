"""abook's calls to a mailbox (IPimStore) recorded and made to fail on demand, for the sync contract suite
and state machine: mix ``RecordedCalls`` in before the backend class and call ``start_recording()``."""

from __future__ import annotations

from typing import Optional

from abook.mailbox.pim.interfaces import Changes, Item, Listed
from abook.mailbox.pim.memory import WRITES, Failure
from abook.mailbox.pim.schema import Values


class RecordedCalls:
    calls: list[str]
    failures: list[Failure]

    def start_recording(self) -> None:
        self.calls = []
        self.failures = []

    def _rec(self, op: str) -> None:
        self.calls.append(op)
        for f in list(self.failures):
            if f.times > 0 and f.op in (op, "any"):
                f.times -= 1
                if f.times == 0:
                    self.failures.remove(f)
                raise f.error

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        self._rec("changes")
        return super().changes_blocking(entity, token)  # type: ignore[misc, no-any-return]

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        self._rec("get")
        return super().get_blocking(entity, ids)  # type: ignore[misc, no-any-return]

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        self._rec("create")
        return super().create_blocking(entity, values, crm_id, notify)  # type: ignore[misc, no-any-return]

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        self._rec("update")
        return super().update_blocking(entity, item_id, etag, values, crm_id)  # type: ignore[misc, no-any-return]

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        self._rec("delete")
        super().delete_blocking(entity, item_id, etag, notify)  # type: ignore[misc]

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        self._rec("find")
        return super().find_blocking(entity, crm_id)  # type: ignore[misc, no-any-return]

    def fail_next(self, op: str, error: Exception | None = None, times: int = 1, item_id: Optional[str] = None) -> None:
        from abook.mailbox.errors import Unavailable

        self.failures.append(Failure(op, error or Unavailable(f"{op} failed (test)"), times, item_id))

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in WRITES]
