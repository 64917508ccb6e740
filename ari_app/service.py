"""The line as an ARI application: routes events to one task and queue per call.

Every call runs in its own asyncio task fed by its own queue, so events for a call are handled
in order and one call's failure never touches another. An unexpected error in a call sends
the caller down the dialplan fallback (which rings the desks natively) instead of silence.
Database work runs in one writer thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from ari_app.adapter import AriTelephony
from ari_app.client import (
    AriClient,
    AriError,
    AriEvent,
    AriNotFound,
    AriUnavailable,
    EventStream,
)
from ari_app.sweeper import Sweeper
from ivr import callers, calllog, ids, logops, roster, services
from ivr.callflow import (
    FLAG_EMERGENCY,
    Bridged,
    Call,
    CallContext,
    CallerGone,
    Collecting,
    Connecting,
    DeskAnswered,
    DeskDtmf,
    DeskGone,
    Dtmf,
    Event,
    Lost,
    PlaybackDone,
    State,
    TimerFired,
    Wake,
)
from ivr.clock import iso, now
from ivr.config import Settings
from ivr.entities import CallData
from ivr.journal import DurableLog, Journal
from ivr.models import EndReason
from ivr.spool import drain
from ivr.store import Store
from ivr.supervisors import DeskPool
from ivr.telephony import LookupResult

log = logging.getLogger(__name__)
T = TypeVar("T")

AVAILABILITY_INTERVAL = 1.0
FEATURE_PROMPT_SECONDS = 3.0
SPOOL_INTERVAL = 2.0
ROSTER_COPY_INTERVAL = 30.0  # how old the in-memory roster may be when the database goes
RESYNC_RETRY = 2.0
LINGER_SECONDS = 30.0  # keep an ended call around to absorb its late events
# How Asterisk 22 ends a caller its RTP timeout found silent (res_pjsip_sdp_rtp, measured in
# tests/e2e/test_found_outside_rtp.py): ChannelHangupRequest with soft=true and cause 1
# (AST_SOFTHANGUP_DEV: the channel driver's own request), StasisEnd, then ChannelDestroyed
# with cause 44 (AST_CAUSE_REQUESTED_CHAN_UNAVAIL). A BYE is a hard request carrying a Q.850
# cause; the app's own hang-up is soft with cause 32 (AST_SOFTHANGUP_EXPLICIT).
SOFTHANGUP_DEV = 1
CAUSE_MEDIA_TIMEOUT = 44


def driver_hangup(ev: AriEvent) -> bool:
    """A hang-up the channel driver asked for itself (not the far end's BYE, not ours)."""
    return ev.raw.get("soft") is True and ev.raw.get("cause") == SOFTHANGUP_DEV


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
        d, line = self.data, self.line
        try:
            return await line.in_db(lambda: services.check_number(
                line.store, line.settings, digits, d.caller_number, d.channel_id, now()))
        except SQLAlchemyError as exc:
            # the database is away: the roster as last read still answers (the rate cannot
            # be counted meanwhile); the supervisor is told the result came from the copy
            found = self.line.roster_copy.lookup(digits, now())
            log.warning("Call %s: roster lookup from the in-memory copy (%s)",
                        self.data.channel_id, type(exc).__name__)
            self.record("roster_from_copy", {"read_at": iso(self.line.roster_copy.read_at)})
            return LookupResult(found.result, found.officer_id, found.officer_label)

    async def pick_desks(self, call_key: str, exclude: frozenset[str], every: bool) -> list[str]:
        try:
            presence = await self.line.tel.desk_presence(self.line.settings.desks)
        except AriError as exc:
            log.warning("Call %s: cannot read desk states (%s)", call_key, exc)
            return []
        return self.line.pool.reserve(presence, call_key, exclude, every=every)

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
            self._auto_paused(desk)

    def desk_failed(self, desk: str, counts: bool) -> None:
        paused, rest_until = self.line.pool.failed(desk, counts)
        if paused:
            self._auto_paused(desk)
        if rest_until is not None:
            # when the rest is over the desk may be offered again: wake whoever waits
            self.line.wake_at(rest_until)

    def _auto_paused(self, desk: str) -> None:
        log.warning("desk %s paused after %d unanswered calls in a row", desk,
                    self.line.pool.auto_pause_after)
        self.record("desk_auto_paused", {"desk": desk})
        self.line.log(logops.availability_entry(desk, True, False, "no_answer"))

    async def anyone_signed_in(self) -> bool:
        try:
            presence = await self.line.tel.desk_presence(self.line.settings.desks)
        except AriError:
            return True  # cannot tell: do not send everyone to the overflow
        return self.line.pool.any_signed_in(presence)

    def record(self, kind: str, detail: dict[str, object]) -> None:
        self.line.log(logops.save_entry(self.data, kind, detail, now()))


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
            except AriUnavailable as exc:
                # Asterisk is unreachable: nothing can be done for the call now; the resync
                # after the reconnect finds it (still there) or closes it (gone with Asterisk)
                log.warning("Call %s: Asterisk unreachable handling %s (%s)",
                            self.data.channel_id, event, exc)
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
        unanswered = list(self.data.runtime.legs)
        if self.data.desk_channel_id is not None and self.data.answered_at is None:
            unanswered.append(self.data.desk_channel_id)
        try:
            for leg in dict.fromkeys(unanswered):
                await self.line.tel.hangup(leg)
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
        self.flow = services.flow_settings(settings)
        self.pool = DeskPool(settings.desks, {}, settings.wrap_up, settings.auto_pause_after)
        self.calls: dict[str, CallRuntime] = {}
        # caller channels the channel driver itself asked to hang up, until their
        # ChannelDestroyed tells whether it was the RTP timeout
        self._driver_hangups: set[str] = set()
        self._db = ThreadPoolExecutor(1, thread_name_prefix="verifyline-db")  # reads
        self.durable = DurableLog(Journal(services.journal_path(settings)), store, logops.CODEC)
        self.roster_copy = roster.RosterCopy()
        self.sweeper = Sweeper(settings.app_name, settings.sweep_grace)
        self._features: set[str] = set()  # feature-code channels being served
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stream = EventStream(settings.ari_url, settings.ari_user, settings.ari_password,
                                  settings.app_name, self.on_event, self.on_connect,
                                  self.on_disconnect)

    # --- plumbing ------------------------------------------------------------------------

    async def in_db(self, work: Callable[[], T]) -> T:
        """Read from the database on a thread of its own, so the event loop never waits on it
        (writes go through :meth:`log`)."""
        return await asyncio.get_running_loop().run_in_executor(self._db, work)

    def log(self, entry: logops.Operation) -> None:
        """A call-log write: journaled (fsync'd) first, then applied to the database, in order
        and exactly once, also when the database is away for a while (see ivr.journal)."""
        self.durable.submit(entry)

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
            self.wake_at(back_at)
        self.wake_waiting()

    def wake_at(self, when: datetime) -> None:
        """Wake waiting callers when a desk's wrap-up or rest is over."""
        delay = max(0.0, (when - now()).total_seconds())
        asyncio.get_running_loop().call_later(delay, self.wake_waiting)

    def wake_waiting(self) -> None:
        """A desk may be free: let waiting callers try again, longest-waiting first."""
        for key in self.pool.waiting():
            runtime = self.calls.get(key)
            if runtime is not None:
                runtime.post(Wake())

    async def _availability_loop(self) -> None:
        """Pick up pause/sign-out changes made by the CLI, the console or feature codes."""
        while True:
            try:
                rows = await self.in_db(lambda: services.availability(self.store))
                changed = [d for d, (p, o) in rows.items()
                           if self.pool.set_availability(d, p, o)]
                if changed:
                    log.info("availability changed: %s", ", ".join(changed))
                    self.wake_waiting()
            except SQLAlchemyError as exc:
                # the database is away: keep what we knew (feature codes still apply)
                log.debug("reading supervisor availability failed (%s); will retry", exc)
            except Exception:
                log.exception("reading supervisor availability failed; will retry")
            await asyncio.sleep(AVAILABILITY_INTERVAL)

    async def _roster_loop(self) -> None:
        """Keep an in-memory copy of the roster for lookups while the database is away."""
        while True:
            try:
                officers = await self.in_db(lambda: services.roster_cards(self.store))
                self.roster_copy.replace(officers, now())
            except SQLAlchemyError as exc:
                log.debug("reading the roster failed (%s); keeping the copy", exc)
            except Exception:
                log.exception("reading the roster failed; will retry")
            await asyncio.sleep(ROSTER_COPY_INTERVAL)

    async def _feature(self, channel_id: str, channel_name: str, action: str) -> None:
        """A feature code dialled from a desk phone (*51 pause, *52 available, ...)."""
        desk = channel_name.split("/", 1)[-1].rsplit("-", 1)[0]
        paused, signed_out = services.AVAILABILITY.get(action, (None, None))
        self._features.add(channel_id)
        try:
            await self.client.answer(channel_id)
            if paused is None or desk not in self.settings.desks:
                log.warning("feature %r from %s refused", action, channel_name)
            else:
                self.log(logops.availability_entry(desk, paused, bool(signed_out), action))
                self.pool.set_availability(desk, paused, bool(signed_out))
                log.info("desk %s: %s (feature code)", desk, action)
                if not paused:
                    self.wake_waiting()
                word = "paused" if paused else "available"
                await self.client.play(channel_id, f"{channel_id}-feature",
                                       [f"sound:verifyline/en/{word}"])
                await asyncio.sleep(FEATURE_PROMPT_SECONDS)
        finally:
            self._features.discard(channel_id)
            await self.client.hangup(channel_id)

    # --- debris ----------------------------------------------------------------------------

    def _known(self, channel_id: str) -> bool:
        """Does a call of ours (or a feature code) own this channel?"""
        if channel_id in self._features:
            return True
        runtime = self.calls.get(ids.caller_channel_of(channel_id))
        if runtime is None:
            return False
        d = runtime.data
        return channel_id in (d.channel_id, d.desk_channel_id) or channel_id in d.runtime.legs

    def _live(self, caller_channel_id: str) -> bool:
        """Is this call still in progress (not ended)?"""
        runtime = self.calls.get(caller_channel_id)
        return runtime is not None and not runtime.call.ended

    async def _sweep_loop(self) -> None:
        interval = max(0.5, self.settings.sweep_grace / 2)
        while True:
            await asyncio.sleep(interval)
            if not self.stream.connected.is_set():
                continue  # what we know is stale until the resync
            try:
                await self.sweep()
            except AriError as exc:
                log.warning("sweeper: %s", exc)
            except Exception:
                log.exception("sweeper failed; will retry")

    async def sweep(self) -> None:
        bridges, channels = await self.client.bridges(), await self.client.channels()
        for debris in self.sweeper.sweep(bridges, channels, self._known,
                                         asyncio.get_running_loop().time(), self._live):
            log.warning("sweeper: %s %s (%s for %.0f s)", debris.action.replace("_", " "),
                        debris.resource_id, debris.why, debris.seen_for)
            if debris.action == "destroy_bridge":
                await self.client.destroy_bridge(debris.resource_id)
            elif debris.action == "hangup":
                await self.client.hangup(debris.resource_id)
            else:  # a caller: never hung up on; the dialplan fallback rings the desks
                await self.tel.continue_to_fallback(debris.resource_id)
            self.sweeper.done(debris)

    # --- life cycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        self.durable.start()  # replays whatever an earlier run left in the journal

        idle = await self.in_db(lambda: services.prepare_store(self.store, self.settings.desks))
        self.pool = DeskPool(self.settings.desks, idle, self.settings.wrap_up,
                             self.settings.auto_pause_after)
        for desk, (paused, signed_out) in (
                await self.in_db(lambda: services.availability(self.store))).items():
            self.pool.set_availability(desk, paused, signed_out)
        # calls an earlier run left open must be in the database before resync reads them
        await asyncio.get_running_loop().run_in_executor(None, self.durable.flush)

    async def run(self) -> None:
        await self.prepare()
        self.spawn(self._spool_loop())
        self.spawn(self._availability_loop())
        self.spawn(self._roster_loop())
        self.spawn(self._sweep_loop())
        await self.stream.run()

    async def stop(self) -> None:
        await self.stream.stop()
        self.on_disconnect()
        for task in list(self._tasks):
            task.cancel()
        self._db.shutdown(wait=True)
        await asyncio.get_running_loop().run_in_executor(None, self.durable.stop)

    async def _spool_loop(self) -> None:
        while True:
            try:
                n = await self.in_db(lambda: drain(self.settings.spool_dir, self._ingest,
                                                   committed=self.durable.wait_journaled))
                if n:
                    log.info("ingested %d fallback call(s) from the spool", n)
            except Exception:
                log.exception("fallback spool ingest failed; will retry")
            await asyncio.sleep(SPOOL_INTERVAL)

    def _ingest(self, record: calllog.FallbackRecord) -> None:
        self.log(logops.fallback_entry(record))

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
        is_desk = ids.is_desk_leg(channel.id)
        match ev.type:
            case "StasisStart" if is_desk or (ev.args[:1] == ["desk"]):
                if not self._post(channel.id, DeskAnswered(channel.id)):
                    log.warning("desk leg %s has no call; hanging it up", channel.id)
                    self.spawn(self.client.hangup(channel.id))
            case "StasisStart" if ev.args[:1] == ["feature"]:
                self.spawn(self._feature(channel.id, channel.name, "".join(ev.args[1:2])))
            case "StasisStart":
                self._start_call(channel.id, channel.caller_number)
            case "ChannelHangupRequest" if (not is_desk and driver_hangup(ev)
                                            and channel.id in self.calls):
                self._driver_hangups.add(channel.id)
            case "StasisEnd" if channel.id in self._driver_hangups:
                pass  # its ChannelDestroyed, a few ms later, carries the cause that decides
            case "ChannelDestroyed" if channel.id in self._driver_hangups:
                self._driver_hangups.discard(channel.id)
                self._post(channel.id, CallerGone(
                    ev.cause, connection_lost=ev.raw.get("cause") == CAUSE_MEDIA_TIMEOUT))
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
        runtime = self.calls.get(ids.caller_channel_of(channel_id))
        if runtime is None:
            return False
        runtime.post(event)
        return True

    def _start_call(self, channel_id: str, caller_number: str) -> None:
        if channel_id in self.calls:
            return
        # a withheld number (anonymous, Restricted, no From user...) is None from here on
        data = CallData(channel_id=channel_id, caller_number=callers.caller_number(caller_number),
                        reference="")
        runtime = CallRuntime(self, data)
        self.calls[channel_id] = runtime
        runtime.task = self.spawn(self._open_and_run(runtime))

    async def _open_and_run(self, runtime: CallRuntime, first: State | None = None) -> None:
        data = runtime.data
        try:
            await self.client.subscribe_channel(data.channel_id)
            if not data.reference:
                data.reference = await self._new_reference(data.channel_id)
                self.log(logops.open_entry(data, data.reference))
        except Exception:
            log.exception("Call %s: could not open the call", data.channel_id)
            await runtime._safe_path()
            return
        await runtime.run(first)

    async def _new_reference(self, channel_id: str) -> str:
        """A reference not yet in the store; with the store away, one drawn at random (a
        clash found on replay is logged as '<reference>-2', see calllog.open_call)."""
        try:
            return await self.in_db(lambda: services.new_reference(self.store))
        except SQLAlchemyError as exc:
            log.warning("Call %s: reference drawn without the database (%s)", channel_id,
                        type(exc).__name__)
            return calllog.random_reference()

    # --- resync after a (re)connect ----------------------------------------------------------

    async def on_connect(self) -> None:
        # live desk availability: device-state changes wake waiting callers. (Not an
        # endpoint subscription: that delivers every event of the desk legs a second time.)
        try:
            await self.client.subscribe([f"deviceState:PJSIP/{d}" for d in self.settings.desks])
        except AriError as exc:
            log.warning("cannot subscribe to desk-phone device states: %s", exc)
        # tells `verifyline lab` that this process, not a predecessor, holds the app's socket
        ready = self.settings.run_dir / "app.ready"
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.write_text(f"{os.getpid()}\n")
        self.spawn(self.resync(await self._asterisk_restarted()))

    async def _asterisk_restarted(self) -> bool:
        """Has Asterisk started afresh since we (or a previous run of the app) last saw it?
        Then calls that are gone died with it, rather than being hung up by someone."""
        seen = self.settings.run_dir / "asterisk.started"
        try:
            info = await self.client.info()
        except AriError as exc:
            log.warning("cannot read Asterisk's start time: %s", exc)
            return False
        started = str((info.get("status") or {}).get("startup_time", ""))
        before = seen.read_text().strip() if seen.exists() else ""
        seen.write_text(started + "\n")
        if before and started and before != started:
            log.warning("Asterisk restarted (up since %s, was %s)", started, before)
            return True
        return False

    def on_disconnect(self) -> None:
        (self.settings.run_dir / "app.ready").unlink(missing_ok=True)

    async def resync(self, asterisk_restarted: bool = False) -> None:
        """Reconcile what we hold with what Asterisk holds: events missed while the socket
        was down are not replayed, and a restarted app must find the calls it already had.
        Calls gone with a restarted Asterisk are closed as ``asterisk_restart``."""
        gone = EndReason.ASTERISK_RESTART if asterisk_restarted else EndReason.LOST
        try:
            live = {c.id for c in await self.client.channels()}
        except AriError as exc:
            log.warning("resync: cannot list channels (%s)", exc)
            return
        for runtime in list(self.calls.values()):
            d = runtime.data
            if d.channel_id not in live:
                runtime.post(Lost(gone) if asterisk_restarted
                             else CallerGone("gone while disconnected"))
                continue
            for leg in {*d.runtime.legs, d.desk_channel_id} - live - {None}:
                runtime.post(DeskGone(str(leg), "gone while disconnected"))

        try:
            left_open = await self.in_db(lambda: services.open_calls(self.store))
        except SQLAlchemyError as exc:
            log.warning("resync: cannot read open calls (%s); calls a previous run had are "
                        "adopted once the database is back", exc)
            self.spawn(self._resync_later(asterisk_restarted))
            return
        for data in left_open:
            if data.channel_id in self.calls:
                continue
            if data.channel_id not in live:
                self.log(logops.close_entry(data.channel_id, gone))
                continue
            try:
                await self._adopt(data, live)
            except Exception:
                log.exception("Call %s: could not adopt it", data.channel_id)

    async def _resync_later(self, asterisk_restarted: bool) -> None:
        await asyncio.sleep(RESYNC_RETRY)
        await self.resync(asterisk_restarted)

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
            # re-evaluate from scratch: drop the desk legs and bridge the old run left behind
            # (the caller stays in their holding bridge, hearing music, and is found there)
            for leg in live:
                if ids.caller_channel_of(leg) == data.channel_id and leg != data.channel_id:
                    made = data.runtime.desk_legs
                    data.runtime.desk_legs = max(made, ids.desk_leg_number(leg) or 0)
                    await self.client.hangup(leg)
            await self.client.destroy_bridge(ids.mixing_bridge(data.channel_id))
            data.desk_channel_id, data.desk, data.bridge_id = None, None, None
            data.answered_at, data.answered_desk = None, None
            first = (Connecting(emergency=FLAG_EMERGENCY in data.flags, resumed=True)
                     if data.roster_result is not None else Collecting(1, True))
        runtime = CallRuntime(self, data)
        self.calls[data.channel_id] = runtime
        runtime.task = self.spawn(self._open_and_run(runtime, first))

    async def _subscribe(self, channel_id: str | None) -> None:
        if channel_id is not None:
            try:
                await self.client.subscribe_channel(channel_id)
            except AriError as exc:
                log.warning("cannot subscribe to %s: %s", channel_id, exc)
