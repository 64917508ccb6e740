"""indexes that keep the line's reads independent of the history's size: the calls still
open (a partial index: what every resync and the dashboard ask), a caller's calls by time
(the rate count of every lookup) and an officer's open pre-registration (every lookup)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPEN = sa.text("ended_at IS NULL")


def upgrade() -> None:
    op.create_index("ix_call_open", "call", ["id"], unique=False, sqlite_where=OPEN,
                    postgresql_where=OPEN)
    # (caller_number) alone: a number with thousands of past calls was counted row by row
    op.drop_index("ix_call_caller_number", table_name="call")
    op.create_index("ix_call_caller_number", "call", ["caller_number", "started_at"],
                    unique=False)
    # (officer_id, closed_at): a call's encounter is never closed, so every past call about
    # the officer was read to find the one open pre-registration
    op.drop_index("ix_encounter_officer_open", table_name="encounter")
    op.create_index("ix_encounter_officer_open", "encounter",
                    ["officer_id", "kind", "closed_at", "opened_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_encounter_officer_open", table_name="encounter")
    op.create_index("ix_encounter_officer_open", "encounter", ["officer_id", "closed_at"],
                    unique=False)
    op.drop_index("ix_call_caller_number", table_name="call")
    op.create_index("ix_call_caller_number", "call", ["caller_number"], unique=False)
    op.drop_index("ix_call_open", table_name="call")
