"""A second store of the same kind as ``store`` (round trips), and snapshots of a store's tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import select

from abook.store import Store, models
from abook.transfer.fields import TABLES, as_utc
from tests.helpers import REPO
from tests.helpers import new_store

DEMO = REPO / "ldif" / "demo.ldif"
MODELS = {**models.ENTITY_MODELS, "businessunit": models.BusinessUnit, "role": models.Role, "activity": models.Activity}


@pytest.fixture
def other_store(store: Store, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Store]:
    s = new_store(store.dialect if store.dialect == "sqlite" else "postgres", request, tmp_path)
    yield s
    s.dispose()


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table import/export carries, in key order, times as aware UTC."""
    tables = [MODELS[t].__table__ for t in TABLES] + [models.RolePrivilege.__table__, models.user_roles]
    out = {}
    with store.engine.connect() as conn:
        for t in tables:
            rows = conn.execute(select(t).order_by(*t.primary_key.columns)).all()
            out[t.name] = [tuple(as_utc(v) if hasattr(v, "tzinfo") else v for v in r) for r in rows]
    return out


@pytest.fixture(scope="session")
def directory_2000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 plain inetOrgPerson contacts from the shared generator (about a quarter non-ASCII)."""
    out = tmp_path_factory.mktemp("gen") / "contacts-2000.ldif"
    subprocess.run([sys.executable, str(REPO / "bench" / "gen_directory.py"), "-n", "2000", "-o", str(out)],
                   check=True, capture_output=True)
    return out
