"""Create or upgrade the store's schema with Alembic, and check it at startup.

Alembic (with Mako and Pygments, which it pulls in) is imported only by ``upgrade`` and ``head_revision``:
the daemon and each LDAP worker check the store against ``HEAD`` with one plain query, which keeps about
8 MB of imported code out of every serving process (``tests/unit/store/test_schema.py`` holds ``HEAD``
equal to the migrations' head and checks that serving imports no Alembic)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from abook.errors import UserError
from abook.store import reaching, sqlite_file

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")

#: the newest migration's revision; update it with every new migration (a test compares it with Alembic's)
HEAD = "0007_vlv_sort"


def _alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create the schema in an empty database (a SQLite file: with its directory), or migrate an existing
    one to ``revision``."""
    from alembic import command

    database = sqlite_file(engine)
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the store's directory {database.parent}: {e.strerror}") from None
    with reaching(engine):
        command.upgrade(_alembic_config(engine), revision)


def head_revision() -> str:
    """The head of the migration scripts, as Alembic reads them."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(None))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision Alembic recorded in the store's ``alembic_version`` table (None: not created). A SQLite
    store whose file does not exist is not created by asking (only ``upgrade`` creates it); a store that
    cannot be reached raises StoreUnavailable, one line."""
    database = sqlite_file(engine)
    if database is not None and not database.exists():
        return None
    with reaching(engine), engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise UserError(f"the store records several schema revisions ({', '.join(sorted(rows))}): run `abook init`")
    return rows[0] if rows else None


def check(engine: Engine) -> None:
    """Refuse to serve from a store that `abook init` has not created or upgraded."""
    current, head = current_revision(engine), HEAD
    if current != head:
        raise UserError(
            f"the store is at schema revision {current or 'none'}, this abook needs {head}: run `abook init`"
        )
