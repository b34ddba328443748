"""Alembic environment: runs migrations on the engine that abook.store.schema hands over."""

from alembic import context

from abook.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    engine = config.attributes["engine"]
    with engine.begin() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=engine.dialect.name == "sqlite",
        )
        context.run_migrations()


run()
