"""Typed recording fakes of the ports in ivr.telephony, for driving the state machine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivr.callflow import Call, CallContext, FlowSettings
from ivr.config import EntrySettings
from ivr.entities import CallData
from ivr.models import RosterResult
from ivr.supervisors import DeskPool
from ivr.telephony import DeskPresence, LookupResult, Timer


@dataclass
class FakeTelephony:
    """Records every request as (operation, *arguments)."""

    # Any, not object: tests index into the recorded arguments (a prompt tuple, an id)
    requests: list[tuple[Any, ...]] = field(default_factory=list)
    presence: dict[str, DeskPresence] = field(default_factory=dict)
    refuse_desks: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)

    def ops(self, name: str) -> list[tuple[Any, ...]]:
        return [r for r in self.requests if r[0] == name]

    async def answer(self, channel_id: str) -> None:
        self.requests.append(("answer", channel_id))

    async def play(self, channel_id: str, playback_id: str, prompts: Sequence[str]) -> None:
        self.requests.append(("play", channel_id, playback_id, tuple(prompts)))

    async def play_to_each(self, playbacks: Mapping[str, str], prompts: Sequence[str]) -> None:
        for channel_id, playback_id in playbacks.items():
            if channel_id not in self.gone:
                self.requests.append(("play", channel_id, playback_id, tuple(prompts)))

    async def stop_playback(self, playback_id: str) -> None:
        self.requests.append(("stop_playback", playback_id))

    async def hold(self, channel_id: str, bridge_id: str) -> None:
        self.requests.append(("hold", channel_id, bridge_id))

    async def originate(self, desk: str, channel_id: str, display: str, caller_number: str,
                        timeout: float) -> bool:
        self.requests.append(("originate", desk, channel_id, display))
        return desk not in self.refuse_desks

    async def create_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> bool:
        self.requests.append(("create_bridge", bridge_id, tuple(channel_ids)))
        # a channel that has just hung up (its hang-up event not dispatched yet)
        return not any(c in self.gone for c in channel_ids)

    async def record_bridge(self, bridge_id: str, name: str) -> bool:
        self.requests.append(("record_bridge", bridge_id, name))
        return True

    async def destroy_bridge(self, bridge_id: str) -> None:
        self.requests.append(("destroy_bridge", bridge_id))

    async def hangup(self, channel_id: str) -> None:
        self.requests.append(("hangup", channel_id))

    async def continue_to_fallback(self, channel_id: str) -> None:
        self.requests.append(("continue_to_fallback", channel_id))

    async def desk_presence(self, desks: Sequence[str]) -> dict[str, DeskPresence]:
        return {d: p for d, p in self.presence.items() if d in desks}


@dataclass
class FakeTimers:
    """Running timers by name ('ring:<leg>' for a leg's ring timer)."""

    running: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def _name(name: Timer, key: str) -> str:
        return f"{name}:{key}" if key else str(name)

    def start(self, name: Timer, seconds: float, key: str = "") -> None:
        self.running[self._name(name, key)] = seconds

    def cancel(self, name: Timer, key: str = "") -> None:
        self.running.pop(self._name(name, key), None)

    def cancel_all(self) -> None:
        self.running.clear()


@dataclass
class FakeServices:
    tel: FakeTelephony
    roster: dict[str, RosterResult] = field(default_factory=dict)
    desks: tuple[str, ...] = ("desk1", "desk2")
    released: list[tuple[str, bool]] = field(default_factory=list)
    failed: list[tuple[str, bool]] = field(default_factory=list)
    pool: DeskPool = field(default_factory=lambda: DeskPool(("desk1", "desk2"), {}))
    call_key: str = "c1"
    timeline: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    flag_lookups: bool = False

    async def lookup(self, digits: str) -> LookupResult:
        if not digits:
            return LookupResult(RosterResult.NONE_ENTERED, None, "")
        return LookupResult(self.roster.get(digits, RosterResult.UNKNOWN), None, "",
                            flagged=self.flag_lookups)

    async def pick_desks(self, call_key: str, exclude: frozenset[str], every: bool) -> list[str]:
        return self.pool.reserve(await self.tel.desk_presence(self.desks), call_key, exclude,
                                 every=every)

    def release_desk(self, desk: str, talked: bool) -> None:
        self.pool.release(desk, talked, call_key=self.call_key)
        self.released.append((desk, talked))

    def join_queue(self, emergency: bool) -> int:
        self.pool.join(self.call_key, emergency)
        return self.pool.position(self.call_key)

    def leave_queue(self) -> None:
        self.pool.leave(self.call_key)

    def queue_position(self) -> int:
        return self.pool.position(self.call_key)

    def desk_answered(self, desk: str) -> None:
        self.pool.answered(desk)

    def desk_not_answered(self, desk: str) -> None:
        self.pool.no_answer(desk)

    def desk_failed(self, desk: str, counts: bool) -> None:
        self.pool.failed(desk, counts)
        self.failed.append((desk, counts))

    async def anyone_signed_in(self) -> bool:
        return self.pool.any_signed_in(await self.tel.desk_presence(self.desks))

    def record(self, kind: str, detail: dict[str, object]) -> None:
        self.timeline.append((kind, detail))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.timeline]


ONLINE = DeskPresence(registered=True, in_use=False)
BUSY = DeskPresence(registered=True, in_use=True)
OFFLINE = DeskPresence(registered=False, in_use=False)


def make_call(presence: dict[str, DeskPresence] | None = None,
              roster: dict[str, RosterResult] | None = None,
              entry: EntrySettings | None = None, emergency: str | None = None,
              recording: bool = False, ring_all: bool = False,
              ) -> tuple[Call, FakeTelephony, FakeTimers, FakeServices]:
    tel = FakeTelephony(presence=dict(presence or {"desk1": ONLINE, "desk2": ONLINE}))
    timers = FakeTimers()
    services = FakeServices(tel, roster=dict(roster or {}))
    data = CallData(channel_id="c1", caller_number="07700900123", reference="123456")
    settings = FlowSettings(entry=entry or EntrySettings(), ring_timeout=20, hold_interval=8,
                            emergency_endpoint=emergency, recording=recording,
                            ring_all=ring_all)
    return Call(CallContext(data, tel, timers, services, settings)), tel, timers, services
