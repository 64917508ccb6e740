"""Debris after faults: empty bridges and channels in the app that no call owns.

Crashes and dropped sockets can leave a bridge whose channels are all gone (its owner died
before destroying it) or a channel in the app that no call knows (its StasisStart came while
nobody listened). The sweeper cleans them up — but only after it has seen the same thing, in
the same shape, for a grace period, so a bridge being set up (empty for a few milliseconds) or a
channel whose event is still on its way is never touched. A caller nobody knows is never hung
up on: they are handed to the dialplan fallback, which rings the desks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from ari_app.client import Bridge, Channel
from ivr import ids

Action = Literal["destroy_bridge", "hangup", "to_fallback"]


@dataclass(frozen=True)
class Debris:
    action: Action
    resource_id: str
    why: str
    seen_for: float


class Sweeper:
    """Decides what to clean up; the service carries it out and logs it."""

    def __init__(self, app: str, grace: float) -> None:
        self.app = app
        self.grace = grace
        self._first_seen: dict[tuple[Action, str], float] = {}

    def _ours(self, channel: Channel) -> bool:
        return (channel.dialplan_app.lower() == "stasis"
                and channel.dialplan_app_data.split(",", 1)[0] == self.app)

    def sweep(self, bridges: Iterable[Bridge], channels: Iterable[Channel],
              known: Callable[[str], bool], at: float,
              live_call: Callable[[str], bool] = lambda _: False) -> list[Debris]:
        """What has looked like debris for at least the grace period, as of ``at``
        (monotonic seconds). Call it regularly; it remembers what it saw before.

        ``known(channel id)``: a call owns the channel. ``live_call(caller channel id)``: that
        call is still in progress — its bridges are never touched, even empty (a channel
        joins a bridge asynchronously: measured over 2 s behind a prompt being stopped)."""
        suspects: dict[tuple[Action, str], str] = {}
        for bridge in bridges:
            owner = ids.call_of_bridge(bridge.id)
            if not bridge.channels and owner is not None and not live_call(owner):
                suspects[("destroy_bridge", bridge.id)] = "empty bridge"
        for channel in channels:
            if not self._ours(channel) or known(channel.id):
                continue
            if ids.is_desk_leg(channel.id):
                suspects[("hangup", channel.id)] = "desk leg of no call"
            else:
                suspects[("to_fallback", channel.id)] = "caller in the app with no call"
        self._first_seen = {k: self._first_seen.get(k, at) for k in suspects}
        return [Debris(action, rid, suspects[(action, rid)], at - first)
                for (action, rid), first in self._first_seen.items()
                if at - first >= self.grace]

    def done(self, debris: Debris) -> None:
        self._first_seen.pop((debris.action, debris.resource_id), None)
