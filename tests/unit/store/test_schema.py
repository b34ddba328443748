"""`abook init` creates the schema on SQLite and PostgreSQL, and running it again changes nothing."""

from __future__ import annotations

from sqlalchemy import inspect

from abook.store import Store, make_engine, schema


def test_upgrade_creates_every_table_and_is_idempotent(store_url: str) -> None:
    engine = make_engine(store_url)
    assert schema.current_revision(engine) is None
    schema.upgrade(engine)
    assert schema.current_revision(engine) == schema.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"account", "contact", "lead", "queue", "systemuser", "equipment", "businessunit", "role",
            "activity", "activityparty", "email", "attachment", "emailsighting", "untracked"} <= tables
    schema.upgrade(engine)  # again: nothing to do, no error
    schema.check(engine)
    engine.dispose()


def test_email_lookup_uses_an_index(store: Store) -> None:
    """Resolving an address is an index probe on lower(email), not a table scan."""
    from sqlalchemy import func, select, text

    from abook.store.models import Contact

    stmt = select(Contact.id).where(func.lower(Contact.emailaddress2) == "x@example.com")
    with store.transaction() as s:
        if store.dialect == "sqlite":
            compiled = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(str(r) for r in s.execute(text("EXPLAIN QUERY PLAN " + compiled)))
            assert "USING INDEX ix_contact_emailaddress2_lower" in plan
        else:
            s.execute(text("SET enable_seqscan = off"))
            compiled = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
            plan = " ".join(r[0] for r in s.execute(text("EXPLAIN " + compiled)))
            assert "ix_contact_emailaddress2_lower" in plan


def test_migrations_build_exactly_the_models(store: Store) -> None:
    """`abook init` (the Alembic migrations) creates the schema the models describe, nothing more or
    less: a model change without a migration fails here."""
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from abook.store import search_index
    from abook.store.models import Base

    with store.engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLite cannot reflect expression indexes; PostgreSQL compares them
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # The search index's own tables and indexes are not models: they belong to store/search_index.py.
    diff = [d for d in diff if not (d[0] in ("remove_table", "remove_index") and search_index.owns(d[1].name))]
    assert diff == []


def test_downgrade_removes_everything_and_upgrade_rebuilds_it(store_url: str) -> None:
    from alembic import command

    engine = make_engine(store_url)
    schema.upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    command.downgrade(schema._alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    schema.upgrade(engine)
    assert set(inspect(engine).get_table_names()) == tables
    engine.dispose()


def test_head_constant_is_the_migrations_head() -> None:
    """The startup check compares with ``schema.HEAD``; a new migration must move it."""
    assert schema.HEAD == schema.head_revision()


def test_a_store_behind_head_is_refused(store_url: str) -> None:
    import pytest

    from abook.errors import UserError

    engine = make_engine(store_url)
    with pytest.raises(UserError, match="revision none.*abook init"):
        schema.check(engine)
    engine.dispose()
