"""synclease: which daemon syncs a user now and when the user is due next, shared by every daemon of a
store (store/sync_leases.py).

Revision ID: 0006_sync_leases
Revises: 0005_daemons
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_sync_leases"
down_revision = "0005_daemons"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "synclease",
        sa.Column("systemuser_id", sa.String(36), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("synclease")
