"""One real call end to end: sipp caller on the public trunk -> Asterisk 22 -> ARI app ->
roster -> a free desk phone (sipp) -> bridged -> logged. Nothing here is mocked."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from ivr import prompts
from ops import lab
from tests.e2e import ports
from tests.e2e.conftest import Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, dtmf_ms

pytestmark = pytest.mark.e2e


def kinds(the_lab: Lab, call: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in the_lab.timeline(call["id"])]


def rtp_counts(the_lab: Lab, channel_id: str) -> tuple[int, int]:
    stats = the_lab.ari.get(f"/channels/{channel_id}/rtp_statistics").json()
    return int(stats.get("rxcount", 0)), int(stats.get("txcount", 0))


@pytest.mark.sqlite_too  # the lab's default database
def test_given_on_duty_number_when_called_then_free_desk_answers_and_call_is_logged(the_lab):
    desk = the_lab.desk("desk1")
    t0 = time.monotonic()
    caller = the_lab.caller("07700900001", "123456#1",
                            wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 1500)

    bridge = poll("a bridge holding caller and desk",
                  lambda: next((b for b in the_lab.bridges() if len(b["channels"]) == 2), None))
    # RTP both ways: the caller's audio reaches the desk, which echoes it back to the caller
    caller_leg, desk_leg = sorted(bridge["channels"], key=lambda c: "-desk" in c)
    poll("RTP flowing both ways through the bridge", lambda: all(
        n > 0 for n in (*rtp_counts(the_lab, caller_leg), *rtp_counts(the_lab, desk_leg))),
        timeout=8)

    assert caller.wait() == 0, caller.failure()
    print(f"\n[figure] one verification call, dial to hang-up: {time.monotonic() - t0:.2f} s")
    assert desk.received()[:2] == ["INVITE", "ACK"]
    poll("the desk to get the BYE", lambda: "BYE" in desk.received(), timeout=5)
    call = the_lab.ended_call_from("07700900001")
    assert call["warrant_number"] == "123456"
    assert call["roster_result"] == "on_duty"
    assert call["supervisor"] == "desk1"
    assert call["path"] == "ari"
    assert call["end_reason"] == "caller_hangup"
    assert call["started_at"] < call["answered_at"] < call["ended_at"]
    assert call["officer"] == "PC Jane Smith"
    assert {"answered", "roster_checked", "desk_ringing", "bridged", "ended"} <= set(
        kinds(the_lab, call))


def test_given_unknown_number_when_called_then_still_bridged_and_logged_unknown(the_lab):
    the_lab.desk("desk2")
    caller = the_lab.caller("07700900002", "999999#1",
                            wait_ms=dtmf_ms("999999#1") + ANNOUNCE_MS + 1500)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from("07700900002")
    assert (call["roster_result"], call["warrant_number"]) == ("unknown", "999999")
    assert call["supervisor"] == "desk2" and call["answered_at"] is not None


def test_given_no_digits_at_all_then_straight_to_a_supervisor_as_none_entered(the_lab):
    desk = the_lab.desk("desk1", "desk_answer_hangup", talk_ms=12000)  # the supervisor ends it
    caller = the_lab.caller("07700900003", scenario="caller_silent")

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from("07700900003")
    assert call["roster_result"] == "none_entered" and call["warrant_number"] == ""
    assert call["supervisor"] == "desk1"
    assert call["end_reason"] == "supervisor_hangup"
    assert kinds(the_lab, call).count("entry_failed") == 1  # no key: not asked again
    assert "BYE" in caller.received() and desk.received()[:2] == ["INVITE", "ACK"]


def test_given_first_desk_does_not_answer_then_the_next_one_rings(the_lab):
    ignoring = the_lab.desk("desk3", "desk_ignore")
    caller = the_lab.caller("07700900004", "345678#1",
                            wait_ms=dtmf_ms("345678#1") + ANNOUNCE_MS + 2000)
    # the second desk plugs in while the first rings: which desk is idle longest depends on
    # the tests before this one, and this test is about the one rung first not answering
    poll("desk3 to ring", lambda: "INVITE" in ignoring.received(), timeout=30)
    answering = the_lab.desk("desk4")

    assert caller.wait() == 0, caller.failure()

    assert ignoring.received()[:2] == ["INVITE", "CANCEL"]
    assert answering.received()[:2] == ["INVITE", "ACK"]
    call = the_lab.ended_call_from("07700900004")
    assert call["roster_result"] == "restricted"
    assert call["supervisor"] == "desk4"
    events = the_lab.timeline(call["id"])
    rung = [e["desk"] for e in events if e["kind"] == "desk_ringing"]
    assert rung[:2] == ["desk3", "desk4"]
    assert any(e["kind"] == "desk_no_answer" and e["desk"] == "desk3" for e in events)


def test_given_desk_ringing_when_caller_hangs_up_then_desk_gets_cancel(the_lab):
    desk = the_lab.desk("desk1", "desk_ignore")
    # hangs up while the reference is read out and desk1 rings (its ring timeout is 4 s)
    caller = the_lab.caller("07700900005", "123456#1", scenario="caller_hangup",
                            wait_ms=dtmf_ms("123456#1") + 1500)

    assert caller.wait() == 0, caller.failure()

    poll("the desk phone to get CANCEL", lambda: "CANCEL" in desk.received())
    call = the_lab.ended_call_from("07700900005")
    assert call["end_reason"] == "caller_abandoned"
    assert call["supervisor"] is None and call["answered_at"] is None
    assert call["roster_result"] == "on_duty"
    assert "desk_cancelled" in kinds(the_lab, call)


def test_given_sip_info_dtmf_when_called_then_digits_are_understood(the_lab):
    the_lab.desk("desk2")
    caller = the_lab.caller("07700900006", scenario="caller_info", wait_ms=ANNOUNCE_MS + 2500)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from("07700900006")
    assert (call["warrant_number"], call["roster_result"]) == ("123456", "on_duty")
    assert call["supervisor"] == "desk2"


@pytest.mark.sqlite_too  # the lab's default database
def test_given_app_not_running_when_called_then_fallback_reaches_a_desk_and_is_logged(the_lab):
    inst = the_lab.instance
    lab.stop_app(inst)
    try:
        assert not lab.app_registered(the_lab.settings)
        desk = the_lab.desk("desk1")
        caller = the_lab.caller("07700900007", "123456#", wait_ms=6000)

        assert caller.wait() == 0, caller.failure()
        assert desk.received()[:2] == ["INVITE", "ACK"]
        poll("the desk to get the BYE", lambda: "BYE" in desk.received(), timeout=5)
        assert the_lab.call_from("07700900007") is None  # nobody logged it yet
    finally:
        lab.start_app(inst)

    call = the_lab.ended_call_from("07700900007", timeout=20)
    assert call["path"] == "fallback"
    assert call["supervisor"] == "desk1"
    assert call["end_reason"] == "caller_hangup"
    assert call["roster_result"] == "none_entered"
    # the desk answered after the fallback's message, not as the line answered the caller
    # (found under load: Asterisk's ANSWEREDTIME gave the caller's own answer)
    started, answered = (datetime.fromisoformat(call[k]) for k in ("started_at", "answered_at"))
    assert (answered - started).total_seconds() >= prompts.seconds("en/fallback_connecting")


def test_given_no_desk_free_when_called_then_caller_holds_until_one_is(the_lab):
    # desk2 is there (so no overflow) but paused: nobody is free
    the_lab.desk("desk2")
    the_lab.verifyline("supervisors", "pause", "desk2")
    caller = the_lab.caller("07700900008", "234567#1", wait_ms=ANNOUNCE_MS + 14000)

    call = poll("the call to be logged", lambda: the_lab.call_from("07700900008"))
    poll("a hold message while nobody is free", lambda: any(
        e["kind"] == "prompt" and "all_busy" in e["prompt"]
        for e in the_lab.timeline(call["id"])), timeout=20, every=0.5)
    the_lab.verifyline("supervisors", "available", "desk2")

    assert caller.wait() == 0, caller.failure()
    call = the_lab.ended_call_from("07700900008")
    assert (call["roster_result"], call["supervisor"]) == ("off_duty", "desk2")
    assert "no_supervisor_free" in kinds(the_lab, call)


@pytest.mark.sqlite_too  # the lab's default database
def test_given_bridged_call_when_app_is_killed_and_restarted_then_call_is_kept_and_logged(
        the_lab):
    the_lab.desk("desk2")
    caller = the_lab.caller("07700900009", "0042#1",
                            wait_ms=dtmf_ms("0042#1") + ANNOUNCE_MS + 7000)
    poll("a bridge holding caller and desk",
         lambda: any(len(b["channels"]) == 2 for b in the_lab.bridges()))
    inst = the_lab.instance
    pid = lab.read_pid(inst.app_pidfile)
    assert pid is not None

    os.kill(pid, signal.SIGKILL)
    poll("the app to be dead", lambda: not lab.running(pid))
    assert not lab.app_connected(inst)
    lab.start_app(inst)

    assert caller.wait() == 0, caller.failure()  # the bridged conversation was not cut
    call = the_lab.ended_call_from("07700900009")
    assert (call["roster_result"], call["supervisor"]) == ("on_duty", "desk2")
    assert call["end_reason"] == "caller_hangup"
    assert call["path"] == "ari"


def scrape(url: str) -> dict[str, float]:
    """A /metrics page as {series with its labels: value} (comments left out)."""
    text = httpx.get(url, timeout=5, trust_env=False).raise_for_status().text
    return {name: float(v) for name, _, v in (line.rpartition(" ") for line in
                                               text.splitlines() if not line.startswith("#"))}


APP_CALLS = ('verifyline_calls_total{end_reason="caller_hangup",path="ari",'
             'roster_result="on_duty"}')
LOGGED_CALLS = ('verifyline_logged_calls_total{end_reason="caller_hangup",path="ari",'
                'roster_result="on_duty"}')


def test_given_an_on_duty_call_when_it_ends_then_app_and_console_metrics_count_it(the_lab):
    """The app's /metrics (its own port) and the console's (on the console's port) both
    count the call by roster result, path and end reason; the app also its setup time, an
    empty queue and every desk in one state."""
    app_metrics = f"http://127.0.0.1:{ports.METRICS_PORT}/metrics"
    console_metrics = f"{the_lab.console_url}/metrics"
    app_before, console_before = scrape(app_metrics), scrape(console_metrics)
    the_lab.desk("desk2")
    caller = the_lab.caller("07700900913", "123456#1",
                            wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 1500)

    assert caller.wait() == 0, caller.failure()

    the_lab.ended_call_from("07700900913")
    poll("the app's /metrics to count the call", lambda: scrape(app_metrics).get(
        APP_CALLS, 0) == app_before.get(APP_CALLS, 0) + 1, timeout=5)
    app_after, console_after = scrape(app_metrics), scrape(console_metrics)
    assert console_after[LOGGED_CALLS] == console_before.get(LOGGED_CALLS, 0) + 1
    assert console_after["verifyline_console_database_up"] == 1
    assert (app_after["verifyline_setup_seconds_count"]
            == app_before.get("verifyline_setup_seconds_count", 0) + 1)
    assert app_after["verifyline_queue_length"] == 0
    # every desk is in exactly one state
    assert sum(v for k, v in app_after.items() if k.startswith("verifyline_desks{")) == len(
        the_lab.settings.desks)
