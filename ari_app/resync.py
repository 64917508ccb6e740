"""Resync after every (re)connect: reconcile what the app holds with what Asterisk holds, and
adopt the calls a previous run of the app was handling (ARI replays no missed event)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from ari_app.client import AriError
from ari_app.stasis import EVENTS
from ivr import ids, logops, services
from ivr.callflow import (
    FLAG_EMERGENCY,
    Bridged,
    CallerGone,
    Collecting,
    Connecting,
    DeskGone,
    Lost,
    State,
)
from ivr.entities import CallData
from ivr.models import EndReason

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

RESYNC_RETRY = 2.0


class Resync:
    def __init__(self, line: LineService) -> None:
        self.line = line

    async def on_connect(self) -> None:
        line = self.line
        try:
            await line.client.allow_events(EVENTS)
        except AriError as exc:
            log.warning("cannot set the app's event filter (all events come): %s", exc)
        # live desk availability: device-state changes wake waiting callers. (Not an
        # endpoint subscription: that delivers every event of the desk legs a second time.)
        try:
            await line.client.subscribe([f"deviceState:PJSIP/{d}" for d in line.settings.desks])
        except AriError as exc:
            log.warning("cannot subscribe to desk-phone device states: %s", exc)
        # tells `verifyline lab` that this process, not a predecessor, holds the app's socket
        ready = line.settings.run_dir / "app.ready"
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.write_text(f"{os.getpid()}\n")
        line.spawn(self.resync(await self._asterisk_restarted()))

    async def _asterisk_restarted(self) -> bool:
        """Has Asterisk started afresh since we (or a previous run of the app) last saw it?
        Then calls that are gone died with it, rather than being hung up by someone."""
        line = self.line
        seen = line.settings.run_dir / "asterisk.started"
        try:
            info = await line.client.info()
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

    async def resync(self, asterisk_restarted: bool = False) -> None:
        """Reconcile what we hold with what Asterisk holds: events missed while the socket
        was down are not replayed, and a restarted app must find the calls it already had.
        Calls gone with a restarted Asterisk are closed as ``asterisk_restart``."""
        line = self.line
        gone = EndReason.ASTERISK_RESTART if asterisk_restarted else EndReason.LOST
        try:
            live = {c.id for c in await line.client.channels()}
        except AriError as exc:
            log.warning("resync: cannot list channels (%s)", exc)
            return
        for runtime in list(line.calls.values()):
            d = runtime.data
            if d.channel_id not in live:
                runtime.post(Lost(gone) if asterisk_restarted
                             else CallerGone("gone while disconnected"))
                continue
            for leg in {*d.runtime.legs, d.desk_channel_id} - live - {None}:
                runtime.post(DeskGone(str(leg), "gone while disconnected"))

        try:
            left_open = await line.in_db(lambda: services.open_calls(line.store))
        except SQLAlchemyError as exc:
            log.warning("resync: cannot read open calls (%s); calls a previous run had are "
                        "adopted once the database is back", exc)
            line.spawn(self._resync_later(asterisk_restarted))
            return
        for data in left_open:
            if data.channel_id in line.calls:
                continue
            if data.channel_id not in live:
                line.log(logops.close_entry(data.channel_id, gone))
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
        line = self.line
        log.info("Call %s: adopting (was %s)", data.channel_id, data.state)
        first: State
        if (data.state == "bridged" and data.desk_channel_id in live
                and data.answered_desk is not None):
            first = Bridged()
            line.pool.hold(data.answered_desk, data.channel_id)
            # the call row does not keep whether its outcome is owed: the desk's binding does
            desk = line.pool.status.get(data.answered_desk)
            data.outcome_owed = (line.settings.outcome_required and desk is not None
                                 and desk.console_user is not None)
            await self._subscribe(data.desk_channel_id)
        else:
            # re-evaluate from scratch: drop the desk legs and bridge the old run left behind
            # (the caller stays in their holding bridge, hearing music, and is found there)
            for leg in live:
                if ids.caller_channel_of(leg) == data.channel_id and leg != data.channel_id:
                    made = data.runtime.desk_legs
                    data.runtime.desk_legs = max(made, ids.desk_leg_number(leg) or 0)
                    await line.client.hangup(leg)
            await line.client.destroy_bridge(ids.mixing_bridge(data.channel_id))
            data.desk_channel_id, data.desk, data.bridge_id = None, None, None
            data.answered_at, data.answered_desk = None, None
            first = (Connecting(emergency=FLAG_EMERGENCY in data.flags, resumed=True)
                     if data.roster_result is not None else Collecting(1, True))
        line.start_call(data, first)

    async def _subscribe(self, channel_id: str | None) -> None:
        if channel_id is not None:
            try:
                await self.line.client.subscribe_channel(channel_id)
            except AriError as exc:
                log.warning("cannot subscribe to %s: %s", channel_id, exc)
