"""The supervisor's desk as issue 11 asks for it, end to end: a real headless Chromium
(tests/e2e/browser.py) at the lab's real console (gunicorn), real calls through the real
Asterisk ringing real sipp desk phones. The screen-pop within 1 s of the desk's INVITE, the
outcome that lets the desk take its next call, the encounter page and CSV that show it; a
device's pre-registration the call is logged against; live updates that come back by
themselves after the app and the console restart and after a database outage.

Screenshots of each key step: var/artifacts/<test name>-<step>.png.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from sqlalchemy import update

from ivr import services
from ivr.models import Supervisor
from ivr.store import Store
from tests.e2e.browser import Browser
from tests.e2e.conftest import DEMO_ROSTER, Lab, poll
from tests.e2e.phones import DeskPhone
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.e2e

PASSWORD = "a lab console password"
# tests/sipp/desk_ring_answer_hangup.xml rings 1.5 s before it answers, so the ringing phase
# is on the screen long enough to be seen; the supervisor then talks this long and hangs up:
# past the caller's reference read-out (about 9.5 s after their confirmation, see phones.py),
# so the call is bridged and ends as a normal call
DESK_SCENARIO = "desk_ring_answer_hangup"
TALK_MS = 9000
POP_POLL = 0.02  # seconds between two looks at the screen-pop when timing it
POP_WITHIN = 1.0  # the issue: the screen-pop shows the right officer within 1 s of the INVITE
# what the desk page's script reads of the screen-pop (docs/console.md, "Desk and screen-pop")
POP_JS = """
const pop = document.getElementById('screen-pop');
if (!pop) { return null; }
const text = (id) => {
  const e = document.getElementById(id);
  return e ? e.textContent.trim() : null;
};
const result = document.getElementById('pop-result');
return {phase: pop.getAttribute('data-phase'), reference: pop.getAttribute('data-reference'),
        call_id: pop.getAttribute('data-call-id'), officer: text('pop-officer-name'),
        rank: text('pop-officer-rank'), caller: text('pop-caller'), digits: text('pop-digits'),
        result: text('pop-result'), result_class: result ? result.className : null,
        mark: window.verifylineMark || null};
"""


@dataclass(frozen=True)
class Pop:
    """The screen-pop as the page shows it, and when the test saw it (time.time())."""

    seen_at: float
    phase: str
    reference: str
    call_id: str
    officer: str
    rank: str
    caller: str
    digits: str
    result: str
    result_class: str
    mark: str | None  # set by the test on the page: None after a reload


def new_user(store: Store, role: str = "supervisor") -> str:
    name = f"lab-{uuid.uuid4().hex[:10]}"
    services.add_user(store, name, PASSWORD, role, display_name=f"Test {role}")
    return name


def release_desks(store: Store) -> None:
    """No desk held on the console, none owing an outcome (the line reads it within 1 s)."""
    with store.session() as s:
        s.execute(update(Supervisor).values(console_user=None, console_since=None,
                                            wrapup_channel=None))


@pytest.fixture
def store(the_lab: Lab) -> Iterator[Store]:
    """The lab's database; afterwards no desk is held on the console or owes an outcome."""
    s = Store(the_lab.settings.db_url)
    yield s
    release_desks(s)
    s.dispose()


def browser_http(base_url: str, browser: Browser) -> httpx.Client:
    """Plain HTTP with the browser's session (its cookie and its User-Agent, which the console
    binds the session to)."""
    return httpx.Client(base_url=base_url, cookies=browser.cookies(),
                        headers={"User-Agent": browser.user_agent()}, timeout=5)


def shoot(browser: Browser, step: str, css: str = "#screen-pop") -> None:
    """A screenshot of this step with ``css`` scrolled into the window (the page scrolls down
    to the outcome form, so the top of the screen-pop or the banner may be out of sight)."""
    browser.driver.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'start'});", css)
    browser.screenshot(step)


def sign_in(browser: Browser, name: str) -> None:
    """Sign in and wait for the home page (its redirect must not overtake the next page)."""
    browser.sign_in(name, PASSWORD)
    browser.wait_for("header .who", "Test supervisor")


def take_desk(browser: Browser, desk: str) -> None:
    browser.open("/desk")
    Select(browser.wait_for("form#take-desk select#desk")).select_by_value(desk)
    browser.wait_for("#take-desk-button").click()
    browser.wait_for("#desk-name", desk)


def desk_state(browser: Browser) -> str:
    return str(browser.driver.find_element(By.ID, "desk-state").text).strip()


