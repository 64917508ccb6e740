"""What the caller hears and keys, measured on the RTP level through the real Asterisk:
real prompts (not silence), the language key, barge-in, no dead air, safety keys, identical
treatment whatever the roster says, rate flagging, and every bad input or hang-up."""

from __future__ import annotations

import re
import subprocess
import time
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ivr import prompts
from tests.e2e import ports
from tests.e2e.conftest import OVERFLOW_PORT, Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, control_room, dtmf_ms
from tests.e2e.rtp import similarity, wav_envelope

pytestmark = pytest.mark.e2e
def prompt_envelope(lang: str, prompt_id: str, seconds: float, skip: float = 0.0) -> list[float]:
    env = wav_envelope(prompts.path(lang, prompt_id), seconds + skip)
    return env[int(skip * 50):]


def heard_prompts(the_lab: Lab, call: dict[str, Any]) -> list[str]:
    """The prompts a caller was played, with their own digits masked."""
    return [re.sub(r"digit_\d", "digit", e["prompt"]) for e in the_lab.timeline(call["id"])
            if e["kind"] == "prompt"]


# --- audio -----------------------------------------------------------------------------------


def test_given_caller_keys_a_number_then_real_prompts_and_never_over_5s_of_silence(
        the_lab, listener):
    the_lab.desk("desk1")
    caller = listener("07700900101")

    caller.key_number("123456")
    bridged = caller.bridged_at()

    greeting = similarity(caller.phone.envelope(caller.t0, 2.0),
                          prompt_envelope("en", "greeting", 2.0))
    silence = caller.phone.longest_silence(caller.t0, bridged)
    print(f"\n[figure] answer to bridge {bridged - caller.t0:.1f} s; longest silence "
          f"{silence:.2f} s; greeting envelope match {greeting:.2f}")
    assert greeting > 0.6, "the caller did not hear the English greeting"
    assert silence <= 5.0
    caller.hang_up()
    # each key went out as RFC 4733 with its end packet three times: no digit doubled
    assert the_lab.ended_call_from("07700900101")["warrant_number"] == "123456"


def test_given_the_desk_confirms_during_the_reference_then_it_is_read_again_once_bridged(
        the_lab, listener):
    # given a desk that answers and presses 1 at once, while the caller's reference is read
    the_lab.desk("desk1", talk_ms=12000)
    caller = listener("07700900131")

    # when the caller keys a number and is bridged with it
    caller.key_number("123456")
    bridged = caller.bridged_at()
    poll("two seconds of the bridged call", lambda: time.monotonic() > bridged + 2.5,
         timeout=10, every=0.1)

    # then the caller hears "your reference is" again (played to each of them, not into
    # the bridge, where a third party would make Asterisk mix audio for every call)
    heard = caller.phone.envelope(bridged - 0.3, 2.3)
    match = similarity(heard, prompt_envelope("en", "reference", 1.0))
    print(f"\n[figure] reference prompt envelope match once bridged {match:.2f}")
    assert match > 0.6, "the caller did not hear their reference again once bridged"
    caller.hang_up()
    call = the_lab.ended_call_from("07700900131")
    again = [e for e in the_lab.timeline(call["id"])
             if e["kind"] == "prompt" and e.get("to") == "caller and desk"]
    assert len(again) == 1 and again[0]["prompt"].startswith("en/reference+en/digit_")


def test_given_no_key_at_all_then_silence_still_never_exceeds_5s(the_lab, listener):
    the_lab.desk("desk2")
    caller = listener("07700900102")

    bridged = caller.bridged_at(timeout=90)

    silence = caller.phone.longest_silence(caller.t0, bridged)
    print(f"\n[figure] no keys: answer to bridge {bridged - caller.t0:.1f} s; "
          f"longest silence {silence:.2f} s")
    assert silence <= 5.0
    caller.hang_up()


def test_given_star_2_during_greeting_then_the_prompts_change_to_polish(the_lab, listener):
    caller = listener("07700900103")
    time.sleep(1.5)

    (pressed,) = caller.phone.send_digits("*2", gap=0.3)[1:]
    time.sleep(5.0)

    heard = caller.phone.envelope(pressed + 0.3, 4.0)
    polish = similarity(heard, prompt_envelope("pl", "greeting", 4.0))
    english = similarity(heard, prompt_envelope("en", "greeting", 4.0, skip=2.0))
    print(f"\n[figure] after *2: match with Polish greeting {polish:.2f}, "
          f"with the rest of the English one {english:.2f}")
    assert polish > 0.6 and polish > english + 0.15
    call = the_lab.call_from("07700900103")
    assert call is not None and call["language"] == "pl"
    caller.hang_up()


