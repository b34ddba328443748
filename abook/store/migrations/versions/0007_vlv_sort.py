"""Indexes on the sort keys of Virtual List View and sorted searches, covering the visibility columns
(store/vlv_index.py), so a window of a 100k-entry book is counted and reached in the index.

Revision ID: 0007_vlv_sort
Revises: 0006_sync_leases
Create Date: 2026-12-07
"""

from alembic import op

from abook.store import vlv_index

revision = "0007_vlv_sort"
down_revision = "0006_sync_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    vlv_index.install(op.get_bind())


def downgrade() -> None:
    vlv_index.uninstall(op.get_bind())
