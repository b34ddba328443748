"""The sync state machine (tests/unit/sync/machine.py) against the in-memory mailbox: many steps, fast.

The suite runs a fixed sample (derandomised: the same 60 examples on every run, so a red CI run is a
defect anyone can replay, never a coin toss). Explore further with random examples, e.g.
``ABOOK_MACHINE_EXAMPLES=600 .venv/bin/python -m pytest -q tests/unit/sync/test_machine.py``; a failure
prints the steps to paste into a named test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from abook.mailbox.pim.memory import MemoryMailbox
from tests.unit.sync.machine import SyncMachine

EXPLORE = int(os.environ.get("ABOOK_MACHINE_EXAMPLES", "0"))


class MemorySyncMachine(SyncMachine):
    make_mailbox = staticmethod(lambda user: MemoryMailbox())  # type: ignore[assignment]


MemorySyncMachine.TestCase.settings = settings(max_examples=EXPLORE or 60, stateful_step_count=50 if EXPLORE else 40,
                                               deadline=None, derandomize=not EXPLORE, database=None,
                                               suppress_health_check=[HealthCheck.too_slow])
test_sync_machine_on_the_memory_mailbox = MemorySyncMachine.TestCase
