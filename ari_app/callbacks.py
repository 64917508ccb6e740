"""Callbacks from a desk (the console's "call back from my desk"): the line claims the
request, rings the desk first and, once its supervisor answers, the caller's number over the
trunk (``VERIFYLINE_TRUNK_URI``); when the number answers the two are bridged and the callback
is done. Each step goes on the original call's timeline (ivr.services.callback_progress)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from ari_app.adapter import DESK_TECH
from ari_app.client import AriError, AriEvent
from ivr import ids, services
from ivr.desks import CallbackJob

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

TRUNK_ENDPOINT = "trunk"
_DIALLABLE = re.compile(r"[^0-9+*#]")


@dataclass
class _Leg:
    channel_id: str
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    gone: asyncio.Event = field(default_factory=asyncio.Event)


def trunk_dial(trunk_uri: str, number: str) -> str:
    """``PJSIP/trunk/sip:<number>@host:port``: the trunk endpoint, to an explicit URI."""
    host = trunk_uri.removeprefix("sip:")
    return f"{DESK_TECH}/{TRUNK_ENDPOINT}/sip:{_DIALLABLE.sub('', number)}@{host}"


class Callbacks:
    def __init__(self, line: LineService) -> None:
        self.line = line
        self._legs: dict[str, _Leg] = {}

    def owns(self, channel_id: str) -> bool:
        """A leg of a callback in progress (never debris for the sweeper)."""
        return channel_id in self._legs

    async def poll(self) -> None:
        line = self.line
        try:
            jobs = await line.in_db(lambda: services.claim_callbacks(line.store,
                                                                     line.settings.desks))
        except SQLAlchemyError as exc:
            log.debug("reading callback requests failed (%s); will retry", exc)
            return
        for job in jobs:
            line.spawn(self._run(job))

    def on_event(self, ev: AriEvent) -> None:
        """StasisStart: the leg answered; StasisEnd/ChannelDestroyed: it is gone."""
        channel = ev.channel
        leg = self._legs.get(channel.id) if channel is not None else None
        if leg is None:
            return
        if ev.type == "StasisStart":
            leg.answered.set()
        elif ev.type in ("StasisEnd", "ChannelDestroyed"):
            leg.gone.set()

    async def _progress(self, job: CallbackJob, kind: str, result: str | None = None) -> None:
        try:
            await self.line.in_db(lambda: services.callback_progress(
                self.line.store, job.command_id, kind, result))
        except SQLAlchemyError:
            log.exception("callback %d: could not log %s", job.command_id, kind)

    async def _ring(self, leg: _Leg, endpoint: str, caller_id: str, args: str) -> bool:
        """Originate a leg and wait until it answers (True) or goes (False)."""
        timeout = self.line.settings.ring_timeout
        try:
            await self.line.client.originate(leg.channel_id, endpoint, args, caller_id,
                                             int(timeout))
            await self.line.client.subscribe_channel(leg.channel_id)
        except AriError as exc:
            log.warning("callback: cannot ring %s (%s)", endpoint, exc)
            return False
        answered = asyncio.ensure_future(leg.answered.wait())
        gone = asyncio.ensure_future(leg.gone.wait())
        await asyncio.wait({answered, gone}, timeout=timeout + 5,
                           return_when=asyncio.FIRST_COMPLETED)
        answered.cancel()
        gone.cancel()
        return leg.answered.is_set() and not leg.gone.is_set()

    async def _run(self, job: CallbackJob) -> None:
        line, cid = self.line, job.command_id
        desk = _Leg(ids.callback_channel(cid, "supervisor"))
        number = _Leg(ids.callback_channel(cid, "number"))
        bridge = ids.callback_channel(cid, "talk")
        self._legs[desk.channel_id] = desk
        self._legs[number.channel_id] = number
        bridged = False
        try:
            if job.number is None:
                await self._progress(job, "callback_failed", "withheld")
                return
            await self._progress(job, "callback_placed")
            # the desk's display shows which caller it is about to call back
            shown = f'"Callback ref {job.reference}" <{job.reference}>'
            if not await self._ring(desk, f"{DESK_TECH}/{job.desk}", shown,
                                    f"callback,{cid},supervisor"):
                await self._progress(job, "callback_failed", "desk_no_answer")
                return
            dial = trunk_dial(line.settings.trunk_uri, job.number)
            line_id = f'"Verify Line" <{line.settings.line_number}>'
            if not await self._ring(number, dial, line_id, f"callback,{cid},number"):
                await self._progress(job, "callback_failed", "no_answer")
                return
            await line.client.create_bridge(bridge)
            bridged = True
            await line.client.add_to_bridge(bridge, [desk.channel_id, number.channel_id])
            await self._progress(job, "callback_answered", "answered")
            gone_desk = asyncio.ensure_future(desk.gone.wait())
            gone_number = asyncio.ensure_future(number.gone.wait())
            await asyncio.wait({gone_desk, gone_number}, return_when=asyncio.FIRST_COMPLETED)
            gone_desk.cancel()
            gone_number.cancel()
        except AriError as exc:
            log.warning("callback %d failed: %s", cid, exc)
            await self._progress(job, "callback_failed", "error")
        finally:
            for leg in (desk, number):
                if not leg.gone.is_set():
                    with contextlib.suppress(AriError):
                        await line.client.hangup(leg.channel_id)
            if bridged:
                with contextlib.suppress(AriError):
                    await line.client.destroy_bridge(bridge)
            self._legs.pop(desk.channel_id, None)
            self._legs.pop(number.channel_id, None)