def wait_desk_state(browser: Browser, state: str, timeout: float = 10.0) -> None:
    poll(f"#desk-state to say {state}", lambda: desk_state(browser) == state, timeout=timeout,
         every=0.05)


def pop_now(browser: Browser) -> Pop | None:
    shown: dict[str, Any] | None = browser.driver.execute_script(POP_JS)
    seen_at = time.time()
    if shown is None:
        return None
    return Pop(seen_at=seen_at, **{k: ("" if v is None and k != "mark" else v)
                                   for k, v in shown.items()})


def wait_pop(browser: Browser, phase: str, *, not_reference: str | None = None,
             timeout: float = 30.0) -> Pop:
    """The screen-pop once it is in ``phase`` (and not about the call ``not_reference``),
    looked at every 20 ms: its ``seen_at`` is within 20 ms (plus one look) of when the page
    showed it."""
    def shown() -> Pop | None:
        pop = pop_now(browser)
        if pop and pop.phase == phase and pop.reference != not_reference:
            return pop
        return None

    found: Pop = poll(f"the screen-pop in phase {phase}", shown, timeout=timeout,
                      every=POP_POLL)
    return found


def invite_times(desk: DeskPhone) -> list[float]:
    """When each INVITE reached the desk phone, by sipp's log (the same clock as time.time())."""
    return [at.timestamp() for at, _from in desk.invites()]


def record_outcome(browser: Browser, outcome: str, note: str) -> str:
    """Pick the outcome, write the note and send the desk page's form; the confirmation."""
    Select(browser.wait_for("form#outcome-form select#outcome")).select_by_value(outcome)
    note_box = browser.wait_for("form#outcome-form textarea#note")
    note_box.clear()
    note_box.send_keys(note)
    browser.wait_for("#record-outcome").click()
    return str(browser.wait_for("#outcome-recorded").text)


