"""Admin pages: console users and device tokens."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ivr import roster, services
from ivr.models import AuditEntry, DeviceToken
from ivr.store import Store
from tests.unit.web.conftest import PASSWORD, csrf_token, sign_in
from tests.unit.web.snapshot import snapshot

DEMO = (Path(__file__).resolve().parents[3] / "ivr" / "demo_roster.csv").read_text()
JSON = {"Accept": "application/json"}


@pytest.fixture
def admin(client: FlaskClient, store: Store) -> FlaskClient:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
    sign_in(client, "admin")
    return client


def _audits(store: Store, action: str) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_given_an_admin_when_adding_a_user_then_it_can_sign_in_and_it_is_audited(
        admin: FlaskClient, store: Store, client: FlaskClient) -> None:
    response = admin.post("/admin/users", data={
        "username": "sam", "display_name": "Sgt Sam", "role": "supervisor",
        "password": "a long enough one", "csrf_token": csrf_token(admin, "/admin/users")})
    assert response.status_code == 303
    assert 'data-user="sam"' in admin.get("/admin/users").get_data(as_text=True)
    (entry,) = _audits(store, "user_add")
    assert (entry.actor, entry.target, entry.detail["role"]) == ("admin", "user:sam",
                                                                 "supervisor")
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    sign_in(client, "sam", "a long enough one")


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"username": "sam", "role": "supervisor", "password": "short"}, 422, "password_too_short"),
    ({"username": "sam", "role": "boss", "password": "a long enough one"}, 422, "role_invalid"),
    ({"username": "sam smith", "role": "admin", "password": "a long enough one"}, 422,
     "username_invalid"),
    ({"username": "auditor", "role": "admin", "password": "a long enough one"}, 409,
     "user_exists"),
])
def test_given_bad_input_when_adding_a_user_then_4xx_with_its_id_and_nothing_written(
        admin: FlaskClient, store: Store, form: dict[str, str], status: int,
        error: str) -> None:
    before = snapshot(store)
    response = admin.post("/admin/users", data={**form, "csrf_token": csrf_token(admin, "/")})
    assert response.status_code == status
    assert f'data-error="{error}"' in response.get_data(as_text=True)
    assert snapshot(store) == before


def test_given_an_admin_when_disabling_a_user_then_it_cannot_sign_in(
        admin: FlaskClient, store: Store, client: FlaskClient) -> None:
    token = csrf_token(admin, "/admin/users")
    assert admin.post("/admin/users/supervisor/disable",
                      data={"csrf_token": token}).status_code == 303
    (entry,) = _audits(store, "user_disable")
    assert entry.detail == {"before": {"disabled": False}, "after": {"disabled": True}}
    client.post("/logout", data={"csrf_token": token})
    response = client.post("/login", data={"username": "supervisor", "password": PASSWORD,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 401


@pytest.mark.parametrize(("name", "status", "error"), [
    ("nobody", 404, "user_not_found"), ("admin", 409, "user_self")])
def test_given_a_wrong_user_when_disabling_then_4xx_and_nothing_written(
        admin: FlaskClient, store: Store, name: str, status: int, error: str) -> None:
    before = snapshot(store)
    response = admin.post(f"/admin/users/{name}/disable",
                          data={"csrf_token": csrf_token(admin, "/")}, headers=JSON)
    assert response.status_code == status and response.get_json()["error"] == error
    assert snapshot(store) == before


def test_given_a_disabled_user_when_disabling_again_then_409(admin: FlaskClient,
                                                             store: Store) -> None:
    token = csrf_token(admin, "/")
    admin.post("/admin/users/auditor/disable", data={"csrf_token": token})
    before = snapshot(store)
    response = admin.post("/admin/users/auditor/disable", data={"csrf_token": token},
                          headers=JSON)
    assert response.status_code == 409 and response.get_json()["error"] == "user_disabled"
    assert snapshot(store) == before


def test_given_an_admin_when_creating_a_token_then_shown_once_and_only_its_hash_kept(
        admin: FlaskClient, store: Store) -> None:
    response = admin.post("/admin/tokens", data={
        "warrant_number": "123456", "label": "Jane's phone",
        "csrf_token": csrf_token(admin, "/admin/tokens")})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    found = re.search(r'data-token="([^"]+)"', page)
    assert found is not None
    token = found.group(1)
    with store.session() as s:
        row = s.scalars(select(DeviceToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.prefix == token[:8] and row.label == "Jane's phone"
        assert row.created_by == "admin"
    assert token not in admin.get("/admin/tokens").get_data(as_text=True)
    assert services.device_for_token(store, token).warrant_number == "123456"
    (entry,) = _audits(store, "token_add")
    assert token not in str(entry.detail) and entry.detail["prefix"] == token[:8]


@pytest.mark.parametrize(("form", "status", "error"), [
    ({"warrant_number": "999999", "label": ""}, 404, "officer_not_found"),
    ({"warrant_number": "123456", "label": "x" * 121}, 422, "label_invalid"),
])
def test_given_bad_input_when_creating_a_token_then_4xx_and_nothing_written(
        admin: FlaskClient, store: Store, form: dict[str, str], status: int,
        error: str) -> None:
    before = snapshot(store)
    response = admin.post("/admin/tokens", data={**form, "csrf_token": csrf_token(admin, "/")})
    assert response.status_code == status
    assert f'data-error="{error}"' in response.get_data(as_text=True)
    assert snapshot(store) == before


def test_given_a_token_when_revoked_twice_then_the_second_is_409_and_writes_nothing(
        admin: FlaskClient, store: Store) -> None:
    token_id, _ = services.add_token(store, "123456", "", "admin")
    csrf = csrf_token(admin, "/admin/tokens")
    assert admin.post(f"/admin/tokens/{token_id}/revoke",
                      data={"csrf_token": csrf}).status_code == 303
    before = snapshot(store)
    again = admin.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf},
                       headers=JSON)
    assert again.status_code == 409 and again.get_json()["error"] == "token_revoked"
    missing = admin.post("/admin/tokens/999/revoke", data={"csrf_token": csrf}, headers=JSON)
    assert missing.status_code == 404 and missing.get_json()["error"] == "token_not_found"
    assert snapshot(store) == before
    assert len(_audits(store, "token_revoke")) == 1


def test_given_an_auditor_then_the_lists_show_without_any_form(client: FlaskClient,
                                                               store: Store) -> None:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
    services.add_token(store, "123456", "phone", "admin")
    sign_in(client, "auditor")
    users = client.get("/admin/users").get_data(as_text=True)
    tokens = client.get("/admin/tokens").get_data(as_text=True)
    assert 'data-user="supervisor"' in users and "Add a user" not in users
    assert "data-token-id=" in tokens and "Create a token" not in tokens
    assert "Revoke token" not in tokens
