"""Found from outside (issue 9 item 3): a caller who vanishes without a BYE is ended.

A caller whose phone dies (a mobile drops, a trunk loses the BYE) sends no BYE; only their RTP
stops. Asterisk's RTP timeout on the trunk hangs such a caller up, and the line logs it as
``caller_connection_lost``; a caller who only listens to music on hold still sends RTP (as a
real phone does) and is never dropped.

    caller (sipp + RtpPhone)       Asterisk (trunk rtp_timeout T)        ARI app
      |  INVITE / 200 / ACK            |                                    |
      |  RTP, a 20 ms frame ========>  |  holding bridge, music on hold     |
      |  ... SIGKILL: no BYE, no RTP   |                                    |
      |                                |  T s without RTP: soft hang-up,    |
      |                                |  cause 44 ======================>  | ended:
      |                                |                                    | connection lost

The lab runs with the RTP timeout off (most test callers send no audio); this test renders
the trunk with a short one, reloads res_pjsip (desk registrations survive) and puts the
lab's configuration back afterwards.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from ops import lab
from tests.e2e.conftest import Lab, poll
from tests.e2e.phones import ANNOUNCE_MS

pytestmark = pytest.mark.e2e

SHORT_TIMEOUT = 5  # seconds of no RTP before Asterisk hangs the caller up, in this test
MARGIN = 3.0  # Asterisk checks in whole seconds; the app logs within a fraction of one


def trunk_rtp_timeout(the_lab: Lab) -> str:
    shown = lab.cli(the_lab.instance, "pjsip show endpoint trunk")
    return next(line.split(":", 1)[1].strip() for line in shown.splitlines()
                if line.strip().startswith("rtp_timeout ") or
                line.strip().startswith("rtp_timeout:"))


def reload_trunk(the_lab: Lab, seconds: float) -> None:
    """Render the configuration with this RTP timeout and reload res_pjsip."""
    inst = the_lab.instance
    settings = replace(the_lab.settings, rtp_timeout=seconds)
    lab.render_config(settings, inst.outside / "etc", f"{inst.inside}/spool",
                      lab_passwords=True)
    lab.cli(inst, "module reload res_pjsip.so")
    poll(f"the trunk's rtp_timeout to be {lab.rtp_timeout(settings)}",
         lambda: trunk_rtp_timeout(the_lab) == str(lab.rtp_timeout(settings)))


@contextlib.contextmanager
def short_rtp_timeout(the_lab: Lab, seconds: int) -> Iterator[None]:
    reload_trunk(the_lab, seconds)
    try:
        yield
    finally:
        reload_trunk(the_lab, the_lab.settings.rtp_timeout)


def wall(monotonic_at: float) -> float:
    """A time.monotonic() instant as wall-clock epoch seconds (to compare with the log)."""
    return time.time() - (time.monotonic() - monotonic_at)


def epoch(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time).timestamp()


def held(the_lab: Lab, channel_id: str) -> bool:
    return any(b["bridge_type"] == "holding" and b["channels"] == [channel_id]
               for b in the_lab.bridges())


def callbacks(the_lab: Lab) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads(the_lab.verifyline("callbacks", "list",
                                                                 "--json"))
    return listed


def test_given_callers_on_hold_when_one_vanishes_without_a_bye_then_only_that_one_is_ended(
        the_lab, listener):
    desk = the_lab.desk("desk1")
    # signed in (so the control room is not rung at once) but paused: callers have to wait
    the_lab.verifyline("supervisors", "pause", "desk1")
    with short_rtp_timeout(the_lab, SHORT_TIMEOUT):
        assert the_lab.ari.get("/endpoints/PJSIP/desk1").json()["state"] == "online", \
            "reloading res_pjsip lost the desk's registration"
        # (a) a caller who keeps sending RTP, as a real phone does while its user listens
        stays = listener("07700900951")
        stays.phone.send_audio()
        stays.key_number("123456")
        stays_id = stays.channel()["id"]
        # (b) another, whose phone dies while queued
        goes = listener("07700900952")
        goes.phone.send_audio()
        goes.key_number("123456")
        goes_id = goes.channel()["id"]
        poll("both callers in holding bridges",
             lambda: held(the_lab, stays_id) and held(the_lab, goes_id), timeout=20)
        on_hold = time.monotonic()
        time.sleep(ANNOUNCE_MS / 1000)  # the reference is read out; music on hold now

        goes.sip.kill()  # SIGKILL: no BYE
        last_rtp = goes.phone.stop_audio()
        call = the_lab.ended_call_from("07700900952", timeout=SHORT_TIMEOUT + 15)
        lost_after = epoch(call["ended_at"]) - wall(last_rtp)
        print(f"\n[figure] queued caller gone without a BYE: logged ended "
              f"{lost_after:.2f} s after their last RTP packet (timeout {SHORT_TIMEOUT} s)")
        assert call["end_reason"] == "caller_connection_lost"
        assert SHORT_TIMEOUT - 1 <= lost_after <= SHORT_TIMEOUT + MARGIN
        poll("the gone caller's channel and holding bridge gone", lambda: not any(
            c["id"] == goes_id for c in the_lab.channels()) and not held(the_lab, goes_id))
        mine = [c for c in callbacks(the_lab) if c["call_id"] == call["id"]]
        assert len(mine) == 1 and mine[0]["caller_number"] == "07700900952"

        # the caller still sending has been on hold well past the timeout and is still there
        while time.monotonic() - on_hold < 3 * SHORT_TIMEOUT:
            assert held(the_lab, stays_id), "a caller still sending RTP was dropped"
            time.sleep(0.5)
        the_lab.verifyline("supervisors", "available", "desk1")
        stays.bridged_at(timeout=30)
        stays.hang_up()  # the line's own hang-up: not a lost connection
        call = the_lab.ended_call_from("07700900951")
        print(f"[figure] caller sending RTP: on hold "
              f"{epoch(call['answered_at']) - wall(on_hold):.1f} s, then answered")
        assert call["end_reason"] == "caller_hangup" and call["supervisor"] == "desk1"

        # (c) a caller whose phone dies while talking to a supervisor: the desk is hung up
        talks = listener("07700900953")
        talks.phone.send_audio()
        talks.key_number("123456")
        talks.bridged_at(timeout=30)
        time.sleep(1)
        talks.sip.kill()
        last_rtp = talks.phone.stop_audio()
        call = the_lab.ended_call_from("07700900953", timeout=SHORT_TIMEOUT + 15)
        lost_after = epoch(call["ended_at"]) - wall(last_rtp)
        print(f"[figure] bridged caller gone without a BYE: logged ended {lost_after:.2f} s "
              f"after their last RTP packet")
        assert call["end_reason"] == "caller_connection_lost"
        assert call["supervisor"] == "desk1"
        assert SHORT_TIMEOUT - 1 <= lost_after <= SHORT_TIMEOUT + MARGIN
        poll("the desk leg hung up (BYE to desk1)", lambda: desk.received().count("BYE") >= 2)
        assert all(c["call_id"] != call["id"] for c in callbacks(the_lab)), \
            "a caller who had talked to a supervisor was listed for a callback"
