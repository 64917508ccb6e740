"""The Stasis router: every ARI event of the app goes to the call it belongs to.

A caller's StasisStart opens a call, a desk leg's goes to the call that rang it, a feature code
to the feature codes; keys, playbacks and hang-ups become the state machine's events. How
Asterisk 22 ends a caller its RTP timeout found silent (res_pjsip_sdp_rtp, measured in
tests/e2e/test_found_outside_rtp.py): ChannelHangupRequest with soft=true and cause 1
(AST_SOFTHANGUP_DEV: the channel driver's own request), StasisEnd, then ChannelDestroyed with
cause 44 (AST_CAUSE_REQUESTED_CHAN_UNAVAIL). A BYE is a hard request carrying a Q.850 cause;
the app's own hang-up is soft with cause 32 (AST_SOFTHANGUP_EXPLICIT).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ari_app.client import AriEvent
from ivr import callers, ids
from ivr.callflow import (
    CallerGone,
    DeskAnswered,
    DeskDtmf,
    DeskGone,
    Dtmf,
    Event,
    PlaybackDone,
)
from ivr.entities import CallData

if TYPE_CHECKING:
    from ari_app.service import LineService

log = logging.getLogger(__name__)

SOFTHANGUP_DEV = 1
CAUSE_MEDIA_TIMEOUT = 44

# the only event types the app acts on (here, in ari_app.callbacks and ari_app.features):
# Asterisk is told to send no other (the event filter, set on every connect). About half of
# what it sent before were ChannelVarset events nobody read.
EVENTS = ("StasisStart", "StasisEnd", "ChannelHangupRequest", "ChannelDestroyed",
          "ChannelDtmfReceived", "PlaybackFinished", "DeviceStateChanged",
          "EndpointStateChange", "RESTResponse")


def driver_hangup(ev: AriEvent) -> bool:
    """A hang-up the channel driver asked for itself (not the far end's BYE, not ours)."""
    return ev.raw.get("soft") is True and ev.raw.get("cause") == SOFTHANGUP_DEV


class StasisRouter:
    """Routes the app's events; never decides anything about a call itself."""

    def __init__(self, line: LineService) -> None:
        self.line = line
        # caller channels the channel driver itself asked to hang up, until their
        # ChannelDestroyed tells whether it was the RTP timeout
        self._driver_hangups: set[str] = set()

    async def on_event(self, ev: AriEvent) -> None:
        line = self.line
        channel = ev.channel
        if ev.type == "PlaybackFinished":
            self.post(ev.playback_target, PlaybackDone(ev.playback_id))
            return
        if ev.type in ("EndpointStateChange", "DeviceStateChanged"):
            line.wake_waiting(ev.desk)  # a desk registered or came free
            return
        if channel is None:
            return
        if ids.is_callback(channel.id):
            line.callbacks.on_event(ev)  # a callback from a desk (ari_app.callbacks)
            return
        is_desk = ids.is_desk_leg(channel.id)
        match ev.type:
            case "StasisStart" if is_desk or (ev.args[:1] == ["desk"]):
                if not self.post(channel.id, DeskAnswered(channel.id)):
                    log.warning("desk leg %s has no call; hanging it up", channel.id)
                    line.spawn(line.client.hangup(channel.id))
            case "StasisStart" if ev.args[:1] == ["feature"]:
                line.spawn(line.features.serve(channel.id, channel.name,
                                               "".join(ev.args[1:2])))
            case "StasisStart":
                if channel.id not in line.calls:
                    # a withheld number (anonymous, Restricted, no From user...) is None
                    line.start_call(CallData(
                        channel_id=channel.id, reference="",
                        caller_number=callers.caller_number(channel.caller_number)))
            case "ChannelHangupRequest" if (not is_desk and driver_hangup(ev)
                                            and channel.id in line.calls):
                self._driver_hangups.add(channel.id)
            case "StasisEnd" if channel.id in self._driver_hangups:
                pass  # its ChannelDestroyed, a few ms later, carries the cause that decides
            case "ChannelDestroyed" if channel.id in self._driver_hangups:
                self._driver_hangups.discard(channel.id)
                self.post(channel.id, CallerGone(
                    ev.cause, connection_lost=ev.raw.get("cause") == CAUSE_MEDIA_TIMEOUT))
            case "StasisEnd" | "ChannelDestroyed":
                self.post(channel.id, DeskGone(channel.id, ev.cause) if is_desk
                          else CallerGone(ev.cause))
            case "ChannelDtmfReceived" if is_desk:
                self.post(channel.id, DeskDtmf(channel.id, ev.digit))
            case "ChannelDtmfReceived":
                self.post(channel.id, Dtmf(ev.digit))
            case _:
                pass

    def post(self, channel_id: str, event: Event) -> bool:
        """Hand an event to the call owning this channel (a caller's or one of its legs)."""
        runtime = self.line.calls.get(ids.caller_channel_of(channel_id))
        if runtime is None:
            return False
        runtime.post(event)
        return True
