"""every stored time in UTC: rewrite SQLite's datetimes, and a store_notice table

On SQLite, SQLAlchemy wrote an aware datetime's wall-clock time and dropped its offset; reading
it back as UTC put a +05:30 duty window 5 h 30 late. The models now convert to UTC on the way
in (ivr.models.UtcDateTime). Here, on SQLite, every stored datetime is rewritten in the
canonical UTC text form:

- text WITH an offset (written by another tool) names its instant: converted to UTC;
- text without one was written by the app, which only ever wrote UTC times (ivr.clock.now)
  except for the roster's duty windows, so it is kept as it is. Those windows lost their
  offset and no row says what it was: the migration warns, naming how many officers, and
  leaves a store_notice that ``verifyline doctor`` reports until the roster is re-imported.

PostgreSQL's columns are timestamptz, which always kept the instant: nothing to rewrite.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

# every datetime column as of revision 0006 (listed here, not read from the models, so the
# migration keeps doing the same thing whatever the models become)
DATETIME_COLUMNS = {
    "officer": ("on_duty_from", "on_duty_until"),
    "supervisor": ("idle_since",),
    "encounter": ("opened_at",),
    "call": ("started_at", "answered_at", "ended_at"),
    "call_event": ("at",),
    "callback": ("created_at", "done_at"),
}
# the same key and fix as ivr.roster.LOST_OFFSETS_NOTICE, which a roster import deletes
NOTICE_KEY = "roster_offsets_lost"
NOTICE_FIX = "re-import the roster: verifyline roster import FILE"


def _canonical(value: datetime) -> str:
    """SQLAlchemy's SQLite storage form, which sorts and compares as text."""
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}")


def _rewrite(bind: sa.Connection, table: str, column: str) -> tuple[int, set[int]]:
    """Rewrite one column; return how many values changed and the rowids still naive."""
    changed, naive = 0, set()
    rows = bind.execute(sa.text(
        f'SELECT rowid, "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL')).all()
    for rowid, raw in rows:
        try:
            value = datetime.fromisoformat(str(raw).strip())
        except ValueError:
            log.warning("%s.%s row %s: %r is not a date-time; left as it is",
                        table, column, rowid, raw)
            continue
        if value.tzinfo is None:
            naive.add(rowid)
        else:
            value = value.astimezone(UTC).replace(tzinfo=None)
        text = _canonical(value)
        if text != raw:
            bind.execute(sa.text(f'UPDATE "{table}" SET "{column}" = :v WHERE rowid = :r'),
                         {"v": text, "r": rowid})
            changed += 1
    return changed, naive


def upgrade() -> None:
    op.create_table(
        "store_notice",
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("fix", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_store_notice")),
    )
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    lost: set[int] = set()
    for table, columns in DATETIME_COLUMNS.items():
        for column in columns:
            changed, naive = _rewrite(bind, table, column)
            if changed:
                log.info("%s.%s: %d value(s) rewritten in UTC", table, column, changed)
            if table == "officer":
                lost |= naive
    if not lost:
        return
    detail = (f"the duty windows of {len(lost)} officer(s) were stored without their UTC "
              "offset by an older version and may be hours wrong (read as UTC)")
    log.warning("%s; %s", detail, NOTICE_FIX)
    bind.execute(sa.text("INSERT INTO store_notice (key, detail, fix, created_at) "
                         "VALUES (:k, :d, :f, :t)"),
                 {"k": NOTICE_KEY, "d": detail, "f": NOTICE_FIX,
                  "t": _canonical(datetime.now(UTC))})


def downgrade() -> None:
    # the rewritten times stay in UTC: that is what the app always meant them to be
    op.drop_table("store_notice")
