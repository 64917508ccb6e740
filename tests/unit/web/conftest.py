"""The console under Flask's test client, on a store of the test's own (SQLite or
PostgreSQL, as the suite runs), with one account of each role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ivr import accounts, services
from ivr.config import Settings
from ivr.store import Store
from ivr.web import create_app

PASSWORD = "correct horse battery"
ROLES = ("supervisor", "admin", "auditor")


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests hash with a small scrypt cost (each hash keeps its parameters, so checking is
    the same code); the real cost, 2^15, is what accounts.py uses everywhere else."""
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return replace(Settings.from_env({"VERIFYLINE_HOME": str(tmp_path / "home")}),
                   db_url=db_url, console_secret="test-secret")


@pytest.fixture
def app(settings: Settings, store: Store) -> Iterator[Flask]:
    for role in ROLES:
        services.add_user(store, role, PASSWORD, role, display_name=f"A {role}")
    yield create_app({"SETTINGS": settings, "STORE": store, "TESTING": True})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a page's form carries (as a browser would read it)."""
    page = client.get(path).get_data(as_text=True)
    found = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    if found is None:
        found = re.search(r'data-csrf="([^"]+)"', page)
    assert found is not None, f"no CSRF token on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> None:
    response = client.post("/login", data={"username": username, "password": password,
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.fixture
def as_role(client: FlaskClient):  # type: ignore[no-untyped-def]
    """Sign the test client in with the account of this role."""
    def signed_in(role: str) -> FlaskClient:
        sign_in(client, role)
        return client
    return signed_in
