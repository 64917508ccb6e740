"""The line's side of the console (issue 11) through the real Asterisk with sipp phones: a
desk held on the console owes each call's outcome before it is offered the next, its shown
state, a call logged against the officer's pre-registered encounter, a callback from a desk."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ivr import calllog, services
from ivr.clock import now
from ivr.models import Callback, ConsoleCommand, Encounter, Officer, Supervisor
from ivr.store import Store
from tests.e2e import ports
from tests.e2e.conftest import LAB_ENV, Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, SCENARIOS, dtmf_ms, received_invites, sip_requests

pytestmark = pytest.mark.e2e
WRAP_UP = float(LAB_ENV["VERIFYLINE_WRAP_UP"])


@pytest.fixture
def store(the_lab: Lab) -> Iterator[Store]:
    """The lab's database; afterwards no desk is held on the console or owes an outcome."""
    s = Store(the_lab.settings.db_url)
    yield s
    with s.session() as session:
        session.execute(update(Supervisor).values(console_user=None, console_since=None,
                                                  wrapup_channel=None))
    s.dispose()


class StateWatch:
    """Every state the line shows for a desk, as it changes (polled every 20 ms)."""

    def __init__(self, store: Store, desk: str) -> None:
        self.store, self.desk = store, desk
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.store.session() as s:
                state = s.scalars(select(Supervisor.state).where(
                    Supervisor.desk == self.desk)).one()
            if not self.seen or self.seen[-1] != state:
                self.seen.append(state)
            time.sleep(0.02)

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


