from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from abook.store import Store, make_engine, schema
from tests.unit.sync.world import World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'sync.sqlite3'}"))
    schema.upgrade(store.engine)
    yield World(store)
    store.dispose()
