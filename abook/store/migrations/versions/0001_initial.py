"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-02

While the project has no release, this baseline creates the tables from the models and then installs
the search index (store/search_index.py). It is frozen into explicit operations before the first
release; every later change is a migration of its own.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    from abook.store import search_index
    from abook.store.models import Base

    bind = op.get_bind()
    Base.metadata.create_all(bind)
    search_index.install(bind)


def downgrade() -> None:
    from abook.store import search_index
    from abook.store.models import Base

    bind = op.get_bind()
    search_index.uninstall(bind)
    Base.metadata.drop_all(bind)
