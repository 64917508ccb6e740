"""caller_number: text on PostgreSQL (a SIP From user may be longer than 80 characters)

SQLite never enforced the declared length, so there is nothing to change there (and a type
change would make batch mode copy the call table). On PostgreSQL a longer From user made
open_call fail: the caller went to the dialplan fallback and the call was never logged.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("encounter", "call", "callback")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.alter_column(table, "caller_number", type_=sa.Text(),
                        existing_type=sa.String(length=80), existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.alter_column(table, "caller_number", type_=sa.String(length=80),
                        existing_type=sa.Text(), existing_nullable=True,
                        postgresql_using="left(caller_number, 80)")
