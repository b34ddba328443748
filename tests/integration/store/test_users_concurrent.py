"""Tracking numbers handed out by several threads at once never collide (on SQLite and PostgreSQL). Real
threads, so it lives here rather than in tests/unit/store/test_users.py (issue 15, item 5)."""

from __future__ import annotations

import threading

import pytest

from abook.store import Store
from abook.store.users import create_user_txn
from tests.unit.store.test_users import _build


@pytest.fixture
def org(store: Store) -> Store:
    """Org > (Sales > East, Support) on each database."""
    return _build(store)


def test_concurrent_allocations_never_share_a_number(org: Store) -> None:
    results: list[int] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(5):
                with org.transaction() as s:
                    results.append(create_user_txn(s, f"w{i}-{j}", "East").tracking_number or 0)
        except BaseException as e:  # reported below: the test fails with it
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == list(range(1, 21))
