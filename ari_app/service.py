"""The line as an ARI application: routes events to one task and queue per call.

Every call runs in its own asyncio task fed by its own queue, so events for a call are handled
in order and one call's failure never touches another. An unexpected error in a call sends
the caller down the dialplan fallback (which rings the desks natively) instead of silence.
Database work runs in one writer thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from ari_app.adapter import AriTelephony
from ari_app.client import AriClient, AriError, AriEvent, AriNotFound, EventStream
from ivr import calllog, roster
from ivr.callflow import (
    Bridged,
    Call,
    CallContext,
    CallData,
    CallerGone,
    Collecting,
    Connecting,
    DeskAnswered,
    DeskDtmf,
    DeskGone,
    Dtmf,
    Event,
    FlowSettings,
    PlaybackDone,
    State,
    TimerFired,
    Wake,
)
from ivr.clock import as_utc, now
from ivr.config import Settings
from ivr.models import Call as CallRow
from ivr.models import CallPath, EndReason
from ivr.spool import drain
from ivr.store import Store
from ivr.supervisors import DeskPool
from ivr.telephony import LookupResult

log = logging.getLogger(__name__)
T = TypeVar("T")

DESK_LEG_MARK = "-desk"
AVAILABILITY_INTERVAL = 1.0
FEATURE_PROMPT_SECONDS = 3.0
# feature code action -> (paused, signed out)
FEATURES: dict[str, tuple[bool, bool]] = {
    "pause": (True, False), "available": (False, False),
    "signout": (True, True), "signin": (False, False),
}
SPOOL_INTERVAL = 2.0
LINGER_SECONDS = 30.0  # keep an ended call around to absorb its late events


def caller_channel_of(channel_id: str) -> str:
    """Desk legs are named '<caller channel id>-deskN'; a caller's id maps to itself."""
    return channel_id.split(DESK_LEG_MARK, 1)[0]


class _Fired:
    __slots__ = ("name", "token")

    def __init__(self, name: str, token: int) -> None:
        self.name, self.token = name, token


class LoopTimers:
    """Timers on the event loop that post into a call's queue; a timer cancelled or restarted
    after it fired but before its event was handled is dropped, never delivered stale."""

    def __init__(self, queue: asyncio.Queue[Event | _Fired]) -> None:
        self._queue = queue
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._live: dict[str, int] = {}
        self._next = 0

    def start(self, name: str, seconds: float) -> None:
        self.cancel(name)
        self._next += 1
        token = self._next
        self._live[name] = token
        self._handles[name] = asyncio.get_running_loop().call_later(
            seconds, self._queue.put_nowait, _Fired(name, token))

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()
        self._live.pop(name, None)

    def cancel_all(self) -> None:
        for name in list(self._handles):
            self.cancel(name)

    def accept(self, fired: _Fired) -> TimerFired | None:
        if self._live.get(fired.name) != fired.token:
            return None
        self._live.pop(fired.name)
        self._handles.pop(fired.name, None)
        return TimerFired(fired.name)


