"""Desk selection and settings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ari_app.client import AriEvent
from ari_app.runtime import LoopTimers
from ari_app.stasis import driver_hangup
from ivr.config import Settings
from ivr.exceptions import ConfigError
from ivr.services import flow_settings
from ivr.supervisors import DeskPool
from ivr.telephony import DeskPresence, Timer
from ops import lab

ON = DeskPresence(True, False)


def test_given_free_desks_then_the_longest_idle_is_chosen_first():
    pool = DeskPool(["desk1", "desk2", "desk3"], {
        "desk1": datetime(2026, 1, 1, 12, tzinfo=UTC),
        "desk2": datetime(2026, 1, 1, 9, tzinfo=UTC),
        "desk3": datetime(2026, 1, 1, 10, tzinfo=UTC),
    })
    presence = {"desk1": ON, "desk2": ON, "desk3": ON}
    assert pool.free(presence) == ["desk2", "desk3", "desk1"]


def test_given_busy_unregistered_or_reserved_desks_then_never_chosen():
    pool = DeskPool(["desk1", "desk2", "desk3", "desk4"], {})
    presence = {"desk1": DeskPresence(True, True), "desk2": DeskPresence(False, False),
                "desk3": ON, "desk4": ON}
    assert pool.reserve(presence, "a") == ["desk3"]
    assert pool.reserve(presence, "b") == ["desk4"]
    assert pool.reserve(presence, "c") == []


def test_given_desk_talked_when_released_then_it_goes_to_the_back():
    pool = DeskPool(["desk1", "desk2"], {})
    presence = {"desk1": ON, "desk2": ON}
    [desk] = pool.reserve(presence, "a")
    pool.release(desk, talked=True)
    assert pool.free(presence) == ["desk2", "desk1"]


def test_given_env_when_read_then_typed_settings(tmp_path):
    s = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), "VERIFYLINE_SIP_PORT": "15060",
                           "VERIFYLINE_RTP_PORTS": "21000-21999",
                           "VERIFYLINE_RING_TIMEOUT": "3.5"})
    assert (s.sip_port, s.rtp_ports, s.ring_timeout) == (15060, (21000, 21999), 3.5)
    assert s.db_url == f"sqlite:///{tmp_path / 'verifyline.db'}"


@pytest.mark.parametrize(("name", "value"), [
    ("VERIFYLINE_SIP_PORT", "abc"), ("VERIFYLINE_RTP_PORTS", "20000"),
    ("VERIFYLINE_LINE_NUMBER", "08-00"), ("VERIFYLINE_RING_TIMEOUT", "-1"),
    ("VERIFYLINE_RTP_TIMEOUT", "-1"), ("VERIFYLINE_RTP_TIMEOUT", "soon"),
])
def test_given_bad_setting_then_a_clear_error_names_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), name: value})


def test_given_no_password_then_one_is_generated_kept_and_private(tmp_path):
    s = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)}).with_secrets()
    again = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)}).with_secrets()
    assert len(s.ari_password) >= 24 and s.ari_password == again.ari_password
    assert (tmp_path / "ari-password").stat().st_mode & 0o077 == 0


async def test_given_timer_restarted_after_firing_then_the_stale_fire_is_dropped():
    queue: asyncio.Queue[Any] = asyncio.Queue()
    timers = LoopTimers(queue)
    timers.start(Timer.DIGIT, 0.01)
    await asyncio.sleep(0.03)
    timers.start(Timer.DIGIT, 10)  # restarted before the fired event was handled
    stale = await queue.get()
    assert timers.accept(stale) is None
    timers.cancel_all()


def test_given_callers_waiting_then_a_free_desk_goes_to_the_longest_waiting():
    pool = DeskPool(["desk1"], {})
    for key in ("first", "second", "third"):
        pool.join(key)
    presence = {"desk1": ON}

    assert pool.reserve(presence, "second") == []  # not their turn
    assert pool.reserve(presence, "first") == ["desk1"]
    assert pool.waiting() == ["first", "second", "third"]


def test_given_emergency_then_it_goes_to_the_front_of_the_queue():
    pool = DeskPool(["desk1"], {})
    pool.join("a")
    pool.join("b")
    pool.join("c", emergency=True)
    assert pool.waiting() == ["c", "a", "b"]
    assert pool.position("a") == 2


def test_given_ring_all_then_every_free_desk_is_reserved_for_the_caller_whose_turn_it_is():
    pool = DeskPool(["desk1", "desk2", "desk3"], {})
    pool.join("first")
    pool.join("second")
    presence = {"desk1": ON, "desk2": DeskPresence(True, True), "desk3": ON}

    assert pool.reserve(presence, "second", every=True) == []  # not their turn
    assert pool.reserve(presence, "first", every=True) == ["desk1", "desk3"]
    assert pool.reserve(presence, "second", every=True) == []  # nothing left free

    pool.release("desk3", talked=False, call_key="first")  # desk1 answered first
    assert pool.reserve(presence, "second", every=True) == ["desk3"]


def test_given_callers_waiting_then_only_the_longest_waiting_not_ringing_has_the_turn():
    # given two callers queued and one not queued (an adopted or a ring-all call)
    pool = DeskPool(["desk1", "desk2"], {})
    pool.join("first")
    pool.join("second")

    # then the first has the turn, the second not; a caller outside the queue always has
    assert (pool.my_turn("first"), pool.my_turn("second"), pool.my_turn("other")) == (
        True, False, True)

    # when the first is ringing a desk, then the turn passes to the second
    pool.reserve({"desk1": ON, "desk2": ON}, "first")
    assert (pool.my_turn("first"), pool.my_turn("second")) == (False, True)


def test_given_wrap_up_then_desk_rests_before_the_next_offer():
    pool = DeskPool(["desk1"], {}, wrap_up=30)
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    presence = {"desk1": ON}
    pool.reserve(presence, "a", at=t)
    back = pool.release("desk1", talked=True, at=t)
    assert back == t + timedelta(seconds=30)
    assert pool.free(presence, at=t + timedelta(seconds=29)) == []
    assert pool.free(presence, at=t + timedelta(seconds=30)) == ["desk1"]


def test_given_desk_rings_out_n_times_in_a_row_then_it_is_paused():
    pool = DeskPool(["desk1"], {}, auto_pause_after=2)
    assert pool.no_answer("desk1") is False
    pool.answered("desk1")  # an answer breaks the run
    assert pool.no_answer("desk1") is False
    assert pool.no_answer("desk1") is True
    assert pool.free({"desk1": ON}) == []


def test_given_desk_fails_again_and_again_then_its_rest_doubles_up_to_a_cap():
    pool = DeskPool(["desk1"], {}, auto_pause_after=0)
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    rests = []
    for _ in range(5):
        paused, until = pool.failed("desk1", at=t)
        assert paused is False and until is not None
        rests.append((until - t).total_seconds())
        assert pool.free({"desk1": ON}, at=until - timedelta(milliseconds=1)) == []
        assert pool.free({"desk1": ON}, at=until) == ["desk1"]
    assert rests == [5, 10, 20, 30, 30]
    pool.answered("desk1")  # an answered call ends the run
    assert (pool.failed("desk1", at=t)[1] - t).total_seconds() == 5  # type: ignore[operator]


def test_given_desk_refuses_calls_then_it_counts_towards_the_auto_pause_unless_told_not_to():
    pool = DeskPool(["desk1"], {}, auto_pause_after=2)
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert pool.failed("desk1", counts=False, at=t)[0] is False
    assert pool.failed("desk1", at=t)[0] is False
    assert pool.failed("desk1", at=t)[0] is True  # two refusals in a row: paused


def test_given_auto_paused_desk_when_the_store_still_says_available_then_it_keeps_resting():
    # the line paused the desk itself a moment ago; the store, read before that write
    # landed, still says available: the desk must not be rung again at once
    pool = DeskPool(["desk1"], {}, auto_pause_after=1)
    t = datetime(2026, 1, 1, 12, tzinfo=UTC)
    paused, rest_until = pool.failed("desk1", at=t)
    assert paused is True and rest_until is not None
    assert pool.set_availability("desk1", False, False) is True
    assert pool.free({"desk1": ON}, at=rest_until - timedelta(milliseconds=1)) == []
    assert pool.free({"desk1": ON}, at=rest_until) == ["desk1"]


def test_given_paused_or_signed_out_then_never_offered_and_signed_out_counts_as_absent():
    pool = DeskPool(["desk1", "desk2"], {})
    pool.set_availability("desk1", paused=True, signed_out=False)
    pool.set_availability("desk2", paused=True, signed_out=True)
    presence = {"desk1": ON, "desk2": ON}
    assert pool.free(presence) == []
    assert pool.any_signed_in(presence) is True  # desk1 is paused, but there
    pool.set_availability("desk1", paused=True, signed_out=True)
    assert pool.any_signed_in(presence) is False


def test_given_a_call_releases_a_desk_it_does_not_hold_then_the_holder_keeps_it():
    pool = DeskPool(["desk1"], {})
    presence = {"desk1": ON}
    assert pool.reserve(presence, "a") == ["desk1"]

    pool.release("desk1", talked=False, call_key="b")

    assert pool.reserved_for("desk1") == "a"
    assert pool.free(presence) == []


def test_given_queue_settings_in_the_environment_then_the_call_flow_gets_them(tmp_path):
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path),
                                  "VERIFYLINE_STRATEGY": "ring_all",
                                  "VERIFYLINE_RING_TIMEOUT": "7",
                                  "VERIFYLINE_QUEUE_MAX_WAIT": "45",
                                  "VERIFYLINE_WHISPER_TIMEOUT": "2",
                                  "VERIFYLINE_RECORDING": "off"})

    flow = flow_settings(settings)

    assert (flow.ring_all, flow.ring_timeout, flow.queue_max_wait, flow.whisper_timeout,
            flow.recording) == (True, 7.0, 45.0, 2.0, False)
    assert flow.emergency_endpoint == "overflow"


def test_given_an_unknown_strategy_then_the_setting_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="VERIFYLINE_STRATEGY"):
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), "VERIFYLINE_STRATEGY": "random"})


@pytest.mark.parametrize(("env", "timeout", "hold"), [
    ({}, "60", "300"), ({"VERIFYLINE_RTP_TIMEOUT": "0"}, "0", "0"),
    ({"VERIFYLINE_RTP_TIMEOUT": "2.5"}, "3", "15"),
])
def test_given_rtp_timeout_setting_then_the_trunk_gets_it_and_five_times_it_on_hold(
        tmp_path, env, timeout, hold):
    s = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), **env})
    etc = tmp_path / "etc"

    lab.render_config(replace(s, ari_password="x"), etc, "/spool", lab_passwords=True)

    trunk = (etc / "pjsip.conf").read_text().split("[trunk]")[1]
    assert f"rtp_timeout = {timeout}\n" in trunk
    assert f"rtp_timeout_hold = {hold}\n" in trunk
    assert "timers = yes" in trunk


@pytest.mark.parametrize(("raw", "by_driver"), [
    # measured on Asterisk 22: the RTP timeout, a BYE from the caller, the app's own DELETE
    ({"soft": True, "cause": 1}, True),
    ({"cause": 16}, False),
    ({"soft": True, "cause": 32}, False),
])
def test_given_a_hangup_request_then_only_the_channel_driver_s_own_counts(raw, by_driver):
    ev = AriEvent("ChannelHangupRequest", {**raw, "channel": {"id": "1.1"}})
    assert driver_hangup(ev) is by_driver
