"""Feature codes dialled from a desk phone: *51 pause, *52 available, *53 sign out, *54 sign
in (the dialplan sends them to the app as Stasis(verifyline,feature,<action>))."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ivr import logops, services

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

FEATURE_PROMPT_SECONDS = 3.0


class FeatureCodes:
    def __init__(self, line: LineService) -> None:
        self.line = line
        self.serving: set[str] = set()  # feature-code channels being served

    async def serve(self, channel_id: str, channel_name: str, action: str) -> None:
        """Apply the code for the desk that dialled it and tell them the new state."""
        line = self.line
        desk = channel_name.split("/", 1)[-1].rsplit("-", 1)[0]
        paused, signed_out = services.AVAILABILITY.get(action, (None, None))
        self.serving.add(channel_id)
        try:
            await line.client.answer(channel_id)
            if paused is None or desk not in line.settings.desks:
                log.warning("feature %r from %s refused", action, channel_name)
            else:
                line.log(logops.availability_entry(desk, paused, bool(signed_out), action))
                line.pool.set_availability(desk, paused, bool(signed_out))
                log.info("desk %s: %s (feature code)", desk, action)
                if not paused:
                    line.wake_waiting()
                word = "paused" if paused else "available"
                await line.client.play(channel_id, f"{channel_id}-feature",
                                       [f"sound:verifyline/en/{word}"])
                await asyncio.sleep(FEATURE_PROMPT_SECONDS)
        finally:
            self.serving.discard(channel_id)
            await line.client.hangup(channel_id)