class CallServicesImpl:
    """Domain services bound to one call."""

    def __init__(self, line: LineService, data: CallData) -> None:
        self.line, self.data = line, data

    async def lookup(self, digits: str) -> LookupResult:
        settings = self.line.settings

        def work() -> LookupResult:
            at = now()
            with self.line.store.session() as s:
                found = roster.lookup(s, digits, at)
                recent = calllog.recent_lookups(s, self.data.caller_number, self.data.channel_id,
                                                at - timedelta(seconds=settings.rate_window))
            # this lookup is one more: flag the caller once they go over the rate
            flagged = bool(digits) and recent + 1 > settings.rate_limit
            return LookupResult(found.result, found.officer_id, found.officer_label, flagged)

        return await self.line.in_db(work)

    async def pick_desk(self, call_key: str, exclude: frozenset[str]) -> str | None:
        try:
            presence = await self.line.tel.desk_presence(self.line.settings.desks)
        except AriError as exc:
            log.warning("Call %s: cannot read desk states (%s)", call_key, exc)
            return None
        return self.line.pool.reserve(presence, call_key, exclude)

    def release_desk(self, desk: str, talked: bool) -> None:
        self.line.release_desk(desk, talked, self.data.channel_id)

    def join_queue(self, emergency: bool) -> int:
        self.line.pool.join(self.data.channel_id, emergency)
        return self.line.pool.position(self.data.channel_id)

    def leave_queue(self) -> None:
        self.line.pool.leave(self.data.channel_id)

    def queue_position(self) -> int:
        return self.line.pool.position(self.data.channel_id)

    def desk_answered(self, desk: str) -> None:
        self.line.pool.answered(desk)

    def desk_not_answered(self, desk: str) -> None:
        if self.line.pool.no_answer(desk):
            log.warning("desk %s paused after %d unanswered calls in a row", desk,
                        self.line.pool.auto_pause_after)
            self.record("desk_auto_paused", {"desk": desk})
            self.line.write(functools.partial(self.line.save_availability, desk, True, False,
                                              "no_answer"), f"pause {desk}")

    async def anyone_signed_in(self) -> bool:
        try:
            presence = await self.line.tel.desk_presence(self.line.settings.desks)
        except AriError:
            return True  # cannot tell: do not send everyone to the overflow
        return self.line.pool.any_signed_in(presence)

    def record(self, kind: str, detail: dict[str, object]) -> None:
        snapshot = copy.copy(self.data)
        at = now()
        self.line.write(lambda: self._save(snapshot, kind, detail, at),
                        f"Call {snapshot.channel_id}: log {kind}")

    def _save(self, snapshot: CallData, kind: str, detail: dict[str, object],
              at: datetime) -> None:
        with self.line.store.session() as s:
            calllog.save(s, snapshot, kind, detail, at)


