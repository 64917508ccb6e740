"""Sign-in, sign-out, throttling, the idle timeout and the security headers."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from ivr.models import AuditEntry, LoginFailure
from ivr.store import Store
from tests.unit.web.conftest import PASSWORD, csrf_token, sign_in


def test_given_no_session_when_a_page_is_asked_then_the_sign_in_page(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    json = client.get("/", headers={"Accept": "application/json"})
    assert json.status_code == 401 and json.get_json()["error"] == "sign_in_required"


def test_given_an_account_when_it_signs_in_then_home_and_audited(client: FlaskClient,
                                                                  store: Store) -> None:
    sign_in(client, "supervisor")
    assert client.get("/").status_code == 200
    with store.session() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == "supervisor")))
    assert actions == ["sign_in"]


def test_given_a_wrong_password_when_signing_in_then_401_and_a_failure_kept(
        client: FlaskClient, store: Store) -> None:
    response = client.post("/login", data={"username": "admin", "password": "wrong one!",
                                           "csrf_token": csrf_token(client)},
                           headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "login_failed"
    with store.session() as s:
        assert s.scalar(select(func.count(LoginFailure.id))) == 1


def test_given_five_failures_when_the_right_password_comes_then_throttled(
        client: FlaskClient) -> None:
    for _ in range(5):
        client.post("/login", data={"username": "admin", "password": "guess guess",
                                    "csrf_token": csrf_token(client)})
    response = client.post("/login", data={"username": "admin", "password": PASSWORD,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert 'data-error="login_throttled"' in response.get_data(as_text=True)
    # another account from the same address is not locked out by these five
    sign_in(client, "auditor")


def test_given_no_csrf_token_when_signing_in_then_refused_and_nothing_written(
        client: FlaskClient, store: Store) -> None:
    response = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 400
    assert 'data-error="csrf_invalid"' in response.get_data(as_text=True)
    with store.session() as s:
        assert s.scalar(select(func.count(AuditEntry.id))) == 0


def test_given_a_session_idle_past_the_timeout_when_a_page_is_asked_then_signed_out(
        app: Flask, client: FlaskClient) -> None:
    sign_in(client, "supervisor")
    with client.session_transaction() as sess:
        sess["seen"] = sess["seen"] - app.extensions["verifyline.settings"].idle_timeout - 1
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.get("/").status_code == 302  # and it stays signed out


def test_given_any_page_then_security_headers_and_a_strict_cookie(client: FlaskClient) -> None:
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    sign_in(client, "admin")
    cookie = client.get_cookie("verifyline_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"


def test_given_a_next_elsewhere_when_signed_in_then_it_stays_on_the_console(
        client: FlaskClient) -> None:
    response = client.post("/login?next=//evil.example/", data={
        "username": "admin", "password": PASSWORD, "csrf_token": csrf_token(client)})
    assert response.headers["Location"] == "/"


def test_given_a_signed_in_user_when_signing_out_then_the_session_ends(client: FlaskClient) -> None:
    sign_in(client, "supervisor")
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_given_the_console_then_healthz_answers_without_sign_in(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
