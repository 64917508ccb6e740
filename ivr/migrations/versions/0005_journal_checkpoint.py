"""journal_checkpoint: how far the database has applied each local journal

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_checkpoint",
        sa.Column("journal_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("journal_id", name=op.f("pk_journal_checkpoint")),
    )


def downgrade() -> None:
    op.drop_table("journal_checkpoint")
