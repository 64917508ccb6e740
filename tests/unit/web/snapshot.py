"""Every row of every table: a test takes one before a refused request and one after, and
asserts they are equal (nothing written)."""

from __future__ import annotations

from sqlalchemy import select

from ivr.models import Base
from ivr.store import Store


def snapshot(store: Store) -> dict[str, list[tuple[str, ...]]]:
    with store.session() as s:
        return {table.name: sorted(tuple(str(v) for v in row)
                                   for row in s.execute(select(table)))
                for table in Base.metadata.sorted_tables}
