"""The supervisors' console as its users meet it: the real gunicorn console that ``lab up``
starts, in a real headless Chromium (tests/e2e/browser.py), beside the real line.

Screenshots of each key step: var/artifacts/<test name>-<step>.png.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select

from ivr import services
from ivr.models import User
from ivr.store import Store
from ops import lab
from tests.e2e.browser import Browser
from tests.e2e.conftest import Lab, poll
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.e2e

PASSWORD = "a lab console password"


def new_user(db_url: str, role: str = "supervisor") -> str:
    """A console account of this role, made as the CLI makes one; its user name."""
    name = f"lab-{uuid.uuid4().hex[:10]}"
    store = Store(db_url)
    try:
        services.add_user(store, name, PASSWORD, role, display_name=f"Test {role}")
    finally:
        store.dispose()
    return name


def browser_http(the_lab: Lab, browser: Browser) -> httpx.Client:
    """Plain HTTP with the browser's session (its cookie and, since the console binds a
    session to it, its User-Agent), as outside tools use the console."""
    return httpx.Client(base_url=the_lab.console_url, cookies=browser.cookies(),
                        headers={"User-Agent": browser.user_agent()}, timeout=5)


def healthz(the_lab: Lab) -> tuple[int, str]:
    try:
        response = httpx.get(f"{the_lab.console_url}/healthz", timeout=2)
    except httpx.HTTPError as exc:
        return 0, type(exc).__name__
    return response.status_code, str(response.json().get("status"))


@pytest.mark.sqlite_too  # the lab's default database
def test_given_a_supervisor_when_signing_in_with_chromium_then_home_page_then_signed_out(
        the_lab, browser):
    name = new_user(the_lab.settings.db_url)

    browser.sign_in(name, PASSWORD)

    browser.wait_for("h1", "Verify Line console")
    browser.wait_for("header .who", "Test supervisor (supervisor)")
    browser.screenshot("home")
    assert browser.url == f"{the_lab.console_url}/"
    session = browser.cookie("verifyline_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    with browser_http(the_lab, browser) as http:
        page = http.get("/")
    assert page.status_code == 200 and "Verify Line console" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"

    browser.sign_out()

    browser.wait_for("h1", "Sign in")
    browser.screenshot("signed-out")
    browser.open("/")
    browser.wait_for("h1", "Sign in")  # the session is gone: back to the form
    assert "/login" in browser.url


@pytest.mark.sqlite_too  # the lab's default database
def test_given_a_wrong_password_when_signing_in_then_the_page_shows_login_failed(
        the_lab, browser):
    name = new_user(the_lab.settings.db_url)

    browser.sign_in(name, "not the password at all")

    error = browser.wait_for('p.error[data-error="login_failed"]')
    browser.screenshot("login-failed")
    assert "not recognised" in error.text
    assert "Traceback" not in browser.page_source
    browser.open("/")
    browser.wait_for("h1", "Sign in")  # not signed in


def test_given_signed_in_when_the_app_restarts_then_the_console_keeps_answering(
        the_lab, browser):
    name = new_user(the_lab.settings.db_url)
    browser.sign_in(name, PASSWORD)
    browser.wait_for("h1", "Verify Line console")
    inst = the_lab.instance
    app_before, console_before = lab.read_pid(inst.app_pidfile), lab.read_pid(
        inst.console_pidfile)
    answers: list[tuple[int, int] | str] = []
    done = threading.Event()

    def keep_asking() -> None:
        with browser_http(the_lab, browser) as http:
            while not done.is_set():
                try:
                    answers.append((http.get("/healthz").status_code,
                                    http.get("/").status_code))
                except httpx.HTTPError as exc:
                    answers.append(f"{type(exc).__name__}: {exc}")
                done.wait(0.05)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        the_lab.restart_app()
    finally:
        done.set()
        asker.join()

    assert lab.read_pid(inst.app_pidfile) not in (None, app_before)
    assert lab.read_pid(inst.console_pidfile) == console_before
    print(f"\n[figure] {len(answers)} console requests (healthz + home) during the app's "
          "restart")
    assert len(answers) >= 5
    assert all(a == (200, 200) for a in answers), [a for a in answers if a != (200, 200)]
    browser.open("/")
    browser.wait_for("h1", "Verify Line console")
    browser.screenshot("after-app-restart")


@pytest.fixture
def console_on_postgres(the_lab: Lab, request: pytest.FixtureRequest) -> Iterator[
        tuple[PgCluster, str]]:
    """The lab's console restarted on a PostgreSQL database of its own (a server the test may
    stop); back on the lab's database afterwards."""
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database(f"console_outage_{os.getpid()}")
    the_lab.restart_console(VERIFYLINE_DB_URL=url)
    try:
        yield cluster, url
    finally:
        if not cluster.running:
            cluster.start()
        the_lab.restart_console(VERIFYLINE_DB_URL=None)
        cluster.drop_database(f"console_outage_{os.getpid()}")


