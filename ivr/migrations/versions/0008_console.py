"""the supervisors' console: accounts, sign-in throttling, audit, outcomes, device tokens,
pre-registered encounters, desk binding and state, console commands; each call's own
reference (filled from its encounter's) and the encounter search's indexes

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=120), server_default="", nullable=False),
        sa.Column("address", sa.String(length=64), server_default="", nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index("ix_audit_actor", ["actor", "at"], unique=False)
        batch_op.create_index("ix_audit_at", ["at"], unique=False)
        batch_op.create_index("ix_audit_target", ["target", "at"], unique=False)

    op.create_table(
        "console_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_user")),
        sa.UniqueConstraint("username", name=op.f("uq_console_user_username")),
    )
    op.create_table(
        "login_failure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.create_index("ix_login_failure_address", ["address", "at"], unique=False)
        batch_op.create_index("ix_login_failure_username", ["username", "at"], unique=False)

    op.create_table(
        "device_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=12), nullable=False),
        sa.Column("officer_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=120), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["officer_id"], ["officer.id"], name=op.f("fk_device_token_officer_id_officer")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_device_token_token_hash")),
    )
    op.create_table(
        "call_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("by_user", sa.String(length=80), nullable=False),
        sa.Column("desk", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["call.id"], name=op.f("fk_call_outcome_call_id_call")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_outcome")),
    )
    with op.batch_alter_table("call_outcome", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_outcome_call_id"), ["call_id"], unique=False)

    op.create_table(
        "console_command",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("desk", sa.String(length=80), nullable=False),
        sa.Column("callback_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.String(length=200), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_id"], ["callback.id"], name=op.f("fk_console_command_callback_id_callback")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_command")),
    )
    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reference", sa.String(length=14), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("outcome", sa.String(length=30), nullable=True))
        batch_op.create_index("ix_call_caller_number", ["caller_number"], unique=False)
        batch_op.create_index(
            "ix_call_digits_entered", ["digits_entered", "started_at"], unique=False
        )
        batch_op.create_index("ix_call_encounter_id", ["encounter_id"], unique=False)
        batch_op.create_index("ix_call_outcome", ["outcome", "started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_reference"), ["reference"], unique=False)
        batch_op.create_index(
            "ix_call_supervisor_id", ["supervisor_id", "started_at"], unique=False
        )
    # every call so far was read its encounter's reference
    op.execute(
        "UPDATE call SET reference = (SELECT encounter.reference FROM encounter "
        "WHERE encounter.id = call.encounter_id)"
    )

    with op.batch_alter_table("encounter", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), server_default="call", nullable=False)
        )
        batch_op.add_column(sa.Column("place", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("purpose", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("device_token_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_encounter_officer_open", ["officer_id", "closed_at"], unique=False
        )

    with op.batch_alter_table("officer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unit", sa.String(length=120), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("station", sa.String(length=120), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("photo", sa.String(length=200), nullable=True))

    with op.batch_alter_table("supervisor", schema=None) as batch_op:
        batch_op.add_column(sa.Column("console_user", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("console_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("state", sa.String(length=20), server_default="unknown", nullable=False)
        )
        batch_op.add_column(sa.Column("state_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("wrapup_channel", sa.String(length=150), nullable=True))
        batch_op.add_column(sa.Column("last_channel", sa.String(length=150), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("supervisor", schema=None) as batch_op:
        batch_op.drop_column("last_channel")
        batch_op.drop_column("wrapup_channel")
        batch_op.drop_column("state_since")
        batch_op.drop_column("state")
        batch_op.drop_column("console_since")
        batch_op.drop_column("console_user")

    with op.batch_alter_table("officer", schema=None) as batch_op:
        batch_op.drop_column("photo")
        batch_op.drop_column("station")
        batch_op.drop_column("unit")

    with op.batch_alter_table("encounter", schema=None) as batch_op:
        batch_op.drop_index("ix_encounter_officer_open")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("device_token_id")
        batch_op.drop_column("purpose")
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")
        batch_op.drop_column("place")
        batch_op.drop_column("kind")

    with op.batch_alter_table("call", schema=None) as batch_op:
        batch_op.drop_index("ix_call_supervisor_id")
        batch_op.drop_index(batch_op.f("ix_call_reference"))
        batch_op.drop_index("ix_call_outcome")
        batch_op.drop_index("ix_call_encounter_id")
        batch_op.drop_index("ix_call_digits_entered")
        batch_op.drop_index("ix_call_caller_number")
        batch_op.drop_column("outcome")
        batch_op.drop_column("reference")

    op.drop_table("console_command")
    with op.batch_alter_table("call_outcome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_outcome_call_id"))

    op.drop_table("call_outcome")
    op.drop_table("device_token")
    with op.batch_alter_table("login_failure", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failure_username")
        batch_op.drop_index("ix_login_failure_address")

    op.drop_table("login_failure")
    op.drop_table("console_user")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_target")
        batch_op.drop_index("ix_audit_at")
        batch_op.drop_index("ix_audit_actor")

    op.drop_table("audit")
