"""Encounter search pages: keyset cursors (after/before) walk the newest-first order without
skipping or repeating a call (ties on started_at broken by id), and the count is capped."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ivr import search, services
from ivr.search import Cursor, SearchFilters
from ivr.store import Store
from tests.unit import console_rows as rows

JSON = {"Accept": "application/json"}
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def fill(store: Store, n: int = 8) -> list[int]:
    """n calls, two of each started_at (ties), returned newest first as the search orders."""
    with store.session() as s:
        made = [rows.call(s, started=T0 + timedelta(minutes=i // 2), ended=True)
                for i in range(n)]
        return [c.id for c in sorted(made, key=lambda c: (c.started_at, c.id), reverse=True)]


def ids(found: dict[str, Any]) -> list[int]:
    return [r["call_id"] for r in found["rows"]]


def test_given_ties_when_walking_older_then_newer_pages_then_every_call_once_in_order(
        store: Store) -> None:
    order = fill(store)
    first = services.encounter_search(store, SearchFilters(), per_page=3)
    assert ids(first) == order[:3] and first["before"] is None
    second = services.encounter_search(store, SearchFilters(), per_page=3,
                                       cursor=Cursor(first["after"], older=True))
    third = services.encounter_search(store, SearchFilters(), per_page=3,
                                      cursor=Cursor(second["after"], older=True))
    assert ids(second) == order[3:6] and ids(third) == order[6:]
    assert third["after"] is None and third["before"] == order[6]
    back = services.encounter_search(store, SearchFilters(), per_page=3,
                                     cursor=Cursor(third["before"], older=False))
    assert ids(back) == order[3:6] and back["after"] == order[5]
    top = services.encounter_search(store, SearchFilters(), per_page=3,
                                    cursor=Cursor(back["before"], older=False))
    assert ids(top) == order[:3] and top["before"] is None and top["page"] is None


def test_given_more_matches_than_the_cap_then_the_count_says_so(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, 6)
    monkeypatch.setattr(search, "COUNT_CAP", 4)
    found = services.encounter_search(store, SearchFilters(), per_page=3)
    assert (found["total"], found["total_capped"]) == (4, True)
    monkeypatch.setattr(search, "COUNT_CAP", 6)
    found = services.encounter_search(store, SearchFilters(), per_page=3)
    assert (found["total"], found["total_capped"]) == (6, False)


def test_given_the_search_page_then_its_links_are_cursors_and_bad_cursors_are_refused(
        as_role: Any, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    order = fill(store, 60)
    monkeypatch.setattr(search, "COUNT_CAP", 55)
    client = as_role("auditor")
    page = client.get("/encounters").get_data(as_text=True)
    assert "55+ calls found" in page and 'data-capped="yes"' in page
    older = re.search(r'rel="next" href="([^"]+)"', page)
    assert older is not None and f"after={order[49]}" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&"), headers=JSON).get_json()
    assert ids(second) == order[50:] and second["after"] is None
    for bad in ("after=x", "after=1&before=2", "after=99999999"):
        refused = client.get(f"/encounters?{bad}", headers=JSON)
        assert refused.status_code == 422 and refused.get_json()["error"] == "filter_invalid"
