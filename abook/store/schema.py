"""Create or upgrade the store's schema with Alembic, and check it at startup."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from abook.errors import UserError

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create the schema in an empty database, or migrate an existing one to ``revision``."""
    command.upgrade(_alembic_config(engine), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(None))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check(engine: Engine) -> None:
    """Refuse to serve from a store that `abook init` has not created or upgraded."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise UserError(
            f"the store is at schema revision {current or 'none'}, this abook needs {head}: run `abook init`"
        )
