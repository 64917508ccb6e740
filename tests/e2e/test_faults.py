"""Faults through the real Asterisk with real SIP phones: the app killed, the ARI socket
dropped, the database gone, Asterisk restarted, debris left behind. Every caller still ends
with a person, and every call is logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from ivr.services import journal_path
from ops import lab
from tests.e2e.conftest import DEMO_ROSTER, LAB_ENV, Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, dtmf_ms
from tests.pgcluster import PgCluster

pytestmark = pytest.mark.e2e


def logged_once(the_lab: Lab, number: str) -> dict[str, Any]:
    """The call's single row, ended, with a single 'ended' event in its timeline."""
    call = the_lab.ended_call_from(number, timeout=30)
    ends = [e for e in the_lab.timeline(call["id"]) if e["kind"] == "ended"]
    assert len(ends) == 1, f"call from {number} ended {len(ends)} times in its timeline"
    return call


def test_given_the_app_is_killed_then_its_supervisor_restarts_it_within_2s(the_lab):
    inst = the_lab.instance
    pid = lab.read_pid(inst.app_pidfile)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    new_pid = poll("a new app process", lambda: (p := lab.read_pid(inst.app_pidfile))
                   and p != pid and p, timeout=5, every=0.02)
    started = time.monotonic() - killed
    poll("the new app connected", lambda: lab.app_connected(inst), timeout=10, every=0.02)
    connected = time.monotonic() - killed
    print(f"\n[figure] app killed -> new process {started:.2f} s -> connected to Asterisk "
          f"{connected:.2f} s")
    assert started < 2.0
    assert lab.read_pid(inst.supervisor_pidfile) is not None
    assert new_pid != pid


@pytest.mark.sqlite_too  # the lab's default database
def test_given_3_waiting_and_1_bridged_when_the_app_is_killed_then_all_4_reach_a_person(
        the_lab):
    talker = the_lab.desk("desk1", "desk_answer_hangup", talk_ms=45000)
    bridged = the_lab.caller("07700900401", "123456#1", scenario="caller_waits")
    poll("the first caller bridged with desk1",
         lambda: any(len(b["channels"]) == 2 for b in the_lab.bridges()), timeout=40)
    waiting = ["07700900402", "07700900403", "07700900404"]
    callers = [the_lab.caller(n, "234567#1", scenario="caller_waits") for n in waiting]
    poll("three callers on hold", lambda: sum(
        1 for b in the_lab.bridges() if b["bridge_type"] == "holding") == 3, timeout=30)
    time.sleep((dtmf_ms("234567#1") + ANNOUNCE_MS) / 1000)
    inst = the_lab.instance
    pid = lab.read_pid(inst.app_pidfile)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    poll("the app back", lambda: lab.app_connected(inst)
         and lab.read_pid(inst.app_pidfile) != pid, timeout=10)
    # more supervisors come on shift to take the waiting callers
    the_lab.desk("desk2", "desk_answer_hangup", talk_ms=2000)
    the_lab.desk("desk3", "desk_answer_hangup", talk_ms=2000)

    assert bridged.wait(90) == 0, bridged.failure()
    for caller in callers:
        assert caller.wait(120) == 0, caller.failure()

    first = logged_once(the_lab, "07700900401")
    assert (first["supervisor"], first["end_reason"]) == ("desk1", "supervisor_hangup")
    assert talker.received().count("INVITE") >= 1
    for number in waiting:
        call = logged_once(the_lab, number)
        assert call["supervisor"] in ("desk1", "desk2", "desk3"), call
        assert call["answered_at"] is not None and call["path"] == "ari"


def test_given_the_ari_socket_is_shut_from_asterisk_mid_entry_then_the_caller_still_gets_through(
        the_lab, listener):
    the_lab.desk("desk1")
    caller = listener("07700900411")
    time.sleep(2.0)
    caller.phone.send_digits("12")
    inst = the_lab.instance
    # app.log is appended to by every start of the app: only what it gains from here on
    # can show this reconnect (app_connected alone may still be true from before the drop)
    app_log = the_lab.settings.log_dir / "app.log"
    before = app_log.stat().st_size

    print(lab.cli(inst, "ari shutdown websocket sessions"))
    poll("the app to reconnect", lambda: "ARI events connected" in app_log.read_bytes()[
        before:].decode(errors="replace") and lab.app_connected(inst), timeout=10, every=0.05)
    time.sleep(0.5)
    caller.phone.send_digits("3456#")
    time.sleep(0.6)
    caller.phone.send_digits("1")

    caller.bridged_at(timeout=40)
    caller.hang_up()
    call = logged_once(the_lab, "07700900411")
    assert (call["warrant_number"], call["supervisor"]) == ("123456", "desk1")


def test_given_asterisk_restarts_then_the_app_answers_within_5s_and_lost_calls_are_closed(
        the_lab):
    the_lab.desk("desk2")
    the_lab.verifyline("supervisors", "pause", "desk2")  # the caller has to wait
    waiting = the_lab.caller("07700900421", "123456#1", scenario="caller_waits")
    poll("the caller on hold", lambda: any(
        b["bridge_type"] == "holding" for b in the_lab.bridges()), timeout=30)
    inst = the_lab.instance
    pid = lab.read_pid(inst.asterisk_pidfile)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)  # a crash: nobody hangs anything up
    poll("Asterisk to be dead", lambda: not lab.running(pid))
    waiting.kill()  # the caller's phone notices the silence and gives up
    lab.start_asterisk(inst)
    ready = time.monotonic()
    poll("the app connected again", lambda: lab.app_connected(inst), timeout=10, every=0.05)
    back = time.monotonic() - ready
    print(f"\n[figure] Asterisk fully booted -> app connected {back:.2f} s")
    assert back <= 5.0

    lost = the_lab.ended_call_from("07700900421", timeout=20)
    assert lost["end_reason"] == "asterisk_restart"
    listed = json.loads(the_lab.verifyline("callbacks", "list", "--json"))
    assert any(c["call_id"] == lost["id"] for c in listed), "nobody is told to call back"
    the_lab.verifyline("supervisors", "available", "desk2")
    the_lab.desk("desk2")  # the phone registers again with the new Asterisk
    caller = the_lab.caller("07700900422", "123456#1",
                            wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 3000)
    assert caller.wait() == 0, caller.failure()
    assert logged_once(the_lab, "07700900422")["supervisor"] == "desk2"


