"""Synchronisation with mailboxes: the contact fields a mailbox contact has, what appointments and phone
calls need, each user's sync switch, and the sync state (links, tokens, conflicts, item errors).

Revision ID: 0002_sync
Revises: 0001
Create Date: 2026-12-07

``synclink`` had no code writing it before this revision, so it is rebuilt rather than altered.
New NOT NULL columns get a server default so existing rows migrate.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_sync"
down_revision = "0001"
branch_labels = None
depends_on = None

_CONTACT = [("business2", 64), ("home2", 64), ("company", 64), ("assistantname", 100), ("assistantphone", 64),
            ("managername", 100), ("spousesname", 100), ("childrensnames", 255)]


def _synclink_0001() -> None:
    op.create_table(
        "synclink",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("systemuser_id", sa.String(length=36), nullable=False),
        sa.Column("crm_type", sa.String(length=32), nullable=False),
        sa.Column("crm_id", sa.String(length=36), nullable=False),
        sa.Column("exchange_id", sa.String(length=512), nullable=False),
        sa.Column("change_key", sa.String(length=512), nullable=True),
        sa.Column("crm_hash", sa.String(length=64), nullable=True),
        sa.Column("exchange_hash", sa.String(length=64), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["systemuser_id"], ["systemuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("systemuser_id", "crm_type", "crm_id", name="uq_synclink_crm"),
        sa.UniqueConstraint("systemuser_id", "exchange_id", name="uq_synclink_exchange"),
    )
    op.create_index(op.f("ix_synclink_systemuser_id"), "synclink", ["systemuser_id"], unique=False)


def upgrade() -> None:
    # plain ALTER TABLE ... ADD COLUMN: a batch rebuild on SQLite would lose the expression indexes and the
    # search index's triggers, which it cannot reflect
    for name, length in _CONTACT:
        op.add_column("contact", sa.Column(name, sa.String(length=length), nullable=True))
    op.add_column("contact", sa.Column("birthdate", sa.Date(), nullable=True))
    op.add_column("contact", sa.Column("anniversary", sa.Date(), nullable=True))
    op.add_column("activity", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("activity", sa.Column("globalobjectid", sa.String(length=255), nullable=True))
    op.add_column("activity", sa.Column("seriesid", sa.String(length=255), nullable=True))
    op.add_column("activity", sa.Column("originalstart", sa.DateTime(timezone=True), nullable=True))
    op.add_column("activity", sa.Column("phonenumber", sa.String(length=64), nullable=True))
    op.add_column("activity", sa.Column("directioncode", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_activity_globalobjectid", "activity", ["globalobjectid"], unique=False)
    op.create_index("ix_activity_seriesid", "activity", ["seriesid"], unique=False)
    op.add_column("systemuser", sa.Column("sync_enabled", sa.Boolean(), nullable=False, server_default=sa.false()))

    op.drop_index(op.f("ix_synclink_systemuser_id"), table_name="synclink")
    op.drop_table("synclink")
    op.create_table(
        "synclink",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("systemuser_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("crm_type", sa.String(length=32), nullable=False),
        sa.Column("crm_id", sa.String(length=36), nullable=False),
        sa.Column("mailbox_id", sa.String(length=1024), nullable=True),
        sa.Column("mailbox_etag", sa.String(length=512), nullable=True),
        sa.Column("crm_etag", sa.String(length=128), nullable=True),
        sa.Column("crm_hash", sa.String(length=64), nullable=True),
        sa.Column("mailbox_hash", sa.String(length=64), nullable=True),
        sa.Column("crm_values", sa.Text(), nullable=True),
        sa.Column("mailbox_values", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owned", sa.Boolean(), nullable=False),
        sa.Column("resolve", sa.String(length=16), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("verify", sa.Boolean(), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["systemuser_id"], ["systemuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("systemuser_id", "crm_id", name="uq_synclink_crm"),
        sa.UniqueConstraint("systemuser_id", "entity", "mailbox_id", name="uq_synclink_mailbox"),
    )
    op.create_index("ix_synclink_user_entity", "synclink", ["systemuser_id", "entity"], unique=False)
    op.create_table(
        "syncstate",
        sa.Column("systemuser_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_counts", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["systemuser_id"], ["systemuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("systemuser_id", "entity"),
    )
    op.create_table(
        "syncconflict",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("systemuser_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("crm_type", sa.String(length=32), nullable=False),
        sa.Column("crm_id", sa.String(length=36), nullable=False),
        sa.Column("mailbox_id", sa.String(length=1024), nullable=True),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("winner", sa.String(length=16), nullable=True),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["systemuser_id"], ["systemuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_syncconflict_user_status", "syncconflict", ["systemuser_id", "status"], unique=False)
    op.create_table(
        "syncissue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("systemuser_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("item", sa.String(length=1100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["systemuser_id"], ["systemuser.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("systemuser_id", "entity", "item", name="uq_syncissue_item"),
    )


def downgrade() -> None:
    op.drop_table("syncissue")
    op.drop_index("ix_syncconflict_user_status", table_name="syncconflict")
    op.drop_table("syncconflict")
    op.drop_table("syncstate")
    op.drop_index("ix_synclink_user_entity", table_name="synclink")
    op.drop_table("synclink")
    _synclink_0001()
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+, PostgreSQL), for the reason given in upgrade()
    op.drop_index("ix_activity_seriesid", table_name="activity")
    op.drop_index("ix_activity_globalobjectid", table_name="activity")
    drops = {"systemuser": ["sync_enabled"],
             "activity": ["directioncode", "phonenumber", "originalstart", "seriesid", "globalobjectid", "timezone"],
             "contact": ["anniversary", "birthdate", *reversed([n for n, _ in _CONTACT])]}
    for table, columns in drops.items():
        for name in columns:
            op.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
