"""Shared fixtures. Server fixtures live in tests/fixtures/ (each module is loaded as a plugin)."""

from __future__ import annotations

import pkgutil
from pathlib import Path
from typing import Iterator

import pytest

from abook.store import Store, make_engine, schema
from tests import confine
from tests.helpers import new_database

confine.install()

pytest_plugins = [
    f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules([str(Path(__file__).with_name("fixtures"))])
]


#: ``make test`` runs files in parallel (pytest-xdist, ``--dist loadfile``), each file whole in one worker and
#: handed out in collection order: the files that take longest start first, so the run does not end with
#: one worker still busy on a long file while the others are idle
_FIRST = ("tests/integration/test_ldap_workers.py", "tests/integration/test_router_imap.py",
          "tests/graph/test_graph_daemon.py", "tests/integration/test_signals.py",
          "tests/integration/test_ldap_strict.py", "tests/integration/test_mailbox_limits.py",
          "tests/integration/test_store_outage.py", "tests/integration/test_several_daemons.py",
          "tests/integration/test_first_deployment.py", "tests/integration/", "tests/graph/", "tests/ews/",
          "tests/contract/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(_FIRST) if item.nodeid.startswith(prefix)), len(_FIRST))

    items.sort(key=rank)  # stable: within a rank, the files and their tests keep their order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any test reached outside the repository, even where the error was swallowed."""
    if confine.violations:
        print("\ntests reached outside the repository:\n  " + "\n  ".join(sorted(set(confine.violations))))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh, empty database: a SQLite file, then a database on the private PostgreSQL."""
    return new_database(request.param, request, tmp_path)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated store on each database, whose transactions run inline (no reactor needed)."""
    s = Store(make_engine(store_url))
    schema.upgrade(s.engine)
    yield s
    s.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store(make_engine(f"sqlite:///{tmp_path / 'abook.sqlite3'}"))
    schema.upgrade(s.engine)
    yield s
    s.dispose()
