"""The call-distribution queue through the real Asterisk with several sipp desk phones:
who rings, who never rings, fairness, wrap-up, auto-pause, whisper, overflow, callbacks and
feature codes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import struct
import subprocess
import time
import wave
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from ivr.models import Supervisor
from ivr.store import Store
from ops import lab
from tests.e2e import ports
from tests.e2e.conftest import LAB_ENV, OVERFLOW_PORT, Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, SCENARIOS, busy_control_room, control_room, dtmf_ms

pytestmark = pytest.mark.e2e
WRAP_UP = float(LAB_ENV["VERIFYLINE_WRAP_UP"])


def supervisors(the_lab: Lab) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(the_lab.verifyline("supervisors", "list", "--json"))
    return rows


def longest_idle_first(the_lab: Lab, desks: list[str]) -> list[str]:
    """The order the line should offer these desks in, from what the log says."""
    idle = {r["desk"]: r["idle_since"] or "" for r in supervisors(the_lab)}
    return sorted(desks, key=lambda d: (idle[d], the_lab.settings.desks.index(d)))


def rung(the_lab: Lab, call: dict[str, Any]) -> list[str]:
    return [e["desk"] for e in the_lab.timeline(call["id"]) if e["kind"] == "desk_ringing"]


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"]).timestamp()


def one_call(the_lab: Lab, number: str, digits: str = "123456#1") -> dict[str, Any]:
    caller = the_lab.caller(number, digits, wait_ms=dtmf_ms(digits) + ANNOUNCE_MS + 1500)
    assert caller.wait() == 0, caller.failure()
    return the_lab.ended_call_from(number)


def test_given_three_free_desks_then_calls_go_longest_idle_first(the_lab):
    desks = ["desk1", "desk2", "desk3"]
    # given: a known idle order (earlier tests' calls, callbacks and restarts leave one the
    # test cannot tell apart from the line's); the line reads it from the store at its start
    base = datetime.now(UTC)
    with Store(the_lab.settings.db_url).session() as s:
        for n, d in enumerate(["desk2", "desk3", "desk1"]):
            s.execute(update(Supervisor).where(Supervisor.desk == d).values(
                idle_since=base - timedelta(minutes=30 - n)))
    the_lab.restart_app()
    for d in desks:
        the_lab.desk(d)
    expected = longest_idle_first(the_lab, desks)
    assert expected == ["desk2", "desk3", "desk1"]

    first = one_call(the_lab, "07700900201")
    second = one_call(the_lab, "07700900202")

    assert rung(the_lab, first) == [expected[0]]
    assert rung(the_lab, second) == [expected[1]]


def test_given_busy_unregistered_and_paused_desks_then_only_the_free_one_rings(the_lab):
    busy = the_lab.desk("desk1")
    free = the_lab.desk("desk2")
    paused = the_lab.desk("desk4")
    the_lab.desk_availability("pause", "desk4")  # desk3 is not registered at all
    talking = the_lab.caller("07700900211", "123456#1",
                             wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 12000)
    poll("desk1 or desk2 to be in a call", lambda: any(
        len(b["channels"]) == 2 for b in the_lab.bridges()), timeout=20)
    in_call = "desk1" if busy.received()[:1] == ["INVITE"] else "desk2"

    call = one_call(the_lab, "07700900212")

    assert talking.wait() == 0, talking.failure()
    other = "desk2" if in_call == "desk1" else "desk1"
    assert rung(the_lab, call) == [other]
    assert [busy, free][in_call == "desk2"].received().count("INVITE") == 1
    assert "INVITE" not in paused.received()


def test_given_a_desk_just_finished_a_call_then_it_rests_for_the_wrap_up(the_lab):
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=10000)
    first = the_lab.caller("07700900221", "123456#1", scenario="caller_waits")
    time.sleep(3.0)
    second = the_lab.caller("07700900222", "123456#1", scenario="caller_waits")  # queues
    assert first.wait(120) == 0, first.failure()
    assert second.wait(120) == 0, second.failure()

    ended = the_lab.ended_call_from("07700900221")["ended_at"]
    call = the_lab.ended_call_from("07700900222")
    ring = next(e for e in the_lab.timeline(call["id"]) if e["kind"] == "desk_ringing")
    rest = at(ring) - datetime.fromisoformat(ended).timestamp()
    print(f"\n[figure] desk offered the waiting caller {rest:.2f} s after its call ended "
          f"(wrap-up {WRAP_UP:.0f} s)")
    assert rung(the_lab, call) == ["desk1"]
    assert WRAP_UP <= rest < WRAP_UP + 1.0


def test_given_a_desk_ignores_rings_then_it_is_paused_and_callers_reach_another(the_lab):
    order = longest_idle_first(the_lab, ["desk3", "desk4"])
    ignoring = the_lab.desk(order[0], "desk_ignore")
    the_lab.desk(order[1])

    calls = [one_call(the_lab, f"0770090023{i}", "123456#1") for i in range(2)]
    for c in calls:
        assert c["supervisor"] == order[1]
    third = one_call(the_lab, "07700900239")

    assert ignoring.received().count("INVITE") == 2  # paused after two unanswered rings
    assert rung(the_lab, third) == [order[1]]
    state = {r["desk"]: r for r in supervisors(the_lab)}[order[0]]
    assert state["paused"] and state["pause_reason"] == "no_answer"
    assert "desk_auto_paused" in [e["kind"] for e in the_lab.timeline(calls[1]["id"])]


def test_given_five_callers_and_one_supervisor_then_served_in_arrival_order(the_lab):
    # talks long enough for the first caller to hear their reference, and for all five to be
    # queued before the first call ends (they arrive a second apart)
    the_lab.desk("desk2", "desk_answer_hangup", talk_ms=6000)
    numbers = [f"0770090024{i}" for i in range(5)]
    callers = []
    with busy_control_room(OVERFLOW_PORT):  # the last waits over the maximum: overflow
        for n in numbers:
            callers.append(the_lab.caller(n, "123456#1", scenario="caller_waits",
                                          timeout_s=400))
            time.sleep(1.0)
        for c in callers:
            assert c.wait(420) == 0, c.failure()

    calls = [the_lab.ended_call_from(n, timeout=30) for n in numbers]
    answered = [c["answered_at"] for c in calls]
    waits = [datetime.fromisoformat(c["answered_at"]).timestamp()
             - datetime.fromisoformat(c["started_at"]).timestamp() for c in calls]
    offers = []
    for prev, nxt in itertools.pairwise(calls):
        events = the_lab.timeline(nxt["id"])
        bridged = next(i for i, e in enumerate(events) if e["kind"] == "bridged")
        ring = [e for e in events[:bridged] if e["kind"] == "desk_ringing"][-1]
        offers.append(at(ring) - datetime.fromisoformat(prev["ended_at"]).timestamp()
                      - WRAP_UP)
    print("\n[figure] five callers, one desk: waits " + ", ".join(f"{w:.1f}" for w in waits)
          + f" s (median {statistics.median(waits):.1f} s); desk free to next ring "
          + ", ".join(f"{o * 1000:.0f}" for o in offers) + " ms after wrap-up")
    assert answered == sorted(answered)
    # the one desk phone pressed 1 in every whisper and the line heard it each time (a desk's
    # later calls once reused an old INFO transaction, so its 1 never arrived)
    confirmed = [e.get("by") for c in calls for e in the_lab.timeline(c["id"])
                 if e["kind"] == "whisper_done"]
    assert confirmed == ["key"] * 5
    heard = [e["prompt"] for c in calls[2:] for e in the_lab.timeline(c["id"])
             if e["kind"] == "prompt"]
    assert any("position" in p or "you_are_next" in p for p in heard), \
        "callers further back never heard their place in the queue"


def test_given_callers_waiting_when_one_presses_star_9_then_they_jump_the_queue(the_lab):
    desk = the_lab.desk("desk2", "desk_answer_hangup", talk_ms=9000)
    with busy_control_room(OVERFLOW_PORT):  # an emergency rings the control room first
        first = the_lab.caller("07700900251", "123456#1", scenario="caller_waits")
        time.sleep(1.0)
        second = the_lab.caller("07700900252", "123456#1", scenario="caller_waits")
        time.sleep(1.0)
        urgent = the_lab.caller("07700900253", "123456#1*9", scenario="caller_waits")
        for c in (first, second, urgent):
            assert c.wait(240) == 0, c.failure()

    calls = {n: the_lab.ended_call_from(n) for n in ("07700900251", "07700900252",
                                                     "07700900253")}
    # the first caller was already being served; the emergency goes before the second
    assert calls["07700900253"]["answered_at"] < calls["07700900252"]["answered_at"]
    assert "emergency" in calls["07700900253"]["flags"]
    assert desk.received().count("INVITE") >= 3


def test_given_desk_answers_then_whisper_before_bridge_and_hang_up_keeps_caller_first(
        the_lab):
    the_lab.desk("desk1", "desk_whisper_hangup")  # hangs up 2 s into the whisper
    the_lab.desk("desk3", "desk_answer_hangup", talk_ms=12000)
    the_lab.desk_availability("pause", "desk3")
    caller = the_lab.caller("07700900261", "345678#1", scenario="caller_waits")
    call = poll("desk1 to hear the whisper", lambda: (
        c := the_lab.call_from("07700900261")) and any(
        e["kind"] == "whisper" for e in the_lab.timeline(c["id"])) and c,
        timeout=30, every=0.2)
    # desk1's supervisor is about to hang up; desk3's comes back from a break
    the_lab.verifyline("supervisors", "pause", "desk1")
    the_lab.verifyline("supervisors", "available", "desk3")

    assert caller.wait(120) == 0, caller.failure()

    call = the_lab.ended_call_from("07700900261")
    events = the_lab.timeline(call["id"])
    kinds = [e["kind"] for e in events]
    assert call["supervisor"] == "desk3"
    def last(kind: str) -> int:
        return len(kinds) - 1 - kinds[::-1].index(kind)

    # desk1 heard the whisper and hung up; desk3 heard it, then the caller was bridged
    assert kinds.index("whisper") < kinds.index("desk_hung_up_during_whisper") < last("whisper")
    assert last("whisper") < last("whisper_done") < kinds.index("bridged")
    text = next(e["prompt"] for e in events if e["kind"] == "whisper")
    assert "result_restricted" in text  # the number and reference are on the display


def _overflow_phone() -> AbstractContextManager[subprocess.Popen[bytes]]:
    return control_room(OVERFLOW_PORT, ports.CONTROL_ROOM_MEDIA)


def test_given_no_supervisor_signed_in_then_the_overflow_rings_at_once(the_lab):
    with _overflow_phone() as overflow:
        call = one_call(the_lab, "07700900271")
        assert overflow.wait(20) == 0
    assert call["supervisor"] == "overflow"
    events = the_lab.timeline(call["id"])
    assert any(e["kind"] == "overflow" and e["reason"] == "no_supervisor_signed_in"
               for e in events)


def test_given_wait_over_the_maximum_then_the_overflow_rings(the_lab):
    the_lab.desk("desk1")
    the_lab.verifyline("supervisors", "pause", "desk1")  # signed in, but not taking calls
    max_wait = float(LAB_ENV["VERIFYLINE_QUEUE_MAX_WAIT"])
    with _overflow_phone() as overflow:
        # the caller talks to the control room, then hangs up
        caller = the_lab.caller("07700900272", "123456#1",
                                wait_ms=int((max_wait + 15) * 1000))
        assert caller.wait(120) == 0, caller.failure()
        assert overflow.wait(30) == 0
    call = the_lab.ended_call_from("07700900272")
    events = the_lab.timeline(call["id"])
    queued = next(e for e in events if e["kind"] == "queued")
    over = next(e for e in events if e["kind"] == "overflow")
    assert over["reason"] == "max_wait"
    assert max_wait - 1 <= at(over) - at(queued) <= max_wait + 3
    assert call["supervisor"] == "overflow"


def test_given_caller_gives_up_while_queued_then_a_callback_is_listed(the_lab):
    caller = the_lab.caller("07700900281", "123456#1", scenario="caller_hangup",
                            wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 2000)
    assert caller.wait() == 0, caller.failure()
    call = the_lab.ended_call_from("07700900281")

    listed = json.loads(the_lab.verifyline("callbacks", "list", "--json"))

    mine = [c for c in listed if c["call_id"] == call["id"]]
    assert len(mine) == 1
    assert (mine[0]["caller_number"], mine[0]["reference"], mine[0]["digits_entered"]) == (
        "07700900281", call["reference"], "123456")
    the_lab.verifyline("callbacks", "done", str(mine[0]["id"]), "--by", "desk1")
    assert all(c["call_id"] != call["id"]
               for c in json.loads(the_lab.verifyline("callbacks", "list", "--json")))


def test_given_desk_dials_feature_codes_then_its_availability_changes(the_lab):
    the_lab.desk("desk4")

    def dial(code: str) -> None:
        result = subprocess.run(
            ["sipp", f"127.0.0.1:{the_lab.settings.sip_port}",
             "-sf", str(SCENARIOS / "desk_dials.xml"), "-s", code,
             "-au", "desk4", "-ap", "lab-desk4", "-key", "desk", "desk4",
             "-i", "127.0.0.1", "-p", str(ports.FEATURE_DIALLER_SIP), "-mi", "127.0.0.1",
             "-mp", str(ports.FEATURE_DIALLER_MEDIA),
             "-m", "1", "-nostdin",
             "-timeout", "20", "-timeout_error"],
            capture_output=True, timeout=40, cwd=the_lab.workdir)
        assert result.returncode == 0, result.stdout[-500:]

    def state() -> dict[str, Any]:
        return {r["desk"]: r for r in supervisors(the_lab)}["desk4"]

    dial("*51")
    assert state()["paused"] is True
    dial("*52")
    assert state()["paused"] is False


def test_given_recording_on_then_the_bridged_conversation_is_recorded_and_not_silent(the_lab):
    the_lab.desk("desk1")  # echoes the caller's audio back: both sides are heard
    call = one_call(the_lab, "07700900291")

    assert call["recording"], "the call row does not point to a recording"
    path = (the_lab.settings.home / "asterisk" / "astspool" / "recording"
            / f"{call['recording']}.wav")
    poll(f"{path} to be written", path.exists)
    with wave.open(str(path)) as w:
        seconds = w.getnframes() / w.getframerate()
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    level = (sum(s * s for s in samples) / max(1, len(samples))) ** 0.5
    print(f"\n[figure] recording {seconds:.1f} s, RMS {level:.0f}")
    assert seconds > 1.0 and level > 100
    heard = [e["prompt"] for e in the_lab.timeline(call["id"]) if e["kind"] == "prompt"]
    assert any("recorded" in p for p in heard), "the caller was not told"


# --- holding with music, ring-all, the control room alongside the desks ------------------


def test_given_caller_on_hold_when_the_app_dies_then_the_music_goes_on_and_they_are_found(
        the_lab, listener):
    # desk2 is signed in (so no overflow) but paused: the caller has to wait
    the_lab.desk("desk2")
    the_lab.desk_availability("pause", "desk2")
    caller = listener("07700900301")
    caller.key_number("123456")
    me = caller.channel()["id"]
    poll("the caller in a holding bridge of their own", lambda: any(
        b["bridge_type"] == "holding" and b["channels"] == [me] for b in the_lab.bridges()))
    time.sleep(ANNOUNCE_MS / 1000 + 1)  # the reference has been read out: music now
    on_hold = time.monotonic()
    time.sleep(4)

    # the app dies and (its supervisor killed first) stays down for a while
    inst = the_lab.instance
    supervisor, pid = lab.read_pid(inst.supervisor_pidfile), lab.read_pid(inst.app_pidfile)
    assert supervisor is not None and pid is not None
    os.kill(supervisor, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    poll("the app to be dead", lambda: not lab.running(pid))
    down = time.monotonic()
    time.sleep(6)  # nobody is serving the line now
    lab.start_app(inst)
    poll("the app back", lambda: lab.app_connected(inst))
    back = time.monotonic()
    the_lab.verifyline("supervisors", "available", "desk2")
    caller.bridged_at(timeout=30)

    def loud(start: float, end: float) -> float:
        frames = caller.phone.frames(start, end)
        return sum(1 for _, r in frames if r >= 150) / max(1, len(frames))

    print(f"\n[figure] on hold: loud frames {loud(on_hold, down):.0%} with the app, "
          f"{loud(down, back):.0%} without it; longest silence without the app "
          f"{caller.phone.longest_silence(down, back):.2f} s")
    assert loud(down, back) > 0.5, "the caller heard silence while the app was down"
    assert caller.phone.longest_silence(down, back) < 2.0
    caller.hang_up()
    call = the_lab.ended_call_from("07700900301")
    assert call["supervisor"] == "desk2" and call["path"] == "ari"
    kinds = [e["kind"] for e in the_lab.timeline(call["id"])]
    assert kinds.count("ended") == 1 and "bridged" in kinds


@pytest.fixture
def ring_all(the_lab: Lab) -> Iterator[None]:
    """The app restarted with VERIFYLINE_STRATEGY=ring_all, and back to the default after."""
    the_lab.restart_app(VERIFYLINE_STRATEGY="ring_all")
    try:
        yield
    finally:
        the_lab.restart_app(VERIFYLINE_STRATEGY=None)


def test_given_ring_all_then_every_free_desk_rings_and_the_first_to_answer_takes_it(
        the_lab, ring_all):
    ignoring = [the_lab.desk("desk1", "desk_ignore"), the_lab.desk("desk3", "desk_ignore")]
    the_lab.desk("desk2")

    call = one_call(the_lab, "07700900311")

    events = the_lab.timeline(call["id"])
    ringing = [e for e in events if e["kind"] == "desk_ringing"]
    assert sorted(e["desk"] for e in ringing) == ["desk1", "desk2", "desk3"]
    assert at(ringing[-1]) - at(ringing[0]) < 1.0  # all at once
    assert call["supervisor"] == "desk2"
    cancelled = {e["desk"] for e in events if e["kind"] == "desk_cancelled"}
    assert cancelled == {"desk1", "desk3"}
    for phone in ignoring:
        assert phone.received()[:2] == ["INVITE", "CANCEL"]
    # a phone that was cancelled because another answered is not held against it
    assert all(not r["paused"] for r in supervisors(the_lab))


def test_given_the_control_room_does_not_answer_then_it_and_the_desks_are_tried_until_one_does(
        the_lab):
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=3000)
    the_lab.verifyline("supervisors", "pause", "desk1")  # signed in, not taking calls
    max_wait = float(LAB_ENV["VERIFYLINE_QUEUE_MAX_WAIT"])
    caller = the_lab.caller("07700900321", "123456#1", scenario="caller_waits")
    # nobody is at the control room either (nothing listens on its address)
    call = poll("the control room to be tried twice", lambda: (
        c := the_lab.call_from("07700900321")) and sum(
        1 for e in the_lab.timeline(c["id"])
        if e["kind"] == "desk_ringing" and e["desk"] == "overflow") >= 2 and c,
        timeout=max_wait + 30, every=0.5)
    the_lab.verifyline("supervisors", "available", "desk1")

    assert caller.wait(120) == 0, caller.failure()
    call = the_lab.ended_call_from("07700900321")
    assert call["supervisor"] == "desk1"
    assert call["end_reason"] in ("caller_hangup", "supervisor_hangup")
