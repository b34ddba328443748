"""The CLI fixtures of tests/unit/cli (a config file on a migrated SQLite store, `abook` run in-process)."""

from tests.unit.cli.conftest import abook, config  # noqa: F401  (fixtures, found by name)
