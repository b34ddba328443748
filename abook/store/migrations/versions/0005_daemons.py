"""daemon: one row per daemon serving the store, written by its heartbeat (`abook status` lists them with
the mailbox leases they hold).

Revision ID: 0005_daemons
Revises: 0004_housetrack
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_daemons"
down_revision = "0004_housetrack"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemon",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("daemon")
