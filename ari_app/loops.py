"""The app's background loops: availability changes made elsewhere, the in-memory roster
copy, the fallback spool, and the sweeper of debris in Asterisk."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from ari_app.client import AriError
from ivr import calllog, ids, logops, services
from ivr.clock import now
from ivr.spool import drain

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

AVAILABILITY_INTERVAL = 1.0
SPOOL_INTERVAL = 2.0
ROSTER_COPY_INTERVAL = 30.0  # how old the in-memory roster may be when the database goes


class Background:
    def __init__(self, line: LineService) -> None:
        self.line = line

    def start(self) -> None:
        line = self.line
        line.spawn(self._spool_loop())
        line.spawn(self._availability_loop())
        line.spawn(self._roster_loop())
        line.spawn(self._sweep_loop())

    async def _availability_loop(self) -> None:
        """Pick up pause/sign-out changes made by the CLI, the console or feature codes."""
        line = self.line
        while True:
            try:
                rows = await line.in_db(lambda: services.availability(line.store))
                changed = [d for d, r in rows.items()
                           if line.pool.set_availability(d, r.paused, r.signed_out)]
                freed = [d for d, r in rows.items() if line.pool.set_console(
                    d, r.console_user, r.wrapup_channel, r.last_channel)]
                if changed:
                    log.info("availability changed: %s", ", ".join(changed))
                if freed:
                    log.info("outcome given, back in service: %s", ", ".join(freed))
                if changed or freed:
                    line.wake_waiting()
            except SQLAlchemyError as exc:
                # the database is away: keep what we knew (feature codes still apply)
                log.debug("reading supervisor availability failed (%s); will retry", exc)
            except Exception:
                log.exception("reading supervisor availability failed; will retry")
            await self._desk_states()
            await line.callbacks.poll()
            await asyncio.sleep(AVAILABILITY_INTERVAL)

    async def _desk_states(self) -> None:
        """Each desk's shown state, with what the switch says now (a phone that went away)."""
        line = self.line
        try:
            presence = await line.tel.desk_presence(line.settings.desks)
        except AriError as exc:
            log.debug("reading desk presence failed (%s)", exc)
            return
        line.publish_desk_states(presence)

    async def _roster_loop(self) -> None:
        """Keep an in-memory copy of the roster for lookups while the database is away."""
        line = self.line
        while True:
            try:
                officers = await line.in_bulk_db(lambda: services.roster_cards(line.store))
                line.roster_copy.replace(officers, now())
            except SQLAlchemyError as exc:
                log.debug("reading the roster failed (%s); keeping the copy", exc)
            except Exception:
                log.exception("reading the roster failed; will retry")
            await asyncio.sleep(ROSTER_COPY_INTERVAL)

    async def _spool_loop(self) -> None:
        line = self.line
        while True:
            try:
                n = await line.in_db(lambda: drain(line.settings.spool_dir, self._ingest,
                                                   committed=line.durable.wait_journaled))
                if n:
                    log.info("ingested %d fallback call(s) from the spool", n)
            except Exception:
                log.exception("fallback spool ingest failed; will retry")
            await asyncio.sleep(SPOOL_INTERVAL)

    def _ingest(self, record: calllog.FallbackRecord) -> None:
        self.line.log(logops.fallback_entry(record))

    # --- debris ----------------------------------------------------------------------------

    def _known(self, channel_id: str) -> bool:
        """Does a call of ours (or a feature code) own this channel?"""
        line = self.line
        if channel_id in line.features.serving or line.callbacks.owns(channel_id):
            return True
        runtime = line.calls.get(ids.caller_channel_of(channel_id))
        if runtime is None:
            return False
        d = runtime.data
        return channel_id in (d.channel_id, d.desk_channel_id) or channel_id in d.runtime.legs

    def _live(self, caller_channel_id: str) -> bool:
        """Is this call still in progress (not ended)?"""
        runtime = self.line.calls.get(caller_channel_id)
        return runtime is not None and not runtime.call.ended

    async def _sweep_loop(self) -> None:
        line = self.line
        interval = max(0.5, line.settings.sweep_grace / 2)
        while True:
            await asyncio.sleep(interval)
            if not line.stream.connected.is_set():
                continue  # what we know is stale until the resync
            try:
                await self.sweep()
            except AriError as exc:
                log.warning("sweeper: %s", exc)
            except Exception:
                log.exception("sweeper failed; will retry")

    async def sweep(self) -> None:
        line = self.line
        bridges, channels = await line.client.bridges(), await line.client.channels()
        for debris in line.sweeper.sweep(bridges, channels, self._known,
                                         asyncio.get_running_loop().time(), self._live):
            log.warning("sweeper: %s %s (%s for %.0f s)", debris.action.replace("_", " "),
                        debris.resource_id, debris.why, debris.seen_for)
            if debris.action == "destroy_bridge":
                await line.client.destroy_bridge(debris.resource_id)
            elif debris.action == "hangup":
                await line.client.hangup(debris.resource_id)
            else:  # a caller: never hung up on; the dialplan fallback rings the desks
                await line.tel.continue_to_fallback(debris.resource_id)
            line.sweeper.done(debris)
