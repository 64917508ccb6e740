"""Every route of the admin, roster, audit areas: sign-in required, other roles denied, CSRF
refused on every POST, and nothing written by any refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from ivr import roster, services
from ivr.store import Store
from tests.unit.web.conftest import ROLES, csrf_token, sign_in
from tests.unit.web.snapshot import snapshot

DEMO = (Path(__file__).resolve().parents[3] / "ivr" / "demo_roster.csv").read_text()
ADMIN_ONLY = ("admin",)
READERS = ("admin", "auditor")

# (method, path, roles admitted); {officer} and {token} are filled in per test
ROUTES = [
    ("GET", "/admin/users", READERS),
    ("POST", "/admin/users", ADMIN_ONLY),
    ("POST", "/admin/users/supervisor/disable", ADMIN_ONLY),
    ("GET", "/admin/tokens", READERS),
    ("POST", "/admin/tokens", ADMIN_ONLY),
    ("POST", "/admin/tokens/{token}/revoke", ADMIN_ONLY),
    ("GET", "/roster", ROLES),
    ("GET", "/roster/{officer}", ROLES),
    ("GET", "/roster/{officer}/edit", ADMIN_ONLY),
    ("POST", "/roster/{officer}", ADMIN_ONLY),
    ("POST", "/roster/{officer}/photo", ADMIN_ONLY),
    ("GET", "/roster/{officer}/photo", ROLES),
    ("GET", "/roster/import", ADMIN_ONLY),
    ("POST", "/roster/import", ADMIN_ONLY),
    ("GET", "/audit", READERS),
]


@pytest.fixture
def ids(store: Store) -> dict[str, int]:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
    officer = services.officers(store, "123456")[0]["id"]
    token_id, _ = services.add_token(store, "123456", "phone", "setup")
    return {"officer": int(str(officer)), "token": token_id}


def _path(template: str, ids: dict[str, int]) -> str:
    return template.format(**ids)


@pytest.mark.parametrize(("method", "path", "allowed"), ROUTES)
def test_given_no_sign_in_when_a_route_is_asked_then_refused_and_nothing_written(
        client: FlaskClient, store: Store, ids: dict[str, int], method: str, path: str,
        allowed: tuple[str, ...]) -> None:
    before = snapshot(store)
    url = _path(path, ids)
    if method == "GET":
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    else:
        response = client.post(url, data={"csrf_token": csrf_token(client)},
                               headers={"Accept": "application/json"})
        assert response.status_code == 401
        assert response.get_json()["error"] == "sign_in_required"
    assert snapshot(store) == before


@pytest.mark.parametrize(("method", "path", "allowed"),
                         [r for r in ROUTES if set(r[2]) != set(ROLES)])
def test_given_a_role_not_admitted_when_a_route_is_asked_then_403_and_nothing_written(
        client: FlaskClient, store: Store, ids: dict[str, int], method: str, path: str,
        allowed: tuple[str, ...]) -> None:
    for role in [r for r in ROLES if r not in allowed]:
        sign_in(client, role)
        token = csrf_token(client, "/")
        before = snapshot(store)
        url = _path(path, ids)
        headers = {"Accept": "application/json"}
        response = (client.get(url, headers=headers) if method == "GET"
                    else client.post(url, data={"csrf_token": token}, headers=headers))
        assert response.status_code == 403, (role, response.get_data(as_text=True))
        assert response.get_json()["error"] == "role_denied"
        assert snapshot(store) == before
        client.post("/logout", data={"csrf_token": token})


@pytest.mark.parametrize(("method", "path", "allowed"),
                         [r for r in ROUTES if r[0] == "POST"])
def test_given_no_csrf_token_when_a_form_is_posted_then_400_and_nothing_written(
        client: FlaskClient, store: Store, ids: dict[str, int], method: str, path: str,
        allowed: tuple[str, ...]) -> None:
    sign_in(client, "admin")
    before = snapshot(store)
    for token in (None, "forged"):
        data = {} if token is None else {"csrf_token": token}
        response = client.post(_path(path, ids), data=data)
        assert response.status_code == 400
        assert 'data-error="csrf_invalid"' in response.get_data(as_text=True)
    assert snapshot(store) == before


def test_given_the_header_token_when_a_form_is_posted_then_csrf_passes(
        client: FlaskClient, store: Store, ids: dict[str, int]) -> None:
    sign_in(client, "admin")
    token = csrf_token(client, "/")
    response = client.post(f"/admin/tokens/{ids['token']}/revoke",
                           headers={"X-CSRFToken": token})
    assert response.status_code == 303
    assert services.device_tokens(store)[0].revoked_at is not None
