"""emailawait: replies tracked before the email they answer wait for its Message-ID (store/replies.py).

Revision ID: 0004_housetrack
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_housetrack"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "emailawait",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email_id", sa.String(length=36), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["email_id"], ["email.activity_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_emailawait_email_id", "emailawait", ["email_id"])
    op.create_index("ix_emailawait_message_id", "emailawait", ["message_id"])


def downgrade() -> None:
    op.drop_index("ix_emailawait_message_id", table_name="emailawait")
    op.drop_index("ix_emailawait_email_id", table_name="emailawait")
    op.drop_table("emailawait")
