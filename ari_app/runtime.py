"""One call's runtime in the ARI app: its task, its event queue, its timers, and the domain
services bound to it.

Every call runs in its own asyncio task fed by its own queue, so events for a call are handled
in order and one call's failure never touches another. An unexpected error in a call sends
the caller down the dialplan fallback (which rings the desks natively) instead of silence.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from ari_app.client import AriError, AriNotFound, AriUnavailable
from ivr import calllog, logops, services
from ivr.callflow import Bridged, Call, CallContext, Event, State, TimerFired
from ivr.clock import iso, now
from ivr.entities import CallData
from ivr.logs import CALL_ID
from ivr.metrics import METRICS
from ivr.telephony import LookupResult, Timer

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

LINGER_SECONDS = 30.0  # keep an ended call around to absorb its late events


class _Fired:
    __slots__ = ("key", "name", "token")

    def __init__(self, name: Timer, key: str, token: int) -> None:
        self.name, self.key, self.token = name, key, token


class LoopTimers:
    """Timers on the event loop that post into a call's queue; a timer cancelled or restarted
    after it fired but before its event was handled is dropped, never delivered stale."""

    def __init__(self, queue: asyncio.Queue[Event | _Fired]) -> None:
        self._queue = queue
        self._handles: dict[tuple[Timer, str], asyncio.TimerHandle] = {}
        self._live: dict[tuple[Timer, str], int] = {}
        self._next = 0

    def start(self, name: Timer, seconds: float, key: str = "") -> None:
        self.cancel(name, key)
        self._next += 1
        token = self._next
        self._live[name, key] = token
        self._handles[name, key] = asyncio.get_running_loop().call_later(
            seconds, self._queue.put_nowait, _Fired(name, key, token))

    def cancel(self, name: Timer, key: str = "") -> None:
        handle = self._handles.pop((name, key), None)
        if handle is not None:
            handle.cancel()
        self._live.pop((name, key), None)

    def cancel_all(self) -> None:
        for name, key in list(self._handles):
            self.cancel(name, key)

    def accept(self, fired: _Fired) -> TimerFired | None:
        which = (fired.name, fired.key)
        if self._live.get(which) != fired.token:
            return None
        self._live.pop(which)
        self._handles.pop(which, None)
        return TimerFired(fired.name, fired.key)


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
        if not self.line.pool.my_turn(call_key):
            return []  # every waiting caller is woken when a desk may be free: one reads
        try:
            presence = await self.line.tel.desk_presence(self.line.settings.desks)
        except AriError as exc:
            log.warning("Call %s: cannot read desk states (%s)", call_key, exc)
            return []
        taken = self.line.pool.reserve(presence, call_key, exclude, every=every)
        self.line.remember_presence(presence)
        if taken:
            self.line.publish_desk_states(desks=taken)
            # whoever looked while this pick was under way was told to wait: their turn now
            self.line.wake_next()
        return taken

    def release_desk(self, desk: str, talked: bool) -> None:
        if talked and self.data.outcome_owed:
            self.line.pool.owe_outcome(desk, self.data.channel_id)
        self.line.release_desk(desk, talked, self.data.channel_id)

    def join_queue(self, emergency: bool) -> int:
        self.line.pool.join(self.data.channel_id, emergency)
        METRICS.queue_joined(self.data.channel_id)
        return self.line.pool.position(self.data.channel_id)

    def leave_queue(self) -> None:
        self.line.pool.leave(self.data.channel_id)
        METRICS.queue_left(self.data.channel_id)
        if self.data.desk is not None:  # bridged with it: shown talking now
            self.line.publish_desk_states(desks=(self.data.desk,))

    def queue_position(self) -> int:
        return self.line.pool.position(self.data.channel_id)

    def desk_answered(self, desk: str) -> None:
        line = self.line
        line.pool.answered(desk)
        # a desk held on the console owes the call's outcome once it ends
        st = line.pool.status.get(desk)
        self.data.outcome_owed = (line.settings.outcome_required and st is not None
                                  and st.console_user is not None)
        line.publish_desk_states(desks=(desk,))

    def desk_not_answered(self, desk: str) -> None:
        if self.line.pool.no_answer(desk):
            self._auto_paused(desk)

    def desk_failed(self, desk: str, counts: bool) -> None:
        paused, rest_until = self.line.pool.failed(desk, counts)
        if paused:
            self._auto_paused(desk)
        if rest_until is not None:
            # when the rest is over the desk may be offered again: wake whoever waits
            self.line.wake_at(rest_until, desk)

    def _auto_paused(self, desk: str) -> None:
        log.warning("desk %s paused after %d unanswered calls in a row", desk,
                    self.line.pool.auto_pause_after)
        self.record("desk_auto_paused", {"desk": desk})
        self.line.log(logops.availability_entry(desk, True, False, "no_answer"))

    async def anyone_signed_in(self) -> bool:
        # asked by every waiting caller each time it is woken and finds no desk: what the
        # switch said at the last read (every second, and at every pick) answers it
        presence = self.line.last_presence
        if not presence:
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
        # this task's log lines carry the call's id (ivr.logs; the task has its own context)
        CALL_ID.set(self.data.channel_id)
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

    async def open_and_run(self, first: State | None = None) -> None:
        """Open the call in the log (its reference drawn), then run it to its end."""
        data = self.data
        CALL_ID.set(data.channel_id)
        try:
            await self.line.client.subscribe_channel(data.channel_id)
            if not data.reference:
                data.reference = await self._new_reference()
                self.line.log(logops.open_entry(data, data.reference))
        except Exception:
            log.exception("Call %s: could not open the call", data.channel_id)
            await self._safe_path()
            return
        await self.run(first)

    async def _new_reference(self) -> str:
        """A reference not yet in the store; with the store away, one drawn at random (a
        clash found on replay is logged as '<reference>-2', see calllog.open_call)."""
        try:
            return await self.line.in_db(lambda: services.new_reference(self.line.store))
        except SQLAlchemyError as exc:
            log.warning("Call %s: reference drawn without the database (%s)",
                        self.data.channel_id, type(exc).__name__)
            return calllog.random_reference()

    async def _safe_path(self) -> None:
        """A bug must never leave a caller in silence: hand them to the dialplan fallback."""
        if isinstance(self.call.state, Bridged):
            return  # already talking to a supervisor; leave them be
        # every desk leg not in a conversation: ringing, or answered and hearing the whisper
        # (left up, that desk phone would stay busy on nothing until the sweeper came)
        unanswered = list(self.data.runtime.legs)
        if self.data.desk_channel_id is not None:
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
