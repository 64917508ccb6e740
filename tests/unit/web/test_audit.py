"""The audit search: filters, pages, JSON, bad filters refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ivr import services
from ivr.models import AuditEntry
from ivr.store import Store
from tests.unit.web.conftest import sign_in
from tests.unit.web.snapshot import snapshot


@pytest.fixture
def entries(store: Store) -> None:
    for i in range(60):
        services.record_audit(store, "admin" if i % 2 else "cli", "officer_edit",
                              f"officer:{i % 3}")
    services.record_audit(store, "auditor", "view_officer", "officer:1")
    with store.session() as s:
        old = s.scalars(select(AuditEntry).where(AuditEntry.actor == "auditor")).one()
        old.at = datetime(2020, 5, 17, 12, 0, tzinfo=UTC)


def test_given_filters_when_searched_as_json_then_only_the_matches_paginated(
        client: FlaskClient, entries: None) -> None:
    sign_in(client, "auditor")
    body = client.get("/audit?format=json&actor=admin&action=officer_edit").get_json()
    assert body["total"] == 30 and body["pages"] == 1 and len(body["entries"]) == 30
    assert {e["actor"] for e in body["entries"]} == {"admin"}
    everything = client.get("/audit?format=json&action=officer_edit").get_json()
    assert everything["total"] == 60 and everything["pages"] == 2
    page2 = client.get("/audit?format=json&action=officer_edit&page=2").get_json()
    assert len(page2["entries"]) == 10
    assert not {e["id"] for e in page2["entries"]} & {e["id"] for e in everything["entries"]}
    target = client.get("/audit?format=json&target=officer:1").get_json()
    assert target["total"] == 21


def test_given_a_date_range_when_searched_then_inclusive_utc_days(
        client: FlaskClient, entries: None) -> None:
    sign_in(client, "admin")
    day = client.get("/audit?format=json&since=2020-05-17&until=2020-05-17").get_json()
    assert [e["action"] for e in day["entries"]] == ["view_officer"]
    after = client.get("/audit?format=json&since=2020-05-18").get_json()
    assert after["total"] == 61  # the 60 and the admin's sign_in


def test_given_the_page_then_a_table_and_a_next_link(client: FlaskClient,
                                                     entries: None) -> None:
    sign_in(client, "auditor")
    page = client.get("/audit?action=officer_edit").get_data(as_text=True)
    assert page.count("data-audit=") == 50
    assert 'rel="next" href="/audit?' in page and "page=2" in page and "action=officer_edit" in page


@pytest.mark.parametrize("query", ["since=yesterday", "until=2020-13-01", "page=0",
                                   "page=x", "since=2020-05-18&until=2020-05-17"])
def test_given_a_bad_filter_then_422_filter_invalid_and_nothing_written(
        client: FlaskClient, store: Store, entries: None, query: str) -> None:
    sign_in(client, "auditor")
    before = snapshot(store)
    response = client.get(f"/audit?{query}", headers={"Accept": "application/json"})
    assert response.status_code == 422 and response.get_json()["error"] == "filter_invalid"
    assert snapshot(store) == before
