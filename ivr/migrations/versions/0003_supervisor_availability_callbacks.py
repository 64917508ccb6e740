"""supervisor availability (paused, signed out) and the callback list

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("supervisor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("signed_out", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("pause_reason", sa.String(length=40), nullable=False,
                                      server_default=""))
    op.create_table(
        "callback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("caller_number", sa.String(length=80), nullable=True),
        sa.Column("reference", sa.String(length=12), nullable=False),
        sa.Column("digits_entered", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["call.id"], name=op.f("fk_callback_call_id_call")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback")),
        sa.UniqueConstraint("call_id", name=op.f("uq_callback_call_id")),
    )


def downgrade() -> None:
    op.drop_table("callback")
    with op.batch_alter_table("supervisor", schema=None) as batch_op:
        batch_op.drop_column("pause_reason")
        batch_op.drop_column("signed_out")
        batch_op.drop_column("paused")
