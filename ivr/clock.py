"""Time in one place: always timezone-aware UTC (the store, ivr.models.UtcDateTime, takes and
gives only aware UTC datetimes, on every backend)."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Convert an aware datetime to UTC; a naive one is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    aware = as_utc(value)
    return None if aware is None else aware.isoformat(timespec="milliseconds")
