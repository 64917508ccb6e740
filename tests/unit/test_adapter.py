"""The ARI adapter without Asterisk: scripted ARI events in, the HTTP requests made out.

``LineService`` gets a real ``AriClient`` whose transport is an ``httpx.MockTransport``
(``ScriptedAsterisk``): every request is recorded, and any can be scripted to fail. Events go
straight to ``LineService.on_event`` as the websocket would deliver them. The call log is a
real store of the test's own (SQLite, or PostgreSQL with ``VERIFYLINE_TEST_DB=postgresql``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import select

from ari_app import runtime
from ari_app.adapter import FALLBACK_CONTEXT, AriTelephony
from ari_app.client import AriClient, AriEvent, AriHttpError
from ari_app.runtime import CallRuntime
from ari_app.service import LineService
from ivr import logops, roster, services
from ivr.callflow import Greeting, State
from ivr.clock import now
from ivr.config import Settings
from ivr.entities import CallData
from ivr.models import Call as CallRow
from ivr.models import EndReason, RosterResult
from ivr.store import Store
from ivr.telephony import DeskPresence

T = TypeVar("T")
CALLER = "1700000000.1"
APP = "verifyline"


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # below /ari
    params: dict[str, str]


@dataclass
class ScriptedAsterisk:
    """Asterisk's REST side as a MockTransport handler: records every request and answers it
    as an idle Asterisk would (no channels, bridges or endpoints), unless a test scripted a
    failure for it."""

    requests: list[Request] = field(default_factory=list)
    # (method, path prefix) -> HTTP status to answer instead
    failures: dict[tuple[str, str], int] = field(default_factory=dict)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/ari")
        self.requests.append(Request(request.method, path, dict(request.url.params)))
        for (method, prefix), status in self.failures.items():
            if request.method == method and path.startswith(prefix):
                return httpx.Response(status, text="scripted failure")
        if request.method != "GET":
            return httpx.Response(204)
        if path.startswith("/bridges/"):
            return httpx.Response(200, json={"id": path.rsplit("/", 1)[-1],
                                             "bridge_type": "holding", "channels": []})
        if path == "/asterisk/info":
            return httpx.Response(200, json={"status": {"startup_time": "2026-01-01T00:00"}})
        return httpx.Response(200, json=[])  # /channels, /bridges, /endpoints/PJSIP

    def made(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def index(self, method: str, path_prefix: str) -> int:
        """Where the first request of this kind is in the order they were made."""
        return next(i for i, r in enumerate(self.requests)
                    if r.method == method and r.path.startswith(path_prefix))


@dataclass
class Harness:
    line: LineService
    asterisk: ScriptedAsterisk
    store: Store
    runtime: CallRuntime | None = None  # the caller's, kept: an ended call is forgotten

    async def event(self, kind: str, **raw: Any) -> None:
        await self.line.on_event(AriEvent(kind, {"type": kind, **raw}))

    async def caller_arrives(self, channel_id: str = CALLER) -> None:
        await self.event("StasisStart", args=["line"], channel=channel(channel_id))
        self.runtime = self.line.calls[channel_id]

    def call_ended(self) -> bool:
        return self.runtime is not None and self.runtime.call.ended

    def ended_reason(self, channel_id: str = CALLER) -> str | None:
        """The end reason in the call log, once everything submitted is written."""
        assert self.line.durable.flush()
        with self.store.session() as s:
            row = s.scalars(select(CallRow).where(CallRow.channel_id == channel_id)).one()
            return row.end_reason


def channel(channel_id: str) -> dict[str, Any]:
    return {"id": channel_id, "name": f"PJSIP/trunk-{channel_id}", "state": "Ring",
            "caller": {"number": "07700900123"}}


async def until(what: str, check: Callable[[], T | None], timeout: float = 5.0) -> T:
    """Wait until check() returns something truthy (the call's task, the database thread and
    the journal all run meanwhile); fail with ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (got := check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)
    return got


