"""The sync state machine (tests/unit/sync/machine.py) against the in-memory mailbox: many steps, fast."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

from abook.mailbox.pim.memory import MemoryMailbox
from tests.unit.sync.machine import SyncMachine


class MemorySyncMachine(SyncMachine):
    make_mailbox = staticmethod(lambda user: MemoryMailbox())  # type: ignore[assignment]


MemorySyncMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None, derandomize=True,
                                               suppress_health_check=[HealthCheck.too_slow])
test_sync_machine_on_the_memory_mailbox = MemorySyncMachine.TestCase