def test_given_debris_then_the_sweeper_clears_it_and_never_touches_live_calls(the_lab):
    grace = float(LAB_ENV["VERIFYLINE_SWEEP_GRACE"])
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=60000)
    talking = the_lab.caller("07700900431", "123456#1", scenario="caller_waits")
    poll("a caller bridged", lambda: any(len(b["channels"]) == 2 for b in the_lab.bridges()),
         timeout=40)
    holding = the_lab.caller("07700900432", "234567#1", scenario="caller_waits")
    poll("a caller on hold", lambda: any(
        b["bridge_type"] == "holding" for b in the_lab.bridges()), timeout=30)
    the_lab.ari.post("/bridges/debris-hold", params={"type": "holding"})  # left by a crash
    live = {b["id"]: b["channels"] for b in the_lab.bridges() if b["id"] != "debris-hold"}
    channels = {c["id"] for c in the_lab.channels()}

    poll("the sweeper to clear the empty bridge", lambda: all(
        b["id"] != "debris-hold" for b in the_lab.bridges()), timeout=4 * grace + 5)
    time.sleep(3 * grace)  # several more sweeps with live calls around

    assert {b["id"]: b["channels"] for b in the_lab.bridges()} == live
    assert {c["id"] for c in the_lab.channels()} == channels
    app_log = (the_lab.settings.log_dir / "app.log").read_text()
    swept = [line for line in app_log.splitlines() if "sweeper:" in line]
    assert any("destroy bridge debris-hold (empty bridge" in line for line in swept)
    assert all("debris-hold" in line for line in swept), swept
    the_lab.desk("desk2", "desk_answer_hangup", talk_ms=2000)  # takes the waiting caller
    assert holding.wait(120) == 0, holding.failure()
    assert logged_once(the_lab, "07700900432")["supervisor"] == "desk2"
    on_desk1 = next(c for c in the_lab.channels() if c["name"].startswith("PJSIP/desk1-"))
    the_lab.ari.delete(f"/channels/{on_desk1['id']}")  # the supervisor ends the first call
    assert talking.wait(30) == 0, talking.failure()
    assert logged_once(the_lab, "07700900431")["end_reason"] == "supervisor_hangup"


@pytest.fixture
def app_on_postgres(the_lab: Lab, request: pytest.FixtureRequest) -> Iterator[
        tuple[PgCluster, dict[str, str]]]:
    """The app restarted on a PostgreSQL database of its own (a server the test may stop),
    with the demo roster in it; back to the lab's database afterwards."""
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    env = {"VERIFYLINE_DB_URL": cluster.create_database(f"outage_{os.getpid()}")}
    the_lab.verifyline("roster", "import", str(DEMO_ROSTER), env=env)
    the_lab.restart_app(**env)
    try:
        yield cluster, env
    finally:
        if not cluster.running:
            cluster.start()
        the_lab.restart_app(VERIFYLINE_DB_URL=None)


def test_given_the_database_is_stopped_for_60s_then_no_call_fails_and_all_are_logged_once(
        the_lab, app_on_postgres):
    cluster, env = app_on_postgres
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=2000)
    the_lab.desk("desk2", "desk_answer_hangup", talk_ms=2000)
    numbers = [f"0770090044{i}" for i in range(5)]

    def call(number: str) -> Any:
        return the_lab.caller(number, "123456#1", scenario="caller_waits")

    before = call(numbers[0])
    assert before.wait(90) == 0, before.failure()
    # a fast shutdown: the throwaway cluster runs without synchronous commit (speed), so an
    # immediate one would lose the server's own last commits, which is not what is tested here
    cluster.stop("fast")
    stopped = time.monotonic()
    during = []
    for number in numbers[1:]:  # calls keep coming while the database is away
        during.append(call(number))
        time.sleep(12)
    for caller in during:
        assert caller.wait(90) == 0, caller.failure()
    time.sleep(max(0.0, 60 - (time.monotonic() - stopped)))
    journal = journal_path(replace(the_lab.settings, db_url=env["VERIFYLINE_DB_URL"]))
    waiting = len(journal.read_text().splitlines()) - 1
    cluster.start()
    print(f"\n[figure] database down {time.monotonic() - stopped:.0f} s; {len(during)} calls "
          f"meanwhile; {waiting} log entries waited in the journal")

    def rows() -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(
            the_lab.verifyline("calls", "list", "--json", env=env))
        return [c for c in listed if c["caller_number"] in numbers and c["ended_at"]]

    poll("every call in the database", lambda: len(rows()) == len(numbers), timeout=30)
    for row in rows():
        assert row["supervisor"] in ("desk1", "desk2") and row["roster_result"] == "on_duty"
        shown = json.loads(the_lab.verifyline("calls", "show", str(row["id"]), env=env))
        kinds = [e["kind"] for e in shown["timeline"]]
        assert kinds.count("ended") == 1 and kinds.count("started") == 1, kinds
        if row["caller_number"] != numbers[0]:
            assert "roster_from_copy" in kinds
    assert len({r["caller_number"] for r in rows()}) == len(numbers)