def call_of(the_lab: Lab, number: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The call-log row (CLI JSON) of the one call from ``number``."""
    def found() -> dict[str, Any] | None:
        rows = [c for c in json.loads(the_lab.verifyline("calls", "list", "--json", env=env))
                if c["caller_number"] == number]
        assert len(rows) <= 1, rows
        return rows[0] if rows else None

    row: dict[str, Any] = poll(f"the call from {number} in the log", found, every=0.3)
    return row


def ended_call_of(the_lab: Lab, number: str, env: dict[str, str] | None = None
                  ) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        row = call_of(the_lab, number, env)
        return row if row["ended_at"] else None

    row: dict[str, Any] = poll(f"the logged end of the call from {number}", ended, every=0.3)
    return row


# --- 1. the main flow ----------------------------------------------------------------


@pytest.mark.sqlite_too  # SQLite: the console's hub polls every 25 ms instead of LISTEN
def test_given_a_supervisor_at_desk1_when_a_call_rings_then_the_screen_pop_then_the_outcome_frees_the_desk(  # noqa: E501
        the_lab: Lab, store: Store, browser: Browser) -> None:
    name = new_user(store)
    desk = the_lab.desk("desk1", DESK_SCENARIO, talk_ms=TALK_MS)
    sign_in(browser, name)
    take_desk(browser, "desk1")
    wait_desk_state(browser, "free")
    browser.screenshot("desk-taken")
    number, next_number = "07700900801", "07700900802"
    note = f"warrant card seen, matches the roster photo ({uuid.uuid4().hex[:6]})"

    caller = the_lab.caller(number, "123456#1", scenario="caller_waits")
    ringing = wait_pop(browser, "ringing")
    shoot(browser, "ringing")
    [invited] = poll("desk1's INVITE in sipp's log", lambda: invite_times(desk), every=0.05)
    delay = ringing.seen_at - invited
    print(f"\n[figure] screen-pop (ringing, Jane Smith) on the page {delay * 1000:.0f} ms "
          "after desk1's INVITE")
    call = call_of(the_lab, number)
    assert (ringing.reference, ringing.call_id) == (call["reference"], str(call["id"]))
    assert ringing.officer == "Jane Smith" and ringing.rank == "PC"
    assert "result-on_duty" in ringing.result_class.split()
    assert ringing.result == "On duty now"
    assert (ringing.caller, ringing.digits) == (number, "123456")
    assert delay <= POP_WITHIN

    answered = wait_pop(browser, "answered", timeout=10)
    shoot(browser, "answered")
    assert answered.reference == call["reference"]

    assert caller.wait(60) == 0, caller.failure()
    ended = ended_call_of(the_lab, number)
    assert ended["supervisor"] == "desk1" and ended["end_reason"] == "supervisor_hangup"
    browser.wait_for("#wrapup-owed", timeout=10)
    wait_desk_state(browser, "wrap_up")
    wait_pop(browser, "ended", timeout=5)
    shoot(browser, "outcome-owed")

    confirmation = record_outcome(browser, "verified", note)

    assert "Verified" in confirmation
    wait_desk_state(browser, "free", timeout=5)
    assert not browser.driver.find_element(By.ID, "wrapup-owed").is_displayed()
    browser.screenshot("outcome-recorded")
    # ...and the line offers desk1 its next call
    following = the_lab.caller(next_number, "123456#1", scenario="caller_waits")
    nxt = wait_pop(browser, "ringing", not_reference=call["reference"])
    shoot(browser, "next-call")
    assert nxt.caller == next_number
    # the last 30 days about this officer: the first call, with its outcome
    earlier = browser.wait_for(f"#pop-history tr[data-reference='{call['reference']}']",
                               timeout=2)
    assert "Verified" in earlier.text, earlier.text
    assert len(poll("desk1's second INVITE", lambda: invite_times(desk)[1:], every=0.05)) == 1
    assert following.wait(60) == 0, following.failure()
    assert ended_call_of(the_lab, next_number)["supervisor"] == "desk1"

    browser.open(f"/encounters/{call['reference']}")
    entry = browser.wait_for("li.outcome-entry[data-outcome=verified]")
    browser.screenshot("encounter")
    assert note in entry.text and name in entry.text, entry.text
    with browser_http(the_lab.console_url, browser) as http:
        exported = http.get("/encounters.csv", params={"reference": call["reference"]})
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["call_id"], r["reference"], r["desk"], r["outcome"]) for r in rows] == [
        (str(call["id"]), call["reference"], "desk1", "verified")]


# --- 2. pre-registration end to end ----------------------------------------------------------


@pytest.mark.sqlite_too
def test_given_a_device_pre_registration_when_a_call_about_the_officer_then_logged_against_it_shown_and_the_device_sees_the_outcome(  # noqa: E501
        the_lab: Lab, store: Store, browser: Browser) -> None:
    # Ann Lee (0042), on duty: no other test pre-registers her
    out = the_lab.verifyline("tokens", "add", "--officer", "0042", "--label", "Ann's phone")
    token = out.strip().splitlines()[-1]
    api = httpx.Client(base_url=f"{the_lab.console_url}/api/v1", timeout=5,
                       headers={"Authorization": f"Bearer {token}"})
    place, purpose = "High Street, outside no. 12", f"stop and account {uuid.uuid4().hex[:6]}"
    opened = api.post("/encounters", json={"place": place, "purpose": purpose,
                                           "latitude": 51.5072, "longitude": -0.1276})
    assert opened.status_code == 201, opened.text
    reference = opened.json()["reference"]
    try:
        assert api.get(f"/encounters/{reference}").json()["called"] is False
        name = new_user(store)
        the_lab.desk("desk1", DESK_SCENARIO, talk_ms=TALK_MS)
        sign_in(browser, name)
        take_desk(browser, "desk1")
        number = "07700900811"

        caller = the_lab.caller(number, "0042#1", scenario="caller_waits")
        ringing = wait_pop(browser, "ringing")
        prereg = browser.wait_for("#pop-prereg", timeout=2)
        shoot(browser, "ringing-preregistered")
        assert ringing.officer == "Ann Lee"
        shown = {part: browser.driver.find_element(By.ID, f"pop-prereg-{part}").text.strip()
                 for part in ("reference", "place", "purpose", "opened")}
        assert (shown["reference"], shown["place"], shown["purpose"]) == (
            reference, place, purpose), prereg.text
        assert "Ann's phone" in shown["opened"]
        assert ringing.reference != reference  # the caller is read the call's own reference

        assert caller.wait(60) == 0, caller.failure()
        call = ended_call_of(the_lab, number)
        assert call["encounter_reference"] == reference
        assert call["reference"] == ringing.reference != reference
        browser.wait_for("#wrapup-owed", timeout=10)
        wait_pop(browser, "ended", timeout=5)
        record_outcome(browser, "advice_given", "member of the public reassured")
        wait_desk_state(browser, "free", timeout=5)
        browser.screenshot("outcome-recorded")

        seen = api.get(f"/encounters/{reference}")
        assert seen.status_code == 200, seen.text
        device = seen.json()
        assert device["called"] is True and device["open"] is True
        assert [(c["supervisor"], c["outcome"]) for c in device["calls"]] == [
            ("desk1", "advice_given")]
        assert number not in seen.text and ringing.reference not in seen.text
    finally:
        api.post(f"/encounters/{reference}/close")  # later calls about her attach to nothing
        api.close()


# --- 3. the app and console restarted, the database briefly down ----------------------------


@dataclass
class Stoppable:
    """The line and the console on a PostgreSQL database the test may stop."""

    cluster: PgCluster
    db_url: str
    env: dict[str, str]  # for the CLI: VERIFYLINE_DB_URL when it is not the lab's own
    store: Store


@pytest.fixture
def stoppable_database(the_lab: Lab, request: pytest.FixtureRequest) -> Iterator[Stoppable]:
    """On PostgreSQL (CI) the lab's own database, which lives in the session's cluster; on
    SQLite the app and the console moved onto a database of that cluster (demo roster in it)
    for the test, and back afterwards."""
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    own = the_lab.settings.db_url.startswith("postgresql")
    name = f"screenpop_outage_{os.getpid()}"
    env: dict[str, str] = {}
    if own:
        url = the_lab.settings.db_url
    else:
        url = cluster.create_database(name)
        env = {"VERIFYLINE_DB_URL": url}
        the_lab.verifyline("roster", "import", str(DEMO_ROSTER), env=env)
        the_lab.restart_app(**env)
        the_lab.restart_console(**env)
    store = Store(url)
    try:
        yield Stoppable(cluster, url, env, store)
    finally:
        if not cluster.running:
            cluster.start()
        release_desks(store)
        store.dispose()
        if not own:
            the_lab.restart_app(VERIFYLINE_DB_URL=None)
            the_lab.restart_console(VERIFYLINE_DB_URL=None)
            cluster.drop_database(name)


def banner(browser: Browser) -> str | None:
    """The #connection banner's text while it is shown, else None."""
    element = browser.driver.find_element(By.ID, "connection")
    return str(element.text).strip() if element.is_displayed() else None


def one_call(the_lab: Lab, browser: Browser, number: str, db: Stoppable, step: str) -> Pop:
    """A call about Jane Smith through desk1 seen on the page (ringing, a new call), the call
    ended and its outcome recorded so that desk1 takes the next."""
    previous = pop_now(browser)
    caller = the_lab.caller(number, "123456#1", scenario="caller_waits")
    pop = wait_pop(browser, "ringing",
                   not_reference=previous.reference if previous else None, timeout=40)
    shoot(browser, step)
    assert caller.wait(60) == 0, caller.failure()
    call = ended_call_of(the_lab, number, db.env)
    assert (pop.reference, pop.officer, pop.caller) == (call["reference"], "Jane Smith", number)
    wait_pop(browser, "ended", timeout=10)
    record_outcome(browser, "verified", "")
    wait_desk_state(browser, "free", timeout=10)
    return pop


def test_given_the_desk_page_open_when_the_app_restarts_and_the_database_is_briefly_down_then_screen_pops_come_back_without_a_reload(  # noqa: E501
        the_lab: Lab, browser: Browser, stoppable_database: Stoppable) -> None:
    db = stoppable_database
    name = new_user(db.store)
    the_lab.desk("desk1", DESK_SCENARIO, talk_ms=TALK_MS)
    sign_in(browser, name)
    take_desk(browser, "desk1")
    wait_desk_state(browser, "free")
    # a mark on this page: a reload (or any new page) would lose it
    browser.driver.execute_script("window.verifylineMark = 'the page of the start';")

    # the line's app, then the console itself (gunicorn: every live stream cut) restarted
    the_lab.restart_app()
    the_lab.restart_console()
    after_restart = one_call(the_lab, browser, "07700900821", db, "after-restarts")
    assert after_restart.mark == "the page of the start"

    db.cluster.stop("fast")
    stopped = time.monotonic()
    try:
        said = poll("the #connection banner", lambda: banner(browser), timeout=10, every=0.05)
        shoot(browser, "database-down", "header.top")
        shown_after = time.monotonic() - stopped
    finally:
        db.cluster.start()
    back = time.monotonic()
    poll("the #connection banner gone", lambda: banner(browser) is None, timeout=15,
         every=0.05)
    gone_after = time.monotonic() - back
    shoot(browser, "database-back", "header.top")
    print(f"\n[figure] #connection banner {shown_after:.2f} s after the database stopped "
          f"({said!r}); gone {gone_after:.2f} s after it was back")
    assert "database" in said.lower()

    after_outage = one_call(the_lab, browser, "07700900822", db, "after-outage")
    assert after_outage.mark == "the page of the start"
    assert after_outage.reference != after_restart.reference
