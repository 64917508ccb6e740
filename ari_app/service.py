"""The line as an ARI application: the wiring of its rooms.

- :mod:`ari_app.stasis`: the Stasis router (every event to the call it belongs to);
- :mod:`ari_app.runtime`: one task, queue and timers per call, and its safe path;
- :mod:`ari_app.resync`: reconcile and adopt calls after every (re)connect;
- :mod:`ari_app.features`: feature codes from desk phones;
- :mod:`ari_app.loops`: availability, roster copy, fallback spool, sweeper.

The decisions are the domain's (:mod:`ivr.callflow`, :mod:`ivr.services`); the writes go
straight down to the journal (:meth:`LineService.log`). Database reads run on one thread of
their own so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from ari_app.adapter import AriTelephony
from ari_app.callbacks import Callbacks
from ari_app.client import AriClient, AriEvent, EventStream
from ari_app.features import FeatureCodes
from ari_app.loops import Background
from ari_app.resync import Resync
from ari_app.runtime import CallRuntime
from ari_app.stasis import StasisRouter
from ari_app.sweeper import Sweeper
from ivr import logops, roster, services
from ivr.callflow import State, Wake
from ivr.clock import now
from ivr.config import Settings
from ivr.desks import desk_state
from ivr.entities import CallData
from ivr.journal import DurableLog, Journal
from ivr.metrics import METRICS
from ivr.models import CallPath
from ivr.store import Store
from ivr.supervisors import DeskPool
from ivr.telephony import DeskPresence

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        self._db = ThreadPoolExecutor(1, thread_name_prefix="verifyline-db")  # reads
        # the whole roster, for its in-memory copy: a read that grows with the roster
        # (seconds at 200,000 officers) must not hold up a caller's lookup queued behind it
        self._bulk_db = ThreadPoolExecutor(1, thread_name_prefix="verifyline-db-bulk")
        self.durable = DurableLog(Journal(services.journal_path(settings)), store, logops.CODEC)
        METRICS.watch_journal(lambda: self.durable.pending)
        self.roster_copy = roster.RosterCopy()
        self.sweeper = Sweeper(settings.app_name, settings.sweep_grace)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.router = StasisRouter(self)
        self.features = FeatureCodes(self)
        self.callbacks = Callbacks(self)
        self._presence: dict[str, DeskPresence] = {}  # as last read from the switch
        self._shown: dict[str, str] = {}  # each desk's state as last journaled
        self.background = Background(self)
        self.resyncer = Resync(self)
        self.stream = EventStream(settings.ari_url, settings.ari_user, settings.ari_password,
                                  settings.app_name, self.on_event, self.on_connect,
                                  self.on_disconnect, rest=client)

    # --- plumbing ------------------------------------------------------------------------

    async def in_db(self, work: Callable[[], T]) -> T:
        """Read from the database on a thread of its own, so the event loop never waits on it
        (writes go through :meth:`log`)."""
        return await asyncio.get_running_loop().run_in_executor(self._db, _counted(work))

    async def in_bulk_db(self, work: Callable[[], T]) -> T:
        """A long read (the whole roster) on a thread of its own: the reads of calls in
        progress (:meth:`in_db`) never wait for it."""
        return await asyncio.get_running_loop().run_in_executor(self._bulk_db, _counted(work))

    def log(self, entry: logops.Operation) -> None:
        """A call-log write: journaled (fsync'd) first, then applied to the database, in order
        and exactly once, also when the database is away for a while (see ivr.journal)."""
        self.durable.submit(entry)
        _observe(entry)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def start_call(self, data: CallData, first: State | None = None) -> None:
        """Run a call in a task of its own: a new caller from the greeting, an adopted one
        from ``first``."""
        runtime = CallRuntime(self, data)
        self.calls[data.channel_id] = runtime
        runtime.task = self.spawn(runtime.open_and_run(first))

    def forget(self, channel_id: str) -> None:
        self.calls.pop(channel_id, None)

    # --- desks ---------------------------------------------------------------------------

    def release_desk(self, desk: str, talked: bool, call_key: str) -> None:
        back_at = self.pool.release(desk, talked, call_key=call_key)
        if back_at is not None:
            self.wake_at(back_at, desk)
        self.wake_waiting(desk)

    def wake_at(self, when: datetime, desk: str | None = None) -> None:
        """Wake waiting callers when a desk's wrap-up or rest is over."""
        delay = max(0.0, (when - now()).total_seconds())
        asyncio.get_running_loop().call_later(delay, self.wake_waiting, desk)

    def wake_waiting(self, desk: str | None = None) -> None:
        """A desk (``desk``, or any) may be free: let waiting callers try again,
        longest-waiting first."""
        self.publish_desk_states(desks=None if desk is None else (desk,))
        for key in self.pool.waiting():
            runtime = self.calls.get(key)
            if runtime is not None:
                runtime.post(Wake())

    def wake_next(self) -> None:
        """The caller whose turn it now is may take a desk: wake them. (Not waiting for the
        desk's device state: at 15 calls/s those came seconds late, and callers who had
        looked out of turn waited for them, or for their 2 s retry, in a chain.)"""
        key = self.pool.first_unserved()
        runtime = self.calls.get(key) if key is not None else None
        if runtime is not None:
            runtime.post(Wake())

    @property
    def last_presence(self) -> Mapping[str, DeskPresence]:
        """The desks' presence as the switch last said it (empty: not read yet)."""
        return self._presence

    def remember_presence(self, presence: Mapping[str, DeskPresence]) -> None:
        self._presence = dict(presence)

    def publish_desk_states(self, presence: Mapping[str, DeskPresence] | None = None,
                            desks: Iterable[str] | None = None) -> None:
        """Journal each desk's shown state where it changed (ivr.desks.desk_state decides).
        Without ``presence`` (a call event), what the switch said last; its ``in_use`` is
        not trusted then (a phone just hung up may still look in use). ``desks``: only
        these changed (a call event's desk); the others are looked at every second
        (ari_app.loops), as looking at each desk at each call event cost ~3 ms a call."""
        fresh = presence is not None
        if presence is not None:
            self.remember_presence(presence)
        if not self._presence:
            return  # nothing known about the phones yet
        at = now()
        for desk in self.settings.desks if desks is None else desks:
            if desk not in self.pool.status:
                continue  # not one of ours (a device state of another phone)
            p = self._presence.get(desk)
            key = self.pool.reserved_for(desk)
            runtime = self.calls.get(key) if key is not None else None
            talking = (runtime is not None and not runtime.call.ended
                       and runtime.data.desk == desk and runtime.data.answered_at is not None)
            st = self.pool.status[desk]
            state = desk_state(
                registered=p is not None and p.registered,
                in_use=fresh and p is not None and p.in_use and key is None,
                ringing=key is not None and not talking, talking=talking,
                wrap_up=self.pool.wrapping_up(desk, at), paused=st.paused,
                signed_out=st.signed_out).value
            if self._shown.get(desk) != state:
                self._shown[desk] = state
                METRICS.desk_state(desk, state)
                self.log(logops.desk_state_entry(desk, state, at))

    # --- life cycle ------------------------------------------------------------------------

    async def prepare(self) -> None:
        self.durable.start()  # replays whatever an earlier run left in the journal
        idle = await self.in_db(lambda: services.prepare_store(self.store, self.settings.desks))
        self.pool = DeskPool(self.settings.desks, idle, self.settings.wrap_up,
                             self.settings.auto_pause_after)
        for desk, row in (await self.in_db(lambda: services.availability(self.store))).items():
            self.pool.set_availability(desk, row.paused, row.signed_out)
            # a desk that owed an outcome when the last run stopped still owes it
            self.pool.set_console(desk, row.console_user, row.wrapup_channel, row.last_channel)
        # calls an earlier run left open must be in the database before resync reads them
        await asyncio.get_running_loop().run_in_executor(None, self.durable.flush)

    async def run(self) -> None:
        await self.prepare()
        self.background.start()
        await self.stream.run()

    async def stop(self) -> None:
        await self.stream.stop()
        self.on_disconnect()
        for task in list(self._tasks):
            task.cancel()
        self._db.shutdown(wait=True)
        self._bulk_db.shutdown(wait=True)
        await asyncio.get_running_loop().run_in_executor(None, self.durable.stop)

    # --- the event stream's callbacks ------------------------------------------------------

    async def on_event(self, ev: AriEvent) -> None:
        await self.router.on_event(ev)

    async def on_connect(self) -> None:
        await self.resyncer.on_connect()

    def on_disconnect(self) -> None:
        (self.settings.run_dir / "app.ready").unlink(missing_ok=True)

    async def sweep(self) -> None:
        await self.background.sweep()

    async def resync(self, asterisk_restarted: bool = False) -> None:
        await self.resyncer.resync(asterisk_restarted)


def _counted(work: Callable[[], T]) -> Callable[[], T]:
    """``work``, with a database error counted (ivr.metrics) before it goes on up."""
    def run() -> T:
        try:
            return work()
        except SQLAlchemyError:
            METRICS.db_error("read")
            raise
    return run


def _observe(entry: logops.Operation) -> None:
    """What a call-log write says to the metrics: a call ended (its own hang-up, closed on
    resync, or taken by the dialplan fallback), a caller bridged."""
    if isinstance(entry, logops.SaveCall):
        d = entry.data
        if entry.kind == "ended" and d.end_reason is not None:
            METRICS.call_ended(d.roster_result.value if d.roster_result else None,
                              CallPath.ARI.value, d.end_reason.value)
        elif entry.kind == "bridged":
            waited = entry.detail.get("waited_s")
            METRICS.bridged(float(waited) if isinstance(waited, int | float) else None,
                            (entry.at - d.started_at).total_seconds())
    elif isinstance(entry, logops.CloseCall):
        METRICS.call_ended(None, CallPath.ARI.value, entry.reason.value)
    elif isinstance(entry, logops.IngestFallback):
        # the fallback consults no roster: calllog.ingest_fallback logs none_entered
        METRICS.call_ended("none_entered", CallPath.FALLBACK.value,
                           entry.record.end_reason.value)
