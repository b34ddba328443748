"""mailboxstate.failures_in_row: polls in a row that failed, of any kind (the router backs off and alerts on
it, `abook status` shows it); consecutive_failures keeps counting the permanent ones only.

Revision ID: 0003
Revises: 0002_sync
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mailboxstate", sa.Column("failures_in_row", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("mailboxstate") as batch:
        batch.drop_column("failures_in_row")