def test_given_digit_300ms_into_greeting_then_the_greeting_stops(the_lab, listener):
    caller = listener("07700900104")
    time.sleep(0.3 - (time.monotonic() - caller.t0))

    (pressed,) = caller.phone.send_digits("1", gap=0)
    time.sleep(2.0)

    loud_after = [t for t, r in caller.phone.frames(pressed, pressed + 2.0) if r >= 150]
    stopped = (loud_after[-1] - pressed) if loud_after else 0.0
    greeting_s = len(wav_envelope(prompts.path("en", "greeting"), 60)) / 50
    print(f"\n[figure] barge-in: greeting audio stopped {stopped * 1000:.0f} ms after the key "
          f"(the greeting lasts {greeting_s:.1f} s)")
    assert stopped < 0.5
    call = the_lab.call_from("07700900104")
    assert call is not None
    assert "barge_in" in [e["kind"] for e in the_lab.timeline(call["id"])]
    caller.hang_up()


# --- no enumeration --------------------------------------------------------------------------


def _desk_invite_times(log: Path) -> list[float]:
    """Wall-clock times at which a sipp desk phone received an INVITE."""
    times = []
    for m in re.finditer(r"-{20,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)\n[^\n]*received"
                         r"[^\n]*\n\s*\n\s*INVITE ", log.read_text(errors="replace")):
        times.append(datetime.fromisoformat(f"{m.group(1)} {m.group(2)}").timestamp())
    return times


def test_given_any_roster_result_then_same_prompts_and_same_time_to_ring(the_lab, listener):
    desk = the_lab.desk("desk3", "desk_ignore")
    figures, sequences = {}, {}
    for number, digits in (("07700900111", "123456"), ("07700900112", "345678"),
                           ("07700900113", "999999")):
        caller = listener(number)
        time.sleep(1.0)
        sent = caller.phone.send_digits(digits + "#")
        hash_wall = time.time() - (time.monotonic() - sent[-1])
        time.sleep(0.5)
        caller.phone.send_digits("1")
        def rang(h: float = hash_wall) -> float | None:
            return next((t for t in _desk_invite_times(desk.log) if t > h), None)

        ring = poll("the desk phone to ring", rang)
        figures[digits] = ring - hash_wall
        caller.hang_up()
        call = the_lab.ended_call_from(number)
        sequences[call["roster_result"]] = heard_prompts(the_lab, call)

    print("\n[figure] '#' to desk ringing: " + ", ".join(
        f"{d} {t * 1000:.0f} ms" for d, t in figures.items())
        + f"; spread {(max(figures.values()) - min(figures.values())) * 1000:.0f} ms")
    assert set(sequences) == {"on_duty", "restricted", "unknown"}
    assert sequences["on_duty"] == sequences["restricted"] == sequences["unknown"]
    assert max(figures.values()) - min(figures.values()) < 0.25


def test_given_many_lookups_from_one_number_then_the_call_is_flagged_not_refused(the_lab):
    def ended_rows() -> list[dict[str, Any]]:
        return [c for c in the_lab.calls()
                if c["caller_number"] == "07700900120" and c["ended_at"]]

    for n in range(1, 4):  # the lab's limit is 2 lookups per window
        caller = the_lab.caller("07700900120", "123456#1", scenario="caller_hangup",
                                wait_ms=dtmf_ms("123456#1") + 1000)
        assert caller.wait() == 0, caller.failure()
        def logged(n: int = n) -> bool:
            return len(ended_rows()) == n

        poll(f"call {n} to be logged", logged)

    assert [c["flags"] for c in ended_rows()] == [[], [], ["many_lookups"]]
    assert all(c["roster_result"] == "on_duty" for c in ended_rows())  # still checked


# --- safety keys ---------------------------------------------------------------------------


def _overflow() -> AbstractContextManager[subprocess.Popen[bytes]]:
    return control_room(OVERFLOW_PORT, ports.CONTROL_ROOM_MEDIA, timeout_s=90)


@pytest.mark.parametrize(("keys", "stage"), [("*0", "greeting"), ("12*0", "mid_entry")])
def test_given_star_0_then_straight_to_a_supervisor(the_lab, keys, stage):
    the_lab.desk("desk4")
    number = f"0770090013{len(keys)}"
    caller = the_lab.caller(number, keys, wait_ms=dtmf_ms(keys) + ANNOUNCE_MS + 1500)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from(number)
    assert call["supervisor"] == "desk4"
    assert call["roster_result"] == "none_entered"
    assert "asked_for_supervisor" in call["flags"]