def in_order(seen: list[str], wanted: list[str]) -> bool:
    """``wanted`` happened in this order (other states may come between)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["at"]).timestamp()


def rings(the_lab: Lab, call_id: int) -> list[dict[str, Any]]:
    return [e for e in the_lab.timeline(call_id) if e["kind"] == "desk_ringing"]


def call_id_of(the_lab: Lab, number: str) -> int:
    found: dict[str, Any] = poll(f"the call from {number} in the log",
                                 lambda: the_lab.call_from(number))
    return int(found["id"])


def desk_row(store: Store, desk: str) -> Supervisor:
    with store.session() as s:
        return s.scalars(select(Supervisor).where(Supervisor.desk == desk)).one()


def test_given_a_console_desk_owing_the_outcome_then_the_next_caller_waits_until_it_is_given(
        the_lab: Lab, store: Store) -> None:
    services.take_desk(store, "desk1", "alice")  # the line reads it within a second
    watch = StateWatch(store, "desk1")
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=10000)
    first = the_lab.caller("07700900701", "123456#1", scenario="caller_waits")
    time.sleep(3.0)  # the second caller comes after the first (queue order)
    second = the_lab.caller("07700900702", "123456#1", scenario="caller_waits")
    assert first.wait(120) == 0, first.failure()
    ended = the_lab.ended_call_from("07700900701")
    poll("desk1 to owe the first call's outcome",
         lambda: desk_row(store, "desk1").wrapup_channel == ended["channel_id"])
    second_id = call_id_of(the_lab, "07700900702")

    # well past the wrap-up: still nobody rings desk1 for the second caller
    time.sleep(WRAP_UP + 2.0)
    assert rings(the_lab, second_id) == []
    assert desk_row(store, "desk1").state == "wrap_up"

    given = now().timestamp()
    services.record_outcome(store, ended["id"], "verified", "card seen", "alice", "desk1")
    ring = poll("desk1 to ring for the second caller", lambda: rings(the_lab, second_id),
                timeout=10, every=0.05)[0]
    offered = at(ring) - given
    print(f"\n[figure] desk1 offered the waiting caller {offered:.2f} s after the outcome")
    assert ring["desk"] == "desk1"
    assert offered < 2.0
    assert second.wait(120) == 0, second.failure()
    ended2 = the_lab.ended_call_from("07700900702")
    poll("desk1 to owe the second call's outcome",
         lambda: desk_row(store, "desk1").wrapup_channel == ended2["channel_id"])
    services.record_outcome(store, ended2["id"], "advice_given", "", "alice", "desk1")
    poll("desk1 free", lambda: watch.seen[-1:] == ["free"], timeout=5)  # as the watch saw
    seen = watch.stop()
    print(f"[figure] desk1 states: {' -> '.join(seen)}")
    assert in_order(seen, ["ringing", "talking", "wrap_up", "ringing", "talking", "wrap_up",
                           "free"]), seen
    timeline = the_lab.timeline(ended["id"])
    assert next(e for e in timeline if e["kind"] == "outcome")["outcome"] == "verified"


def test_given_a_phone_only_desk_then_it_takes_the_next_caller_after_the_wrap_up(
        the_lab: Lab, store: Store) -> None:
    the_lab.desk("desk1", "desk_answer_hangup", talk_ms=10000)
    first = the_lab.caller("07700900711", "123456#1", scenario="caller_waits")
    time.sleep(3.0)
    second = the_lab.caller("07700900712", "123456#1", scenario="caller_waits")
    assert first.wait(120) == 0, first.failure()
    assert second.wait(120) == 0, second.failure()

    ended = the_lab.ended_call_from("07700900711")
    call = the_lab.ended_call_from("07700900712")
    [ring] = rings(the_lab, call["id"])
    rest = at(ring) - datetime.fromisoformat(ended["ended_at"]).timestamp()
    assert ring["desk"] == "desk1"
    assert WRAP_UP <= rest < WRAP_UP + 1.0
    row = desk_row(store, "desk1")
    assert (row.wrapup_channel, row.last_channel) == (None, call["channel_id"])


def test_given_an_open_pre_registration_then_the_call_is_logged_against_it(
        the_lab: Lab, store: Store) -> None:
    with store.session() as s:
        officer = s.scalars(select(Officer).where(Officer.warrant_number == "123456")).one()
        reference = calllog.new_reference(s)
        device = Encounter(reference=reference, officer_id=officer.id, kind="device",
                           opened_at=now() - timedelta(hours=1), place="High Street",
                           purpose="stop and account")
        s.add(device)
    try:
        the_lab.desk("desk1")
        caller = the_lab.caller("07700900721", "123456#1",
                                wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 1500)
        assert caller.wait() == 0, caller.failure()
        call = the_lab.ended_call_from("07700900721")
    finally:
        with store.session() as s:
            s.execute(update(Encounter).where(Encounter.reference == reference)
                      .values(closed_at=now()))
    assert call["encounter_reference"] == reference
    assert call["reference"] != reference
    # what the caller was read is the call's own reference, never the pre-registration's
    read = [e for e in the_lab.timeline(call["id"]) if e["kind"] == "started"]
    assert read[0]["reference"] == call["reference"]


def test_given_a_callback_requested_from_a_desk_then_the_desk_then_the_number_ring_and_talk(
        the_lab: Lab, store: Store) -> None:
    number = "07700900731"
    gave_up = the_lab.caller(number, "123456#1", scenario="caller_hangup",
                             wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 2000)
    assert gave_up.wait() == 0, gave_up.failure()
    call = the_lab.ended_call_from(number)
    with store.session() as s:
        callback = s.scalars(select(Callback).where(Callback.call_id == call["id"])).one()
    desk = the_lab.desk("desk1", "desk_answer_hangup", talk_ms=4000)
    log = the_lab.workdir / f"callback-number-{ports.CALLBACK_NUMBER_SIP}.msg.log"
    log.unlink(missing_ok=True)
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "desk_answer.xml"), "-i", "127.0.0.2",
         "-p", str(ports.CALLBACK_NUMBER_SIP), "-mi", "127.0.0.2",
         "-mp", str(ports.CALLBACK_NUMBER_MEDIA), "-rtp_echo", "-m", "1", "-nostdin",
         "-timeout", "60", "-trace_msg", "-message_file", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=the_lab.workdir)
    try:
        command = services.request_callback(store, callback.id, "desk1", "alice")
        bridge = f"callback-{command}-talk"
        poll("the desk and the number bridged", lambda: any(
            b["id"] == bridge and len(b["channels"]) == 2 for b in the_lab.bridges()),
             timeout=20, every=0.05)
        assert uas.wait(30) == 0  # the desk hung up: the number got its BYE
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    with store.session() as s:
        done = s.get_one(Callback, callback.id)
        cmd = s.get_one(ConsoleCommand, command)
        assert (done.done_by, done.done_at is not None) == ("alice", True)
        assert (cmd.result, cmd.claimed_at is not None, cmd.done_at is not None) == (
            "answered", True, True)
    [(_, shown)] = desk.invites()
    assert f"Callback ref {call['reference']}" in shown
    assert sip_requests(log)[:1] == ["INVITE"]
    assert f"sip:{number}@127.0.0.2" in log.read_text(errors="replace")
    assert len(received_invites(log)) == 1
    kinds = [e["kind"] for e in the_lab.timeline(call["id"])]
    assert in_order(kinds, ["ended", "callback_placed", "callback_answered"]), kinds