@pytest.fixture
async def h(tmp_path: Path, db_url: str, store: Store,
            monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """A prepared LineService on a scripted Asterisk; its websocket is never opened."""
    # an ended call lingers to absorb late events; here nothing comes late
    monkeypatch.setattr(runtime, "LINGER_SECONDS", 0.0)
    asterisk = ScriptedAsterisk()
    settings = Settings(home=tmp_path / "home", db_url=db_url, desks=("desk1",),
                        ari_password="unit")
    client = AriClient(settings.ari_url, settings.ari_user, "unit", APP,
                       transport=httpx.MockTransport(asterisk.handle))
    line = LineService(settings, store, client)
    await line.prepare()
    yield Harness(line, asterisk, store)
    tasks = list(line._tasks)  # awaited after stop() cancels them: none outlives the loop
    await line.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


async def a_line(tmp_path: Path, db_url: str, store: Store, desks: tuple[str, ...],
                 handle: Callable[[httpx.Request], httpx.Response]
                 ) -> tuple[Settings, LineService]:
    """A prepared LineService with these desks on a scripted Asterisk (stop it with stop)."""
    settings = Settings(home=tmp_path / "home", db_url=db_url, desks=desks,
                        ari_password="unit")
    client = AriClient(settings.ari_url, settings.ari_user, "unit", APP,
                       transport=httpx.MockTransport(handle))
    line = LineService(settings, store, client)
    await line.prepare()
    return settings, line


async def stop(line: LineService) -> None:
    await line.stop()
    await line.client.aclose()


async def greeting_played(h: Harness) -> Request:
    return await until("the greeting to be played", lambda: next(
        (r for r in h.asterisk.requests
         if r.method == "POST" and r.path.startswith(f"/channels/{CALLER}/play/")), None))


async def test_given_a_bug_in_a_handler_when_the_caller_keys_then_the_dialplan_fallback_has_them(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: State, ctx: Any, digit: str) -> State:
        raise RuntimeError("a bug in the greeting")

    monkeypatch.setattr(Greeting, "on_dtmf", broken)
    await h.caller_arrives()
    await greeting_played(h)

    await h.event("ChannelDtmfReceived", digit="1", channel=channel(CALLER))

    [handed] = await until("the caller to continue in the dialplan", lambda: h.asterisk.made(
        "POST", f"/channels/{CALLER}/continue"))
    assert handed.params == {"context": FALLBACK_CONTEXT, "extension": "s", "priority": "1"}
    assert not h.asterisk.made("DELETE", f"/channels/{CALLER}")  # never hung up on
    await until("the call to end", lambda: h.call_ended())
    assert h.ended_reason() == EndReason.HANDED_TO_FALLBACK.value


async def test_given_asterisk_fails_the_answer_when_a_call_starts_then_the_fallback_has_them(
        h: Harness) -> None:
    h.asterisk.failures[("POST", f"/channels/{CALLER}/answer")] = 500

    await h.caller_arrives()

    [handed] = await until("the caller to continue in the dialplan", lambda: h.asterisk.made(
        "POST", f"/channels/{CALLER}/continue"))
    assert handed.params["context"] == FALLBACK_CONTEXT
    await until("the call to end", lambda: h.call_ended())
    assert h.ended_reason() == EndReason.HANDED_TO_FALLBACK.value


async def test_given_a_new_caller_when_stasis_starts_then_answered_and_the_greeting_plays(
        h: Harness) -> None:
    await h.caller_arrives()

    play = await greeting_played(h)
    assert play.path.startswith(f"/channels/{CALLER}/play/{CALLER}-greeting-")
    assert play.params["media"].split(",")[0] == "sound:verifyline/en/greeting"
    subscribed = h.asterisk.made("POST", f"/applications/{APP}/subscription")
    assert {"eventSource": f"channel:{CALLER}"} in [r.params for r in subscribed]
    # the caller's channel events first, then the answer, then what they hear
    assert (h.asterisk.index("POST", f"/applications/{APP}/subscription")
            < h.asterisk.index("POST", f"/channels/{CALLER}/answer")
            < h.asterisk.index("POST", f"/channels/{CALLER}/play/"))
    assert not h.call_ended()


async def test_given_a_caller_in_the_greeting_when_their_channel_is_destroyed_then_call_ends(
        h: Harness) -> None:
    await h.caller_arrives()
    await greeting_played(h)

    await h.event("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                  channel=channel(CALLER))

    await until("the call to end", lambda: h.call_ended())
    assert h.ended_reason() == EndReason.CALLER_ABANDONED.value
    assert not h.asterisk.made("POST", f"/channels/{CALLER}/continue")


@pytest.mark.parametrize(("hangup_request", "destroyed_cause", "reason"), [
    # Asterisk's RTP timeout (see driver_hangup in ari_app/stasis.py)
    ({"soft": True, "cause": 1}, 44, EndReason.CALLER_CONNECTION_LOST),
    # the caller's BYE: a hard request with the Q.850 cause
    ({"cause": 16}, 16, EndReason.CALLER_ABANDONED),
], ids=["rtp_timeout", "bye"])
async def test_given_a_caller_hung_up_by_the_driver_or_by_bye_then_the_end_reason_tells_which(
        h: Harness, hangup_request: dict[str, Any], destroyed_cause: int,
        reason: EndReason) -> None:
    await h.caller_arrives()
    await greeting_played(h)

    await h.event("ChannelHangupRequest", channel=channel(CALLER), **hangup_request)
    await h.event("StasisEnd", channel=channel(CALLER))
    await h.event("ChannelDestroyed", cause=destroyed_cause, channel=channel(CALLER))

    await until("the call to end", lambda: h.call_ended())
    assert h.ended_reason() == reason.value


async def test_given_the_roster_copy_being_read_when_a_caller_looks_up_then_it_does_not_wait(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    reading, release = threading.Event(), threading.Event()

    def slow_roster(store: Store) -> list[roster.OfficerCard]:
        reading.set()
        release.wait(10)  # a roster of 200,000 officers, read for the in-memory copy
        return []

    monkeypatch.setattr(services, "roster_cards", slow_roster)
    h.line.background.start()
    try:
        await until("the roster copy to be read", reading.is_set)

        found = await asyncio.wait_for(h.line.in_db(lambda: services.check_number(
            h.store, h.line.settings, "4242", "07700900123", CALLER, now())), timeout=2)

        assert found.result is RosterResult.UNKNOWN
    finally:
        release.set()


async def test_given_a_new_hold_bridge_when_a_caller_is_held_then_no_read_back_of_the_bridge():
    asterisk = ScriptedAsterisk()
    client = AriClient("http://127.0.0.1:8088", "verifyline", "pw", "verifyline",
                       transport=httpx.MockTransport(asterisk.handle))

    await AriTelephony(client).hold("c1", "c1-hold")

    assert [(r.method, r.path) for r in asterisk.requests] == [
        ("POST", "/bridges/c1-hold"), ("POST", "/bridges/c1-hold/addChannel"),
        ("POST", "/bridges/c1-hold/moh")]


async def test_given_the_hold_bridge_exists_when_held_again_then_it_is_read_and_not_rejoined():
    # a restarted app holding an adopted caller: the bridge exists (409) with them in it
    asterisk = ScriptedAsterisk(failures={("POST", "/bridges/c1-hold"): 409})

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            asterisk.requests.append(Request("GET", request.url.path.removeprefix("/ari"), {}))
            return httpx.Response(200, json={"id": "c1-hold", "channels": ["c1"]})
        return asterisk.handle(request)

    client = AriClient("http://127.0.0.1:8088", "verifyline", "pw", "verifyline",
                       transport=httpx.MockTransport(handle))

    await AriTelephony(client).hold("c1", "c1-hold")

    assert [(r.method, r.path) for r in asterisk.requests] == [
        ("POST", "/bridges/c1-hold"), ("GET", "/bridges/c1-hold")]


async def test_given_a_desk_just_gone_when_the_reference_is_read_to_each_then_no_error(
        ) -> None:
    # given a desk leg gone (404) and one that left the app a moment ago (409)
    asterisk = ScriptedAsterisk(failures={("POST", "/channels/c1-desk1/play"): 404,
                                          ("POST", "/channels/c2-desk1/play"): 409})
    client = AriClient("http://127.0.0.1:8088", "verifyline", "pw", "verifyline",
                       transport=httpx.MockTransport(asterisk.handle))
    tel = AriTelephony(client)

    # when the reference is read to caller and desk
    await tel.play_to_each({"c1": "c1-ref-5", "c1-desk1": "c1-ref-6"}, ["en/reference"])
    await tel.play_to_each({"c2": "c2-ref-5", "c2-desk1": "c2-ref-6"}, ["en/reference"])

    # then each was asked for, and no error reached the call flow
    assert [(r.method, r.path, r.params["media"]) for r in asterisk.requests] == [
        ("POST", f"/channels/{c}/play/{p}", "sound:verifyline/en/reference")
        for c, p in [("c1", "c1-ref-5"), ("c1-desk1", "c1-ref-6"),
                     ("c2", "c2-ref-5"), ("c2-desk1", "c2-ref-6")]]


async def test_given_another_refusal_when_the_reference_is_read_to_each_then_it_raises(
        ) -> None:
    asterisk = ScriptedAsterisk(failures={("POST", "/channels/c1-desk1/play"): 500})
    client = AriClient("http://127.0.0.1:8088", "verifyline", "pw", "verifyline",
                       transport=httpx.MockTransport(asterisk.handle))

    with pytest.raises(AriHttpError):
        await AriTelephony(client).play_to_each({"c1": "p1", "c1-desk1": "p2"}, ["en/reference"])


async def test_given_a_call_event_about_one_desk_then_only_that_desk_is_looked_at_again(
        tmp_path: Path, db_url: str, store: Store) -> None:
    # given three registered desks, each shown as free
    settings, line = await a_line(tmp_path, db_url, store, ("desk1", "desk2", "desk3"),
                                  ScriptedAsterisk().handle)
    shown: list[tuple[str, str]] = []

    def log(entry: logops.Operation) -> None:
        if isinstance(entry, logops.SetDeskState):
            shown.append((entry.desk, entry.state))

    line.log = log  # type: ignore[method-assign]
    here = DeskPresence(registered=True, in_use=False)
    line.publish_desk_states({d: here for d in settings.desks})
    assert sorted(shown) == [("desk1", "free"), ("desk2", "free"), ("desk3", "free")]
    shown.clear()

    # when desk2 and desk3 are paused, and an event about desk2 alone comes
    line.pool.set_availability("desk2", True, False)
    line.pool.set_availability("desk3", True, False)
    await line.on_event(AriEvent("DeviceStateChanged", {
        "type": "DeviceStateChanged", "device_state": {"name": "PJSIP/desk2"}}))

    # then desk2's new state is shown at once; desk3's with the next look at every desk
    assert shown == [("desk2", "paused")]
    line.publish_desk_states()
    assert shown == [("desk2", "paused"), ("desk3", "paused")]
    await stop(line)


async def test_given_two_callers_waiting_when_the_first_takes_a_desk_then_the_next_is_woken(
        tmp_path: Path, db_url: str, store: Store) -> None:
    # given two free desks and two callers queued, the second of whom looked for a desk while
    # the first one's pick was under way (out of turn: told to wait)
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ari/endpoints/PJSIP":
            return httpx.Response(200, json=[
                {"technology": "PJSIP", "resource": d, "state": "online", "channel_ids": []}
                for d in ("desk1", "desk2")])
        return ScriptedAsterisk().handle(request)

    _, line = await a_line(tmp_path, db_url, store, ("desk1", "desk2"), handle)
    first, second = (CallData(channel_id=c, caller_number="07700900123", reference="412345",
                              started_at=now())
                     for c in ("c1", "c2"))
    woken: list[object] = []
    waiting = line.calls["c2"] = CallRuntime(line, second)
    waiting.post = woken.append  # type: ignore[method-assign,assignment]
    for data in (first, second):
        line.pool.join(data.channel_id)
    assert await runtime.CallServicesImpl(line, second).pick_desks("c2", frozenset(),
                                                                   False) == []

    # when the first caller takes a desk
    taken = await runtime.CallServicesImpl(line, first).pick_desks("c1", frozenset(), False)

    # then the second is woken at once to take the other (no wait for a device state event
    # or a retry timer)
    assert taken == ["desk1"]
    assert [type(e).__name__ for e in woken] == ["Wake"]
    assert await runtime.CallServicesImpl(line, second).pick_desks("c2", frozenset(),
                                                                   False) == ["desk2"]
    await stop(line)