@pytest.mark.parametrize(("keys", "stage"), [("*9", "greeting"), ("12*9", "mid_entry")])
def test_given_star_9_then_the_control_room_answers_and_the_call_is_flagged(
        the_lab, keys, stage):
    the_lab.desk("desk4")  # a free supervisor exists, yet the control room comes first
    number = f"0770090014{len(keys)}"
    with _overflow() as overflow:
        caller = the_lab.caller(number, keys, wait_ms=dtmf_ms(keys) + ANNOUNCE_MS + 1500)
        assert caller.wait() == 0, caller.failure()
        assert overflow.wait(20) == 0
    call = the_lab.ended_call_from(number)
    assert call["supervisor"] == "overflow"
    assert "emergency" in call["flags"]


def test_given_caller_holding_when_star_0_or_9_then_kept_or_control_room_rings(the_lab, listener):
    the_lab.desk("desk3")
    the_lab.verifyline("supervisors", "pause", "desk3")  # signed in but busy: the caller holds
    with _overflow() as overflow:
        caller = listener("07700900150")
        caller.key_number("123456", after=1.0, confirm_after=0.5)
        call = poll("the caller to be holding", lambda: (
            c := the_lab.call_from("07700900150")) and any(
            e["kind"] == "no_supervisor_free" for e in the_lab.timeline(c["id"])) and c,
            timeout=20, every=0.5)

        caller.phone.send_digits("*0", gap=0.3)  # already waiting for a supervisor: no change
        poll("*0 to be logged", lambda: any(
            e["kind"] == "safety_key" and e["action"] == "already_connecting"
            for e in the_lab.timeline(call["id"])))
        caller.phone.send_digits("*9", gap=0.3)

        caller.bridged_at()
        caller.hang_up()
        assert overflow.wait(20) == 0
    call = the_lab.ended_call_from("07700900150")
    assert (call["supervisor"], call["roster_result"]) == ("overflow", "on_duty")
    assert "emergency" in call["flags"]


# --- bad input and hang-ups at every stage ----------------------------------------------------

BAD_INPUT = [
    # keys, ms after the first key until the caller hangs up, what the timeline must show
    pytest.param("A", 1500, "key_ignored", id="hang-up-during-greeting"),
    pytest.param("12", 2000, "digit", id="hang-up-mid-entry"),
    pytest.param("123456#", dtmf_ms("123456#") + 1500, "prompt", id="hang-up-in-read-back"),
    pytest.param("#", 5000, "entry_failed", id="hash-alone"),
    pytest.param("123#", 5500, "entry_failed", id="three-digits"),
    pytest.param("1" * 50 + "#", dtmf_ms("1" * 50 + "#") + 1500, "entry_failed",
                 id="fifty-digits"),
    pytest.param("*7*8", 4000, "star_command_ignored", id="star-garbage"),
    pytest.param("123456#99", dtmf_ms("123456#99") + 1000, "key_during_read_back",
                 id="keys-during-read-back"),
]


@pytest.mark.parametrize(("keys", "hang_up_ms", "expect"), BAD_INPUT)
def test_given_bad_input_or_hang_up_then_reprompt_or_logged_and_nothing_left(
        the_lab, keys, hang_up_ms, expect):
    number = f"07701{abs(hash(keys)) % 1000000:06d}"
    caller = the_lab.caller(number, keys, scenario="caller_hangup", wait_ms=hang_up_ms)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from(number)
    assert call["end_reason"] == "caller_abandoned"
    events = the_lab.timeline(call["id"])
    assert expect in [e["kind"] for e in events]
    if expect == "entry_failed":
        assert any(e["kind"] == "prompt" and "not_understood" in e["prompt"] for e in events)


def test_given_letters_by_sip_info_then_ignored_and_digits_kept(the_lab):
    caller = the_lab.caller("07700900160", scenario="caller_info_letters", wait_ms=1500)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from("07700900160")
    events = the_lab.timeline(call["id"])
    assert [e["digit"] for e in events if e["kind"] == "key_ignored"] == ["A", "B", "C", "D"]
    assert [e["digit"] for e in events if e["kind"] == "digit"] == ["1", "2", "3", "4"]


def test_given_caller_hangs_up_while_holding_then_logged_and_nothing_left(the_lab):
    the_lab.desk("desk3")
    the_lab.verifyline("supervisors", "pause", "desk3")
    caller = the_lab.caller("07700900170", "123456#1", scenario="caller_hangup",
                            wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 3000)

    assert caller.wait() == 0, caller.failure()

    call = the_lab.ended_call_from("07700900170")
    assert call["end_reason"] == "caller_abandoned"
    assert "no_supervisor_free" in [e["kind"] for e in the_lab.timeline(call["id"])]
