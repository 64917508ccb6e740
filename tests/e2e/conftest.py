"""The end-to-end lab: a real Asterisk 22 and the real ARI app, started once per test session on
ports of their own; every test then uses real SIP phones (sipp) and leaves Asterisk empty."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from ivr import calllog
from ivr.config import Settings
from ivr.models import Call as CallRow
from ivr.models import Supervisor
from ivr.store import Store
from ops import console, lab
from tests.e2e import ports
from tests.e2e.browser import PHASE_REPORTS, Browser, open_browser
from tests.e2e.phones import Caller, DeskPhone
from tests.e2e.rtp import RtpPhone

REPO = Path(__file__).resolve().parents[2]
DEMO_ROSTER = REPO / "ivr" / "demo_roster.csv"

LAB_ENV = {
    "VERIFYLINE_SIP_PORT": str(ports.SIP_PORT),
    "VERIFYLINE_ARI_PORT": str(ports.ARI_PORT),
    "VERIFYLINE_CONSOLE_PORT": str(ports.CONSOLE_PORT),
    "VERIFYLINE_METRICS_PORT": str(ports.METRICS_PORT),
    "VERIFYLINE_RTP_PORTS": ports.RTP_PORTS,
    "VERIFYLINE_FIRST_DIGIT_TIMEOUT": "2",
    "VERIFYLINE_INTER_DIGIT_TIMEOUT": "3",
    "VERIFYLINE_RING_TIMEOUT": "4",
    "VERIFYLINE_HOLD_INTERVAL": "5",
    "VERIFYLINE_RATE_LIMIT": "2",
    "VERIFYLINE_WRAP_UP": "2",
    "VERIFYLINE_AUTO_PAUSE": "2",
    "VERIFYLINE_QUEUE_MAX_WAIT": "30",
    "VERIFYLINE_OVERFLOW_URI": f"sip:overflow@127.0.0.1:{ports.OVERFLOW_PORT}",
    "VERIFYLINE_SWEEP_GRACE": "2",
    "VERIFYLINE_TRUNK_URI": f"sip:127.0.0.2:{ports.CALLBACK_NUMBER_SIP}",
    # most test callers (sipp) send no audio RTP: Asterisk's RTP timeout would hang them up,
    # so it is off lab-wide; tests/e2e/test_found_outside_rtp.py turns a short one on
    "VERIFYLINE_RTP_TIMEOUT": "0",
}
OVERFLOW_PORT = ports.OVERFLOW_PORT


def poll(what: str, check: Callable[[], Any], timeout: float = 15.0, every: float = 0.1) -> Any:
    """Wait until check() returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@dataclass
