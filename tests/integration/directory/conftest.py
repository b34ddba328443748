"""The directory fixtures of tests/unit/directory (a small organisation in SQLite and PostgreSQL), for the
directory tests that run real threads and wait on the clock."""

from tests.unit.directory.conftest import org_store, search  # noqa: F401  (fixtures, found by name)
