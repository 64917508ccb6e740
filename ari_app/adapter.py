"""The Telephony port implemented over ARI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence

from ari_app.client import AriClient, AriError, AriHttpError, AriNotFound
from ivr.prompts import SOUND_FOLDER
from ivr.telephony import DeskPresence

log = logging.getLogger(__name__)

FALLBACK_CONTEXT = "verifyline-fallback"
DESK_TECH = "PJSIP"
_UNSAFE_CALLER_ID = re.compile(r'[^0-9A-Za-z +*#.\-]')

# A channel is not taken out of its bridge (hung up, or moved into another bridge) while a
# play asked of it is still queued, for at most this long after the play was asked. Asterisk
# plays to a bridged channel by queueing the file on its bridge channel and having the
# channel's Stasis thread wait for it (res_stasis_playback.c play_uri ->
# ast_bridge_channel_queue_playfile_sync). A bridge channel that leaves before it takes that
# frame frees it only when destroyed, and the waiting thread holds a reference to it: the
# thread waits out PLAYBACK_TIMEOUT, 600 s (main/bridge_channel.c), reading nothing, so a
# hang-up does nothing and the desk looks busy for ten minutes. Seen once in CI: the caller
# left as the desk pressed 1, the app read the reference again to the desk and hung it up
# milliseconds later. Once the play is 'playing' the hang-up merely cuts it short.
# The bound is short: a free Stasis thread takes a command within milliseconds, and a play
# still queued after that waits behind an earlier one (plays on a channel run one after the
# other), which no shorter wait than that prompt would see started. A play asked longer ago
# than the bound is not asked about: in 20 benchmark calls traced with `ari set debug`, the
# guard asked Asterisk nothing.
PLAY_START_WAIT = 0.3
PLAY_START_POLL = 0.02
_ASKED_KEPT = 1024  # plays remembered before the old ones are dropped


class AriTelephony:
    """Channel and bridge operations for the call state machine, made through ARI."""

    def __init__(self, client: AriClient,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._clock = clock
        # channel id -> (its last playback asked for, when): see PLAY_START_WAIT
        self._asked: dict[str, tuple[str, float]] = {}

    def _asking_to_play(self, channel_id: str, playback_id: str) -> None:
        at = self._clock()
        if len(self._asked) >= _ASKED_KEPT:  # channels that hung up on their own
            self._asked = {c: a for c, a in self._asked.items()
                           if at - a[1] < PLAY_START_WAIT}
        self._asked[channel_id] = (playback_id, at)

    async def _until_plays_started(self, channel_ids: Sequence[str]) -> None:
        """Wait (bounded) until Asterisk has taken up the last play asked of each channel:
        commands run in order on a channel, so the earlier ones have been too."""
        for channel_id in channel_ids:
            asked = self._asked.pop(channel_id, None)
            if asked is None:
                continue
            playback_id, at = asked
            state: str | None = None
            while self._clock() - at < PLAY_START_WAIT:
                try:
                    state = await self.client.playback_state(playback_id)
                except AriError:
                    state = None  # cannot tell: the hang-up goes now
                    break
                if state != "queued":
                    break
                await asyncio.sleep(PLAY_START_POLL)
            # said only of a play seen still queued at the bound; one asked longer ago was
            # not asked about, so nothing is known of it
            if state == "queued":
                log.info("playback %s on %s: still queued after %.1f s", playback_id,
                         channel_id, PLAY_START_WAIT)

    async def answer(self, channel_id: str) -> None:
        await self.client.answer(channel_id)

    async def play(self, channel_id: str, playback_id: str, prompts: Sequence[str]) -> None:
        # prompts are catalogue names like 'en/greeting'
        self._asking_to_play(channel_id, playback_id)
        await self.client.play(channel_id, playback_id,
                               [f"sound:{SOUND_FOLDER}/{p}" for p in prompts])

    async def play_to_each(self, playbacks: Mapping[str, str], prompts: Sequence[str]) -> None:
        media = [f"sound:{SOUND_FOLDER}/{p}" for p in prompts]

        async def play(channel_id: str, playback_id: str) -> None:
            self._asking_to_play(channel_id, playback_id)
            try:
                await self.client.play(channel_id, playback_id, media)
            except AriHttpError as exc:
                if not isinstance(exc, AriNotFound) and exc.status != 409:
                    raise  # 404 gone, 409 just left the app: its hang-up is on its way
                log.info("playback %s: %s had just hung up (%s)", playback_id, channel_id, exc)

        await asyncio.gather(*(play(c, p) for c, p in playbacks.items()))

    async def stop_playback(self, playback_id: str) -> None:
        await self.client.stop_playback(playback_id)

    async def hold(self, channel_id: str, bridge_id: str) -> None:
        try:
            await self.client.create_bridge(bridge_id, "holding")
            joined = False  # a bridge made just now holds nobody yet
        except AriHttpError as exc:
            if exc.status != 409:  # 409: it exists already (a re-entry, or a restarted app)
                raise
            joined = channel_id in (await self.client.bridge(bridge_id)).channels
        if not joined:  # adding it again would restart the music
            await self._until_plays_started([channel_id])
            await self.client.add_to_bridge(bridge_id, [channel_id])
            await self.client.start_moh(bridge_id)

    async def originate(self, desk: str, channel_id: str, display: str, caller_number: str,
                        timeout: float) -> bool:
        name = _UNSAFE_CALLER_ID.sub("", display)[:60]
        number = _UNSAFE_CALLER_ID.sub("", caller_number)[:40]
        try:
            # an originate naming the app subscribes it to the new channel at once
            # (res/ari/resource_channels.c), so the ChannelDestroyed of a leg that never
            # reaches Stasis (rang out, declined) comes without a subscription request
            await self.client.originate(channel_id, f"{DESK_TECH}/{desk}", "desk",
                                        f'"{name}" <{number}>', int(timeout))
        except AriNotFound:
            log.info("desk %s: leg %s was gone at once", desk, channel_id)
            return False
        except AriError as exc:
            log.warning("desk %s: could not ring (%s)", desk, exc)
            return False
        return True

    async def create_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> bool:
        await self.client.create_bridge(bridge_id)
        try:
            await self._until_plays_started(channel_ids)  # the caller leaves the holding one
            await self.client.add_to_bridge(bridge_id, channel_ids)
        except AriError as exc:
            # a caller or desk who hung up as the supervisor pressed 1: no empty bridge left
            with contextlib.suppress(AriError):
                await self.client.destroy_bridge(bridge_id)
            if isinstance(exc, AriNotFound):
                log.info("bridge %s: a channel was gone (%s)", bridge_id, exc)
                return False
            raise
        return True

    async def record_bridge(self, bridge_id: str, name: str) -> bool:
        try:
            await self.client.record_bridge(bridge_id, name)
        except AriError as exc:
            log.error("recording %s failed: %s", name, exc)
            return False
        return True

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.client.destroy_bridge(bridge_id)

    async def hangup(self, channel_id: str) -> None:
        await self._until_plays_started([channel_id])
        await self.client.hangup(channel_id)

    async def continue_to_fallback(self, channel_id: str) -> None:
        await self.client.continue_in_dialplan(channel_id, FALLBACK_CONTEXT, "s", 1)

    async def desk_presence(self, desks: Sequence[str]) -> dict[str, DeskPresence]:
        wanted = set(desks)
        return {
            e.resource: DeskPresence(registered=e.state == "online", in_use=bool(e.channel_ids))
            for e in await self.client.endpoints(DESK_TECH)
            if e.resource in wanted
        }
