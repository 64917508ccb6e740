"""The lab CLI as outside tools use it: idempotent start, doctor, roster import errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivr import roster
from ivr.clock import now
from ivr.store import Store
from ops import lab
from tests.e2e.conftest import Lab

pytestmark = pytest.mark.e2e


def run(the_lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops", *args], env=the_lab.env,
                          capture_output=True, text=True, timeout=60)


def test_given_lab_running_when_up_again_then_nothing_restarts(the_lab):
    inst = the_lab.instance
    pidfiles = (inst.asterisk_pidfile, inst.app_pidfile, inst.console_pidfile)
    before = [lab.read_pid(p) for p in pidfiles]

    result = run(the_lab, "lab", "up")

    assert result.returncode == 0, result.stderr
    assert [lab.read_pid(p) for p in pidfiles] == before and None not in before
    assert f"sip:0800123456@127.0.0.1:{the_lab.settings.sip_port}" in result.stdout
    assert f"Console:      {the_lab.console_url}/" in result.stdout


@pytest.mark.sqlite_too  # the lab's default database
def test_given_lab_running_when_doctor_then_all_good(the_lab):
    result = run(the_lab, "doctor")

    assert result.returncode == 0, result.stdout
    assert "all good" in result.stdout
    assert "ok   ARI app: pid" in result.stdout
    assert f"ok   console: {the_lab.console_url} (pid " in result.stdout


def test_given_app_stopped_when_doctor_then_it_says_how_to_fix_it(the_lab):
    lab.stop_app(the_lab.instance)
    try:
        result = run(the_lab, "doctor")
    finally:
        lab.start_app(the_lab.instance)

    assert result.returncode == 1
    assert "FAIL ARI app" in result.stdout
    assert "verifyline lab app start" in result.stdout


@pytest.mark.sqlite_too  # the lab's default database
def test_given_roster_with_a_bad_row_when_imported_then_line_reported_and_nothing_changed(
        the_lab, tmp_path):
    bad = tmp_path / "roster.csv"
    bad.write_text("warrant_number,name,rank,status,on_duty_from,on_duty_until\n"
                   "111111,New Officer,PC,active,,\n"
                   "222222,Broken,PC,on-holiday,,\n")

    result = run(the_lab, "roster", "import", str(bad))

    assert result.returncode == 1
    assert "line 3" in result.stderr and "on-holiday" in result.stderr
    with Store(the_lab.settings.db_url).session() as s:
        assert roster.lookup(s, "111111", now()).result.value == "unknown"
        assert roster.lookup(s, "123456", now()).result.value == "on_duty"