class Lab:
    settings: Settings
    env: dict[str, str]
    workdir: Path
    ari: httpx.Client
    phones: list[DeskPhone] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)

    @property
    def instance(self) -> lab.Instance:
        return lab.instance(self.settings)

    @property
    def console_url(self) -> str:
        """The lab's console (gunicorn, started by ``lab up``), without a trailing slash."""
        return console.url(self.settings)

    def verifyline(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run the real CLI, as outside tools do (``env``: extra settings)."""
        result = subprocess.run([sys.executable, "-m", "ops", *args],
                                env={**self.env, **(env or {})},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def desk_availability(self, action: str, desk: str) -> None:
        """`verifyline supervisors <action> <desk>`, then wait until the running line has
        applied it. The CLI only writes the database; the line reads it every second and logs
        each change it applies ('availability changed: desk1, desk4'), so that line in what
        app.log gains is the sign (a sleep would be a guess at the poll's phase)."""
        since = self.app_log_size()
        self.verifyline("supervisors", action, desk)
        poll(f"the line to apply 'supervisors {action} {desk}'",
             lambda: desk in self.availability_applied(since), timeout=10, every=0.05)

    def app_log_size(self) -> int:
        return (self.settings.log_dir / "app.log").stat().st_size

    def availability_applied(self, since: int,
                             said: str = "availability changed: ") -> set[str]:
        """The desks whose availability the line applied after app.log was ``since`` bytes
        (with ``said``: the desks of another of its per-desk log lines)."""
        gained = (self.settings.log_dir / "app.log").read_bytes()[since:]
        return {desk for line in gained.decode(errors="replace").splitlines()
                if said in line for desk in line.split(said, 1)[1].split(", ")}

    def open_calls(self) -> list[str]:
        """Channel ids of calls the log still has as in progress."""
        store = Store(self.settings.db_url)
        try:
            with store.session() as s:
                return list(s.scalars(select(CallRow.channel_id)
                                      .where(CallRow.ended_at.is_(None))))
        finally:
            store.dispose()

    def restart_app(self, **settings: str | None) -> None:
        """Restart the app with these VERIFYLINE_* settings changed (None: back to the lab's)."""
        inst = self.instance
        lab.stop_app(inst)
        self._set_env(settings)
        lab.start_app(inst)
        poll("the app back", lambda: lab.app_connected(inst))

    def restart_console(self, **settings: str | None) -> None:
        """Restart the console with these VERIFYLINE_* settings changed (None: back to the
        lab's); returns once it answers /healthz with 200."""
        inst = self.instance
        lab.stop_console(inst)
        self._set_env(settings)
        lab.start_console(inst)

    def _set_env(self, settings: dict[str, str | None]) -> None:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
                if name in LAB_ENV or name in self.env:
                    os.environ[name] = self.env[name]
            else:
                os.environ[name] = value

    def calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = json.loads(self.verifyline("calls", "list", "--json"))
        return calls

    def call_from(self, number: str) -> dict[str, Any] | None:
        found = [c for c in self.calls() if c["caller_number"] == number]
        assert len(found) <= 1, f"more than one row for one call: {found}"
        return found[0] if found else None

    def ended_call_from(self, number: str, timeout: float = 15.0) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            call = self.call_from(number)
            return call if call and call["ended_at"] else None

        result: dict[str, Any] = poll(f"the logged end of the call from {number}", ended,
                                      timeout, every=0.5)
        return result

    def timeline(self, call_id: int) -> list[dict[str, Any]]:
        shown: dict[str, Any] = json.loads(self.verifyline("calls", "show", str(call_id)))
        timeline: list[dict[str, Any]] = shown["timeline"]
        return timeline

    def desk(self, name: str, behaviour: str = "desk_answer", talk_ms: int = 3000) -> DeskPhone:
        phone = DeskPhone(name, self.settings.sip_port, self.workdir, behaviour, talk_ms)
        phone.start()
        self.phones.append(phone)
        poll(f"{name} registered", lambda: self.ari.get(f"/endpoints/PJSIP/{name}").json()
             .get("state") == "online")
        return phone

    def caller(self, number: str, digits: str = "", scenario: str = "caller",
               wait_ms: int = 3000, extra: tuple[str, ...] = (), timeout_s: int = 150
               ) -> Caller:
        caller = Caller(self.settings.sip_port, self.settings.line_number, self.workdir, number,
                        scenario, digits, wait_ms, extra, timeout_s).start()
        self.callers.append(caller)
        return caller

    def channels(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ari.get("/channels").json()
        return result

    def bridges(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.ari.get("/bridges").json()
        return result


@pytest.fixture(scope="session")
def lab_session(tmp_path_factory: pytest.TempPathFactory,
                lab_db_env: dict[str, str]) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("lab")
    # lab_db_env (tests/conftest.py): VERIFYLINE_DB_URL of a fresh PostgreSQL database when
    # VERIFYLINE_TEST_DB=postgresql
    env = {**os.environ, **LAB_ENV, **lab_db_env, "VERIFYLINE_HOME": str(home)}
    saved = dict(os.environ)
    os.environ.update(env)
    settings = Settings.from_env(env).with_secrets()
    env["VERIFYLINE_ARI_PASSWORD"] = settings.ari_password
    t0 = time.monotonic()
    try:
        lab.up(settings)
        print(f"\n[lab] Asterisk + app ready in {time.monotonic() - t0:.2f} s")
        client = httpx.Client(base_url=f"{settings.ari_url}/ari",
                              auth=(settings.ari_user, settings.ari_password), timeout=5)
        the_lab = Lab(settings, env, tmp_path_factory.mktemp("phones"), client)
        the_lab.verifyline("roster", "import", str(DEMO_ROSTER))
        yield the_lab
        client.close()
    finally:
        lab.down(settings)
        os.environ.clear()
        os.environ.update(saved)


APP_LOG_ON_FAILURE = 200  # lines of the app's log a failed test prints (CI keeps no lab)


@pytest.fixture
def the_lab(lab_session: Lab, request: pytest.FixtureRequest) -> Iterator[Lab]:
    """The lab for one test: afterwards no phone stays registered, Asterisk holds no channel
    and no bridge (anything left is hung up, and the test fails) and the call log has no call
    left open. A test that failed prints what the app logged while it ran."""
    lab_session.phones, lab_session.callers = [], []
    started = lab_session.app_log_size()
    yield lab_session
    report = request.node.stash.get(PHASE_REPORTS, {}).get("call")
    if report is not None and report.failed:
        gained = (lab_session.settings.log_dir / "app.log").read_bytes()[started:]
        lines = gained.decode(errors="replace").splitlines()[-APP_LOG_ON_FAILURE:]
        print(f"\n[app.log during the test, last {len(lines)} lines]\n" + "\n".join(lines))
    for caller in lab_session.callers:
        caller.kill()  # one still running means its test failed; do not leave it behind
    for phone in lab_session.phones:
        phone.stop()
    # every test starts with every supervisor available (a test may pause one), and with no
    # desk held on the console nor owing an outcome (a console test may leave one so, and the
    # line would then offer that desk no call in the next test)
    since = lab_session.app_log_size()
    with Store(lab_session.settings.db_url).session() as s:
        was = calllog.availability(s)
        for desk in lab_session.settings.desks:
            calllog.set_availability(s, desk, paused=False, signed_out=False)
        owed = set(s.scalars(select(Supervisor.desk).where(
            Supervisor.wrapup_channel.is_not(None))))
        s.execute(update(Supervisor).values(console_user=None, console_since=None,
                                            wrapup_channel=None))
    reset = {d for d in lab_session.settings.desks if was.get(d, (False, False)) != (False, False)}
    if owed and lab.app_connected(lab_session.instance):
        poll("the line to take the owed desks back into service", lambda: owed <= (
            lab_session.availability_applied(since, "outcome given, back in service: ")),
            timeout=5, every=0.05)
    if reset and lab.app_connected(lab_session.instance):
        # ...and the line holds that too before the next test: its desk_availability() waits
        # for the line to log the change it makes, which never comes if the line still holds
        # this test's pause. The line logs the reset, unless it never saw the pause; two of its
        # reads (one a second) after the reset it holds the database's state either way.
        deadline = time.monotonic() + 2.5
        while (time.monotonic() < deadline
               and not reset <= lab_session.availability_applied(since)):
            time.sleep(0.05)
    try:
        poll("Asterisk to hold no channel and no bridge",
             lambda: not lab_session.channels() and not lab_session.bridges(), timeout=10)
    except AssertionError:
        left = ([c["name"] for c in lab_session.channels()],
                [b["id"] for b in lab_session.bridges()])
        for c in lab_session.channels():
            lab_session.ari.delete(f"/channels/{c['id']}")
        for b in lab_session.bridges():
            lab_session.ari.delete(f"/bridges/{b['id']}")
        pytest.fail(f"Asterisk still held channels/bridges after the test: {left}")
    # ...and the log holds no orphan: every call Asterisk no longer has is closed in it
    try:
        poll("every call in the log to be closed", lambda: not lab_session.open_calls(),
             timeout=15, every=0.5)
    except AssertionError:
        pytest.fail(f"calls left open in the log after the test: {lab_session.open_calls()}")


# --- a caller with an ear: hears and keys on the RTP level ---------------------------------



class Listener:
    """A caller whose ear and keypad are an RtpPhone; sipp does the SIP side."""

    def __init__(self, the_lab: Lab, number: str) -> None:
        self.lab = the_lab
        self.number = number
        self.phone = RtpPhone(ports.listener_rtp_port(ports.next_run()))
        self.sip: Caller = the_lab.caller(number, scenario="caller_listen",
                                          extra=("-key", "rtp_port", str(self.phone.port)))
        self.t0 = self.phone.wait_for_audio()

    def channel(self) -> dict[str, Any]:
        # desk legs show the caller's number too: the caller's own leg is on the trunk
        found: dict[str, Any] = poll("the caller's channel", lambda: next(
            (c for c in self.lab.channels() if c["caller"]["number"] == self.number
             and c["name"].startswith("PJSIP/trunk-")), None))
        return found

    def key_number(self, digits: str, after: float = 2.0, confirm_after: float = 0.6) -> None:
        """Into the greeting, key the number and '#', then confirm the read-back with 1."""
        time.sleep(after)
        self.phone.send_digits(digits + "#")
        time.sleep(confirm_after)
        self.phone.send_digits("1")

    def hang_up(self) -> None:
        """End the call from the line's side (sipp answers the BYE)."""
        ch = self.channel()
        self.lab.ari.delete(f"/channels/{ch['id']}")
        assert self.sip.wait(30) == 0, self.sip.failure()
        self.phone.close()

    def bridged_at(self, timeout: float = 30) -> float:
        me = self.channel()["id"]
        poll("the caller to be bridged with a desk", lambda: any(
            me in b["channels"] and len(b["channels"]) == 2 for b in self.lab.bridges()),
            timeout=timeout, every=0.05)
        return time.monotonic()


@pytest.fixture
def listener(the_lab: Lab) -> Iterator[Any]:
    made: list[Listener] = []

    def make(number: str) -> Listener:
        made.append(Listener(the_lab, number))
        return made[-1]

    yield make
    for each in made:
        each.phone.close()
        each.sip.kill()



# --- a real browser at the lab's console -------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test, so the browser fixture knows it failed."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def browser(the_lab: Lab, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium at the lab's console (tests/e2e/browser.py); a screenshot
    ``var/artifacts/<test>-failed.png`` if the test fails."""
    with open_browser(the_lab.console_url, request.node, tmp_path / "chromium") as b:
        yield b
