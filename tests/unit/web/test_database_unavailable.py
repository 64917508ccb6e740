"""The console while its database cannot be reached: a clear refusal with a stable id
(database_unavailable, 503) on every page, never a stack trace; the session outlives it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from ivr.store import Store
from tests.unit.web.conftest import sign_in

Outage = Callable[[], AbstractContextManager[None]]


@pytest.fixture
def outage(app: Flask, tmp_path: Path) -> Outage:
    """Inside the block the console's store cannot connect (a database file in a folder that
    is not there: the driver's own 'unable to open database file'); after it, the real one."""
    @contextmanager
    def down() -> Iterator[None]:
        real: Store = app.extensions["verifyline.store"]
        unreachable = Store(f"sqlite:///{tmp_path / 'gone' / 'verifyline.db'}")
        app.extensions["verifyline.store"] = unreachable
        try:
            yield
        finally:
            app.extensions["verifyline.store"] = real
            unreachable.dispose()
    return down


def test_given_signed_in_when_database_down_then_page_says_so_and_after_it_carries_on(
        client: FlaskClient, outage: Outage) -> None:
    sign_in(client, "supervisor")

    with outage():
        response = client.get("/")

    page = response.get_data(as_text=True)
    assert response.status_code == 503, page
    assert 'data-error="database_unavailable"' in page
    assert "reload this page in a few seconds" in page
    assert "Traceback" not in page and "OperationalError" not in page
    assert response.headers["Retry-After"] == "5"
    assert client.get("/").status_code == 200  # still signed in


def test_given_signed_in_when_database_down_then_the_stylesheet_still_loads(
        client: FlaskClient, outage: Outage) -> None:
    sign_in(client, "supervisor")

    with outage():
        response = client.get("/static/console.css")

    assert response.status_code == 200 and b"body" in response.data
    response.close()


def test_given_signed_in_when_database_down_then_json_clients_get_the_id(
        client: FlaskClient, outage: Outage) -> None:
    sign_in(client, "admin")

    with outage():
        response = client.get("/", headers={"Accept": "application/json"})

    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "database_unavailable" and "reload" in body["message"]


def test_given_database_down_when_signing_in_then_refused_with_the_id(
        client: FlaskClient, outage: Outage) -> None:
    page = client.get("/login").get_data(as_text=True)  # the form itself reads nothing
    token = page.split('name="csrf_token" type="hidden" value="', 1)[1].split('"', 1)[0]

    with outage():
        response = client.post("/login", data={"username": "supervisor",
                                               "password": "whatever it is",
                                               "csrf_token": token})

    assert response.status_code == 503
    assert 'data-error="database_unavailable"' in response.get_data(as_text=True)


def test_given_database_down_when_healthz_then_503_database_unavailable(
        client: FlaskClient, outage: Outage) -> None:
    with outage():
        response = client.get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["status"] == "database_unavailable"