class CallRuntime:
    """One call's task and queue."""

    def __init__(self, line: LineService, data: CallData) -> None:
        self.line = line
        self.queue: asyncio.Queue[Event | _Fired] = asyncio.Queue()
        self.timers = LoopTimers(self.queue)
        ctx = CallContext(data, line.tel, self.timers, CallServicesImpl(line, data),
                          line.flow)
        self.call = Call(ctx)
        self.task: asyncio.Task[None] | None = None

    @property
    def data(self) -> CallData:
        return self.call.ctx.data

    def post(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def run(self, first: State | None = None) -> None:
        try:
            await self.call.start(first)
        except Exception:
            log.exception("Call %s: failed while starting", self.data.channel_id)
            await self._safe_path()
        while not self.call.ended:
            item = await self.queue.get()
            event = self.timers.accept(item) if isinstance(item, _Fired) else item
            if event is None:
                continue
            try:
                await self.call.dispatch(event)
            except AriNotFound as exc:
                # the caller's channel vanished under us: its StasisEnd is on the way
                log.info("Call %s: %s", self.data.channel_id, exc)
            except Exception:
                log.exception("Call %s: failed handling %s", self.data.channel_id, event)
                await self._safe_path()
        self.timers.cancel_all()
        await asyncio.sleep(LINGER_SECONDS)
        self.line.forget(self.data.channel_id)

    async def _safe_path(self) -> None:
        """A bug must never leave a caller in silence: hand them to the dialplan fallback."""
        if isinstance(self.call.state, Bridged):
            return  # already talking to a supervisor; leave them be
        desk_leg = self.data.desk_channel_id
        try:
            if desk_leg is not None and self.data.answered_at is None:
                await self.line.tel.hangup(desk_leg)
            await self.call.hand_to_fallback()
        except AriNotFound:
            log.info("Call %s: the caller is gone; nothing to hand over", self.data.channel_id)
            await self.call.abandon()
        except Exception:
            log.exception("Call %s: could not hand to the fallback", self.data.channel_id)
            await self.call.abandon()


class LineService:
    """The Verify Line ARI application."""

    def __init__(self, settings: Settings, store: Store, client: AriClient) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.tel = AriTelephony(client)
        self.flow = FlowSettings(entry=settings.entry, ring_timeout=settings.ring_timeout,
                                 hold_interval=settings.hold_interval,
                                 emergency_endpoint=settings.emergency_endpoint,
                                 queue_max_wait=settings.queue_max_wait,
                                 whisper_timeout=settings.whisper_timeout,
                                 recording=settings.recording)
        self.pool = DeskPool(settings.desks, {}, settings.wrap_up, settings.auto_pause_after)
        self.calls: dict[str, CallRuntime] = {}
        self._db = ThreadPoolExecutor(1, thread_name_prefix="verifyline-db")
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stream = EventStream(settings.ari_url, settings.ari_user, settings.ari_password,
                                  settings.app_name, self.on_event, self.on_connect,
                                  self.on_disconnect)

    # --- plumbing ------------------------------------------------------------------------

    async def in_db(self, work: Callable[[], T]) -> T:
        """Run database work on the writer thread, after every write queued before it."""
        return await asyncio.get_running_loop().run_in_executor(self._db, work)

    def write(self, work: Callable[[], object], what: str) -> None:
        """Queue a log write behind the earlier ones; a failure is logged, never raised."""
        def done(f: Future[Any]) -> None:
            if (exc := f.exception()) is not None:
                log.error("%s failed: %r", what, exc)

        self._db.submit(work).add_done_callback(done)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def forget(self, channel_id: str) -> None:
        self.calls.pop(channel_id, None)

    # --- desks ---------------------------------------------------------------------------

    def release_desk(self, desk: str, talked: bool, call_key: str) -> None:
        back_at = self.pool.release(desk, talked, call_key=call_key)
        if back_at is not None:
            delay = max(0.0, (back_at - now()).total_seconds())
            asyncio.get_running_loop().call_later(delay, self.wake_waiting)
        self.wake_waiting()

    def wake_waiting(self) -> None:
        """A desk may be free: let waiting callers try again, longest-waiting first."""
        for key in self.pool.waiting():
            runtime = self.calls.get(key)
            if runtime is not None:
                runtime.post(Wake())

    def save_availability(self, desk: str, paused: bool, signed_out: bool, reason: str) -> None:
        with self.store.session() as s:
            calllog.set_availability(s, desk, paused=paused, signed_out=signed_out,
                                     reason=reason)

    async def _availability_loop(self) -> None:
        """Pick up pause/sign-out changes made by the CLI, the console or feature codes."""
        while True:
            try:
                rows = await self.in_db(self._read_availability)
                changed = [d for d, (p, o) in rows.items()
                           if self.pool.set_availability(d, p, o)]
                if changed:
                    log.info("availability changed: %s", ", ".join(changed))
                    self.wake_waiting()
            except Exception:
                log.exception("reading supervisor availability failed; will retry")
            await asyncio.sleep(AVAILABILITY_INTERVAL)

    def _read_availability(self) -> dict[str, tuple[bool, bool]]:
        with self.store.session() as s:
            return calllog.availability(s)

    async def _feature(self, channel_id: str, channel_name: str, action: str) -> None:
        """A feature code dialled from a desk phone (*51 pause, *52 available, ...)."""
        desk = channel_name.split("/", 1)[-1].rsplit("-", 1)[0]
        paused, signed_out = FEATURES.get(action, (None, None))
        try:
            await self.client.answer(channel_id)
            if paused is None or desk not in self.settings.desks:
                log.warning("feature %r from %s refused", action, channel_name)
            else:
                await self.in_db(functools.partial(self.save_availability, desk, paused,
                                                   bool(signed_out), action))
                self.pool.set_availability(desk, paused, bool(signed_out))
                log.info("desk %s: %s (feature code)", desk, action)
                if not paused:
                    self.wake_waiting()
                word = "paused" if paused else "available"
                await self.client.play(channel_id, f"{channel_id}-feature",
                                       [f"sound:verifyline/en/{word}"])
                await asyncio.sleep(FEATURE_PROMPT_SECONDS)
        finally:
            await self.client.hangup(channel_id)

    # --- life cycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        def work() -> dict[str, datetime | None]:
            self.store.migrate()
            with self.store.session() as s:
                calllog.ensure_desks(s, self.settings.desks)
            with self.store.session() as s:
                return calllog.idle_since(s)

        self.pool = DeskPool(self.settings.desks, await self.in_db(work),
                             self.settings.wrap_up, self.settings.auto_pause_after)
        for desk, (paused, signed_out) in (await self.in_db(self._read_availability)).items():
            self.pool.set_availability(desk, paused, signed_out)

    async def run(self) -> None:
        await self.prepare()
        self.spawn(self._spool_loop())
        self.spawn(self._availability_loop())
        await self.stream.run()

    async def stop(self) -> None:
        await self.stream.stop()
        self.on_disconnect()
        for task in list(self._tasks):
            task.cancel()
        self._db.shutdown(wait=True)

    async def _spool_loop(self) -> None:
        while True:
            try:
                n = await self.in_db(lambda: drain(self.settings.spool_dir, self._ingest))
                if n:
                    log.info("ingested %d fallback call(s) from the spool", n)
            except Exception:
                log.exception("fallback spool ingest failed; will retry")
            await asyncio.sleep(SPOOL_INTERVAL)

    def _ingest(self, record: calllog.FallbackRecord) -> None:
        with self.store.session() as s:
            calllog.ingest_fallback(s, record)

    # --- events ----------------------------------------------------------------------------

    async def on_event(self, ev: AriEvent) -> None:
        channel = ev.channel
        if ev.type == "PlaybackFinished":
            self._post(ev.playback_target, PlaybackDone(ev.playback_id))
            return
        if ev.type in ("EndpointStateChange", "DeviceStateChanged"):
            self.wake_waiting()  # a desk registered or came free
            return
        if channel is None:
            return
        is_desk = DESK_LEG_MARK in channel.id
        match ev.type:
            case "StasisStart" if is_desk or (ev.args[:1] == ["desk"]):
                if not self._post(channel.id, DeskAnswered(channel.id)):
                    log.warning("desk leg %s has no call; hanging it up", channel.id)
                    self.spawn(self.client.hangup(channel.id))
            case "StasisStart" if ev.args[:1] == ["feature"]:
                self.spawn(self._feature(channel.id, channel.name, "".join(ev.args[1:2])))
            case "StasisStart":
                self._start_call(channel.id, channel.caller_number)
            case "StasisEnd" | "ChannelDestroyed":
                self._post(channel.id, DeskGone(channel.id, ev.cause) if is_desk
                           else CallerGone(ev.cause))
            case "ChannelDtmfReceived" if is_desk:
                self._post(channel.id, DeskDtmf(channel.id, ev.digit))
            case "ChannelDtmfReceived":
                self._post(channel.id, Dtmf(ev.digit))
            case _:
                pass

    def _post(self, channel_id: str, event: Event) -> bool:
        runtime = self.calls.get(caller_channel_of(channel_id))
        if runtime is None:
            return False
        runtime.post(event)
        return True

    def _start_call(self, channel_id: str, caller_number: str) -> None:
        if channel_id in self.calls:
            return
        data = CallData(channel_id=channel_id, caller_number=caller_number or None,
                        reference="")
        runtime = CallRuntime(self, data)
        self.calls[channel_id] = runtime
        runtime.task = self.spawn(self._open_and_run(runtime))

    async def _open_and_run(self, runtime: CallRuntime, first: State | None = None) -> None:
        data = runtime.data
        try:
            await self.client.subscribe_channel(data.channel_id)
            if not data.reference:
                data.reference = await self.in_db(lambda: self._open(data))
        except Exception:
            log.exception("Call %s: could not open the call", data.channel_id)
            await runtime._safe_path()
            return
        await runtime.run(first)

    def _open(self, data: CallData) -> str:
        with self.store.session() as s:
            return calllog.open_call(s, data.channel_id, data.caller_number, data.started_at)

    # --- resync after a (re)connect ----------------------------------------------------------

    async def on_connect(self) -> None:
        # live desk availability: device-state changes wake waiting callers. (Not an
        # endpoint subscription: that delivers every event of the desk legs a second time.)
        sources = ",".join(f"deviceState:PJSIP/{d}" for d in self.settings.desks)
        try:
            await self.client.request("POST", f"/applications/{self.settings.app_name}/"
                                      "subscription", {"eventSource": sources})
        except AriError as exc:
            log.warning("cannot subscribe to desk-phone device states: %s", exc)
        # tells `verifyline lab` that this process, not a predecessor, holds the app's socket
        ready = self.settings.run_dir / "app.ready"
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.write_text(f"{os.getpid()}\n")
        self.spawn(self.resync())

    def on_disconnect(self) -> None:
        (self.settings.run_dir / "app.ready").unlink(missing_ok=True)

    async def resync(self) -> None:
        """Reconcile what we hold with what Asterisk holds: events missed while the socket
        was down are not replayed, and a restarted app must find the calls it already had."""
        try:
            live = {c.id for c in await self.client.channels()}
        except AriError as exc:
            log.warning("resync: cannot list channels (%s)", exc)
            return
        for runtime in list(self.calls.values()):
            d = runtime.data
            if d.channel_id not in live:
                runtime.post(CallerGone("gone while disconnected"))
            elif d.desk_channel_id is not None and d.desk_channel_id not in live:
                runtime.post(DeskGone(d.desk_channel_id, "gone while disconnected"))

        def open_calls() -> list[CallData]:
            with self.store.session() as s:
                rows = s.scalars(select(CallRow).where(CallRow.ended_at.is_(None),
                                                       CallRow.path == CallPath.ARI))
                return [_data_from_row(r) for r in rows]

        for data in await self.in_db(open_calls):
            if data.channel_id in self.calls:
                continue
            if data.channel_id not in live:
                self.write(functools.partial(self._close_lost, data.channel_id),
                           f"Call {data.channel_id}: close lost")
                continue
            try:
                await self._adopt(data, live)
            except Exception:
                log.exception("Call %s: could not adopt it", data.channel_id)

    def _close_lost(self, channel_id: str) -> None:
        with self.store.session() as s:
            row = s.scalars(select(CallRow).where(CallRow.channel_id == channel_id)).one()
            data = _data_from_row(row)
            data.ended_at, data.end_reason, data.state = now(), EndReason.LOST, "ended"
            calllog.save(s, data, "ended", {"reason": EndReason.LOST.value})

    async def _adopt(self, data: CallData, live: set[str]) -> None:
        """Continue a call a previous run of the app was handling."""
        log.info("Call %s: adopting (was %s)", data.channel_id, data.state)
        first: State
        if (data.state == "bridged" and data.desk_channel_id in live
                and data.answered_desk is not None):
            first = Bridged()
            self.pool.hold(data.answered_desk, data.channel_id)
            await self._subscribe(data.desk_channel_id)
        else:
            # re-evaluate from scratch: drop a desk leg and bridge the old run left behind
            if data.desk_channel_id is not None and data.desk_channel_id in live:
                await self.client.hangup(data.desk_channel_id)
            await self.client.destroy_bridge(f"{data.channel_id}-bridge")
            data.desk_channel_id, data.desk, data.bridge_id = None, None, None
            data.answered_at, data.answered_desk = None, None
            first = Connecting() if data.roster_result is not None else Collecting(1, True)
        runtime = CallRuntime(self, data)
        self.calls[data.channel_id] = runtime
        runtime.task = self.spawn(self._open_and_run(runtime, first))

    async def _subscribe(self, channel_id: str | None) -> None:
        if channel_id is not None:
            try:
                await self.client.subscribe_channel(channel_id)
            except AriError as exc:
                log.warning("cannot subscribe to %s: %s", channel_id, exc)


def _data_from_row(row: CallRow) -> CallData:
    data = CallData(channel_id=row.channel_id, caller_number=row.caller_number,
                    reference=row.encounter.reference,
                    started_at=as_utc(row.started_at) or now())
    data.digits = row.digits_entered
    data.roster_result = row.roster_result
    data.state = row.state
    data.desk_channel_id = row.desk_channel_id
    data.bridge_id = row.bridge_id
    data.answered_at = as_utc(row.answered_at)
    data.answered_desk = row.supervisor.desk if row.supervisor else None
    data.flags = {f for f in row.flags.split(",") if f}
    data.language = row.language
    data.desk = data.answered_desk
    if data.desk_channel_id is not None:
        n = data.desk_channel_id.rsplit(DESK_LEG_MARK, 1)[-1]
        data.desk_legs = int(n) if n.isdigit() else 0
    return data
