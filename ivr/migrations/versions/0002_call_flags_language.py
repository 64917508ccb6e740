"""call flags (many lookups, emergency, asked for a supervisor) and the caller's language

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.String(length=200), nullable=False,
                                      server_default=""))
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=False,
                                      server_default="en"))


def downgrade() -> None:
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_column("language")
        batch_op.drop_column("flags")
