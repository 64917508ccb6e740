"""The pre-registration API: bearer tokens, JSON only, stable error ids, nothing written on
a refusal, and never the caller's number."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ivr import calllog, preregistration, roster, services
from ivr.clock import now
from ivr.models import (
    AuditEntry,
    Call,
    CallOutcome,
    CallPath,
    DeviceToken,
    Encounter,
    Officer,
    OfficerStatus,
    Supervisor,
)
from ivr.store import Store
from tests.unit.web.snapshot import snapshot

DEMO = (Path(__file__).resolve().parents[3] / "ivr" / "demo_roster.csv").read_text()
BODY = {"place": "High Street, outside no. 12", "latitude": 51.5072, "longitude": -0.1276,
        "purpose": "stop and search"}


@pytest.fixture
def token(store: Store) -> str:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
    return services.add_token(store, "123456", "Jane's phone", "admin")[1]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _open(client: FlaskClient, token: str, body: Any = None) -> Any:
    return client.post("/api/v1/encounters", json=BODY if body is None else body,
                       headers=_auth(token))


def test_given_a_token_when_opening_then_201_with_a_reference_audited_and_last_used(
        client: FlaskClient, store: Store, token: str) -> None:
    response = _open(client, token)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["place"] == BODY["place"] and body["purpose"] == "stop and search"
    assert body["latitude"] == 51.5072 and body["open"] is True and body["called"] is False
    assert response.headers["Location"] == f"/api/v1/encounters/{body['reference']}"
    assert client.get_cookie("verifyline_session") is None  # no cookie for a device
    with store.session() as s:
        enc = s.scalars(select(Encounter).where(Encounter.reference == body["reference"])).one()
        assert enc.officer is not None
        assert (enc.kind, enc.officer.warrant_number) == ("device", "123456")
        row = s.scalars(select(DeviceToken)).one()
        assert row.last_used_at is not None and enc.device_token_id == row.id
        entry = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "api_open_encounter")).one()
    assert entry.actor == f"token:{token[:8]}"
    assert entry.target == f"encounter:{body['reference']}"


def test_given_an_open_one_when_opening_another_then_409_with_its_reference(
        client: FlaskClient, store: Store, token: str) -> None:
    first = _open(client, token).get_json()["reference"]
    before = snapshot(store)
    again = _open(client, token)
    assert again.status_code == 409
    assert again.get_json()["error"] == "encounter_open"
    assert again.get_json()["reference"] == first
    assert snapshot(store) == before


def test_given_an_open_one_past_twelve_hours_then_it_is_no_longer_open(
        client: FlaskClient, store: Store, token: str) -> None:
    ref = _open(client, token).get_json()["reference"]
    with store.session() as s:
        enc = s.scalars(select(Encounter).where(Encounter.reference == ref)).one()
        enc.opened_at = now() - timedelta(hours=preregistration.PREREGISTRATION_HOURS,
                                          seconds=1)
        assert preregistration.current(s, enc.officer_id or 0, now()) is None
    assert client.get(f"/api/v1/encounters/{ref}", headers=_auth(token)).get_json()["open"] \
        is False
    assert client.get("/api/v1/encounters?open=1", headers=_auth(token)).get_json() == {
        "encounters": []}
    assert _open(client, token).status_code == 201


@pytest.mark.parametrize(("headers", "error"), [
    ({}, "token_invalid"),
    ({"Authorization": "Basic abc"}, "token_invalid"),
    ({"Authorization": "Bearer not-a-token"}, "token_invalid"),
])
def test_given_no_or_an_unknown_token_then_401_token_invalid_and_nothing_written(
        client: FlaskClient, store: Store, token: str, headers: dict[str, str],
        error: str) -> None:
    before = snapshot(store)
    for method, path in (("POST", "/api/v1/encounters"), ("GET", "/api/v1/encounters"),
                         ("GET", "/api/v1/encounters/123456"),
                         ("POST", "/api/v1/encounters/123456/close")):
        response = client.open(path, method=method, json=BODY, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.get_json()["error"] == error
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(store) == before


def test_given_a_revoked_token_then_401_token_revoked(client: FlaskClient, store: Store,
                                                      token: str) -> None:
    with store.session() as s:
        token_id = s.scalars(select(DeviceToken.id)).one()
    services.revoke_token(store, token_id, "admin")
    before = snapshot(store)
    response = _open(client, token)
    assert response.status_code == 401 and response.get_json()["error"] == "token_revoked"
    assert snapshot(store) == before


def test_given_the_officer_withdrawn_then_403_officer_restricted(
        client: FlaskClient, store: Store, token: str) -> None:
    with store.session() as s:
        s.scalars(select(Officer).where(Officer.warrant_number == "123456")).one().status = \
            OfficerStatus.WITHDRAWN
    before = snapshot(store)
    response = _open(client, token)
    assert response.status_code == 403 and response.get_json()["error"] == "officer_restricted"
    listing = client.get("/api/v1/encounters", headers=_auth(token))
    assert listing.status_code == 403
    assert snapshot(store) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_given_malformed_json_then_400_json_invalid_and_nothing_written(
        client: FlaskClient, store: Store, token: str, raw: bytes) -> None:
    before = snapshot(store)
    response = client.post("/api/v1/encounters", data=raw, headers={
        **_auth(token), "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"] == "json_invalid"
    assert snapshot(store) == before


@pytest.mark.parametrize(("body", "fields"), [
    ({"purpose": "x"}, {"place"}),
    ({"place": "  ", "purpose": ""}, {"place", "purpose"}),
    ({**BODY, "latitude": 91}, {"latitude"}),
    ({**BODY, "longitude": -180.5}, {"longitude"}),
    ({**BODY, "latitude": "51.5"}, {"latitude"}),
    ({**BODY, "latitude": True}, {"latitude"}),
    ({"place": "p", "purpose": "q", "latitude": 51.0}, {"longitude"}),
    ({**BODY, "place": "p" * 501}, {"place"}),
])
def test_given_invalid_fields_then_422_naming_them_and_nothing_written(
        client: FlaskClient, store: Store, token: str, body: dict[str, object],
        fields: set[str]) -> None:
    before = snapshot(store)
    response = _open(client, token, body)
    assert response.status_code == 422
    got = response.get_json()
    assert got["error"] == "encounter_invalid" and set(got["fields"]) == fields
    assert snapshot(store) == before


def _attach_call(store: Store, reference: str) -> None:
    """A verification call logged against the pre-registration, answered at desk1, with an
    outcome (what helper LINE's check_number and the outcome form will write)."""
    at = now()
    with store.session() as s:
        calllog.ensure_desks(s, ["desk1"])
    with store.session() as s:
        enc = s.scalars(select(Encounter).where(Encounter.reference == reference)).one()
        desk = s.scalars(select(Supervisor).where(Supervisor.desk == "desk1")).one()
        call = Call(channel_id="1700000000.1", reference="987654", encounter_id=enc.id,
                    caller_number="07700900123", digits_entered="123456", started_at=at,
                    answered_at=at, ended_at=at, path=CallPath.ARI, supervisor_id=desk.id,
                    outcome="verified")
        s.add(call)
        s.flush()
        s.add(CallOutcome(call_id=call.id, at=at, outcome="verified", note="all fine",
                          by_user="supervisor", desk="desk1"))


def test_given_a_call_about_it_when_the_device_gets_it_then_called_and_the_outcome_only(
        client: FlaskClient, store: Store, token: str) -> None:
    ref = _open(client, token).get_json()["reference"]
    _attach_call(store, ref)
    response = client.get(f"/api/v1/encounters/{ref}", headers=_auth(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body["called"] is True
    (call,) = body["calls"]
    assert call["supervisor"] == "desk1" and call["outcome"] == "verified"
    assert call["outcome_at"] is not None and call["answered_at"] is not None
    text = json.dumps(body)
    assert "07700900123" not in text and "caller" not in text and "all fine" not in text
    assert "987654" not in text  # the reference the caller was read would identify them


def test_given_another_officer_s_or_an_unknown_reference_then_404(
        client: FlaskClient, store: Store, token: str) -> None:
    other = services.add_token(store, "0042", "", "admin")[1]
    ref = _open(client, other).get_json()["reference"]
    before = snapshot(store)
    for path in (f"/api/v1/encounters/{ref}", "/api/v1/encounters/000000"):
        got = client.get(path, headers=_auth(token))
        assert got.status_code == 404 and got.get_json()["error"] == "encounter_not_found"
    closing = client.post(f"/api/v1/encounters/{ref}/close", headers=_auth(token))
    assert closing.status_code == 404
    assert snapshot(store) == before


def test_given_an_open_one_when_closed_twice_then_200_then_409(
        client: FlaskClient, store: Store, token: str) -> None:
    ref = _open(client, token).get_json()["reference"]
    closed = client.post(f"/api/v1/encounters/{ref}/close", headers=_auth(token))
    assert closed.status_code == 200
    assert closed.get_json()["open"] is False and closed.get_json()["closed_at"] is not None
    before = snapshot(store)
    again = client.post(f"/api/v1/encounters/{ref}/close", headers=_auth(token))
    assert again.status_code == 409 and again.get_json()["error"] == "encounter_closed"
    assert snapshot(store) == before
    with store.session() as s:
        assert preregistration.current(s, s.scalars(select(Officer.id).where(
            Officer.warrant_number == "123456")).one(), now()) is None


def test_given_several_when_listed_then_newest_first_and_open_filters(
        client: FlaskClient, token: str) -> None:
    first = _open(client, token).get_json()["reference"]
    client.post(f"/api/v1/encounters/{first}/close", headers=_auth(token))
    second = _open(client, token).get_json()["reference"]
    every = client.get("/api/v1/encounters", headers=_auth(token)).get_json()["encounters"]
    assert [e["reference"] for e in every] == [second, first]
    opened = client.get("/api/v1/encounters?open=1", headers=_auth(token)).get_json()
    assert [e["reference"] for e in opened["encounters"]] == [second]


def test_given_an_unknown_api_route_then_json_404(client: FlaskClient, token: str) -> None:
    response = client.get("/api/v1/nothing", headers=_auth(token))
    assert response.status_code == 404 and response.get_json()["error"] == "not_found"
