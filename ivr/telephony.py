"""Ports between the call state machine and the outside world.

The ARI adapter implements :class:`Telephony`; unit tests use a recording fake. The call's
runtime implements :class:`Timers`; the service layer implements :class:`CallServices`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ivr.models import RosterResult


@dataclass(frozen=True)
class DeskPresence:
    """What the switch says about one desk phone right now."""

    registered: bool
    in_use: bool


class Telephony(Protocol):
    """The switch, as seen by one call: channel and bridge operations."""

    async def answer(self, channel_id: str) -> None: ...

    async def play(self, channel_id: str, playback_id: str, prompts: Sequence[str]) -> None:
        """Play catalogue prompts in order as one playback (one PlaybackDone at the end)."""

    async def play_to_each(self, playbacks: Mapping[str, str], prompts: Sequence[str]) -> None:
        """Play the same prompts to each channel at once (``playbacks``: channel id -> its
        playback's id), bridged or not: each hears them instead of the other party until
        they end. A channel that has just hung up is skipped (its hang-up is on its way)."""

    async def stop_playback(self, playback_id: str) -> None: ...

    async def hold(self, channel_id: str, bridge_id: str) -> None:
        """Put the caller in a holding bridge of their own: the switch plays them music on
        hold whenever nothing else plays, and keeps doing so if the app dies. Idempotent."""

    async def originate(
        self, desk: str, channel_id: str, display: str, caller_number: str, timeout: float
    ) -> bool:
        """Ring a desk phone (it enters the app as a desk leg when answered); False when the
        switch could not even start ringing it."""

    async def create_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> bool:
        """Create a mixing bridge holding these channels (moved out of any bridge they are
        in); False, and no bridge left, when one of them has just hung up (its hang-up event
        is on its way)."""

    async def destroy_bridge(self, bridge_id: str) -> None: ...

    async def record_bridge(self, bridge_id: str, name: str) -> bool:
        """Record the bridged conversation as ``name``; False if the switch refused."""

    async def hangup(self, channel_id: str) -> None: ...

    async def continue_to_fallback(self, channel_id: str) -> None:
        """Hand the caller to the native dialplan fallback (rings the desks without the app)."""

    async def desk_presence(self, desks: Sequence[str]) -> dict[str, DeskPresence]: ...


class Timer(enum.StrEnum):
    """A call's timers. ``RING`` runs once per desk leg (its key is the leg)."""

    DIGIT = "digit"  # first-digit / inter-digit timeout while keying
    CONFIRM = "confirm"  # the read-back confirms itself
    STAR = "star"  # '*' waiting for its second key
    HOLD = "hold"  # the next "all supervisors are busy" message
    RETRY = "retry"  # look for a free desk again
    MAX_WAIT = "max_wait"  # the control room rings too
    OVERFLOW_RETRY = "overflow_retry"  # the control room's rest is over
    RING = "ring"  # a desk leg rang out
    WHISPER = "whisper"  # the whisper's time is up: connect the caller


class Timers(Protocol):
    """Per-call timers; a fired timer comes back to the call as a TimerFired event. A timer is
    named by its :class:`Timer` and, for one per leg, a key; starting it again restarts it."""

    def start(self, name: Timer, seconds: float, key: str = "") -> None: ...

    def cancel(self, name: Timer, key: str = "") -> None: ...

    def cancel_all(self) -> None: ...


@dataclass(frozen=True)
class LookupResult:
    result: RosterResult
    officer_id: int | None
    officer_label: str
    flagged: bool = False  # this caller has made more lookups than the configured rate
    # the officer's open pre-registered encounter the call is to be logged against
    encounter_reference: str | None = None


class CallServices(Protocol):
    """Domain services a call uses: roster, desk selection, call log."""

    async def lookup(self, digits: str) -> LookupResult:
        """What the roster says, and whether this caller is over the lookup rate."""

    async def pick_desks(self, call_key: str, exclude: frozenset[str], every: bool) -> list[str]:
        """If it is this caller's turn, reserve the free desk phone idle longest (``every``:
        every free desk phone, for ring-all) and return what was reserved."""

    def release_desk(self, desk: str, talked: bool) -> None:
        """Give a reserved desk back; ``talked`` restarts its idle time (and its wrap-up)."""

    def join_queue(self, emergency: bool) -> int:
        """Queue the caller for a desk (keeping their place); return their position."""

    def leave_queue(self) -> None: ...

    def queue_position(self) -> int: ...

    def desk_answered(self, desk: str) -> None:
        """A desk answered: its run of unanswered rings is over."""

    def desk_not_answered(self, desk: str) -> None:
        """A desk rang out; enough in a row pauses it (logged)."""

    def desk_failed(self, desk: str, counts: bool) -> None:
        """A desk did not take an offered call (busy, declined, unreachable, or hung up on the
        whisper): it rests before it is offered again; ``counts`` towards the auto-pause."""

    async def anyone_signed_in(self) -> bool:
        """Is any supervisor there at all (registered and not signed out)?"""

    def record(self, kind: str, detail: dict[str, object]) -> None:
        """Append an event to the call's timeline and save the call's current state."""