def test_given_the_database_briefly_down_then_the_console_says_so_and_comes_back_by_itself(
        the_lab, browser, console_on_postgres):
    cluster, url = console_on_postgres
    name = new_user(url)
    browser.sign_in(name, PASSWORD)
    browser.wait_for("h1", "Verify Line console")

    cluster.stop("fast")
    stopped = time.monotonic()
    try:
        poll("the console's /healthz to say the database is down",
             lambda: healthz(the_lab) == (503, "database_unavailable"), timeout=10, every=0.05)
        browser.open("/")
        error = browser.wait_for('p.error[data-error="database_unavailable"]')
        browser.screenshot("database-down")
        source = browser.page_source
        # styled still: the stylesheet needs no database
        banner = browser.driver.execute_script(
            "return getComputedStyle(document.querySelector('header.top')).backgroundColor")
    finally:
        cluster.start()
    back_at = time.monotonic()

    assert "cannot be reached" in error.text and "reload" in error.text
    assert "Traceback" not in source and "OperationalError" not in source
    assert banner == "rgb(29, 42, 58)"  # console.css's header colour, #1d2a3a
    poll("the console's /healthz back to 200", lambda: healthz(the_lab) == (200, "ok"),
         timeout=10, every=0.05)
    print(f"\n[figure] database down {back_at - stopped:.1f} s; /healthz 200 again "
          f"{time.monotonic() - back_at:.2f} s after it was back")
    browser.open("/")
    browser.wait_for("h1", "Verify Line console")  # the same session, signed in still
    browser.screenshot("database-back")


@pytest.mark.sqlite_too  # the lab's default database
def test_given_no_demo_user_when_lab_up_then_its_password_is_printed_once_and_kept_hashed(
        the_lab):
    store = Store(the_lab.settings.db_url)
    try:
        with store.session() as s:
            s.execute(delete(User).where(User.username == "demo"))

        first = the_lab.verifyline("lab", "up")
        again = the_lab.verifyline("lab", "up")

        with store.session() as s:
            stored = s.scalars(select(User.password_hash).where(User.username == "demo")).one()
    finally:
        store.dispose()
    assert f"Console:      {the_lab.console_url}/" in first
    found = re.search(r"Sign in:\s+demo / (\S+)", first)
    assert found is not None, first
    password = found.group(1)
    assert password not in again and "demo (exists" in again
    assert password not in stored and stored.startswith("scrypt")
    home = the_lab.settings.home
    for folder, _dirs, files in os.walk(home):  # links (the Asterisk instance) not followed
        for file in files:
            path = Path(folder, file)
            if not path.is_symlink():
                assert password.encode() not in path.read_bytes(), path
    with httpx.Client(base_url=the_lab.console_url, timeout=5) as http:
        form = http.get("/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form)
        assert token is not None
        signed_in = http.post("/login", data={"username": "demo", "password": password,
                                              "csrf_token": token.group(1)})
        assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
        assert "Demo supervisor (supervisor)" in http.get("/").text


def test_given_the_console_stopped_when_doctor_then_it_fails_saying_how_to_start_it(the_lab):
    lab.stop_console(the_lab.instance)
    try:
        result = subprocess.run([sys.executable, "-m", "ops", "doctor"], env=the_lab.env,
                                capture_output=True, text=True, timeout=60)
    finally:
        lab.start_console(the_lab.instance)

    assert result.returncode == 1, result.stdout
    assert f"FAIL console: {the_lab.console_url} does not answer" in result.stdout
    assert "verifyline lab up" in result.stdout and "console.log" in result.stdout
    assert healthz(the_lab) == (200, "ok")  # started again, and waited for
