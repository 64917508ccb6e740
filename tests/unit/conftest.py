"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ivr.store import Store


@pytest.fixture
def store(tmp_path) -> Iterator[Store]:
    """A migrated SQLite store of its own."""
    s = Store(f"sqlite:///{tmp_path / 't.db'}")
    s.migrate()
    yield s
    s.dispose()
