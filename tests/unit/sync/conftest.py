from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from abook.store import Store, make_engine, schema
from tests.unit.sync.world import World

_TEMPLATE: list[Path] = []


def migrated_store(directory: Path, name: str = "sync") -> Store:
    """A fresh migrated SQLite store, copied from one migrated once per session (migrating costs ~0.5 s)."""
    if not _TEMPLATE:
        import tempfile

        template = Path(tempfile.mkdtemp(prefix="abook-sync-template-")) / "template.sqlite3"
        engine = make_engine(f"sqlite:///{template}")
        schema.upgrade(engine)
        engine.dispose()
        _TEMPLATE.append(template)
    path = directory / f"{name}.sqlite3"
    shutil.copyfile(_TEMPLATE[0], path)
    return Store(make_engine(f"sqlite:///{path}"))


def new_world(directory: Path, name: str = "sync", **kw: Any) -> World:
    return World(migrated_store(directory, name), **kw)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = new_world(tmp_path)
    yield w
    w.store.dispose()
