"""The call's state machine: one caller from answer to hang-up.

    Greeting ──digit/done──> Collecting ──'#' ok──> ReadBack ──'1' / 3 s──> Connecting
      │ *1 *2: language        │  ▲ no '#', '#' alone, too few/many digits (re-prompt)
      │                        └──┘ <──────────── *1 (key it again) ─────┘
      │   no key at all (first-digit timeout): "no number" ──────────────> Connecting
      │   attempts used up ──────────────────────────────────────────────> Connecting
      └── *0 (supervisor now) / *9 (emergency), from any state before the bridge ──┘
    Connecting ──desk answers──> Whispering ──'1' / a fixed time──> Bridged ──a hang-up──> Ended
        │  ▲                           │  │
        │  └── supervisor hangs up ────┘  └─caller hangs up─> Ended (caller_left_during_whisper)
        │  on hold (music), reference read out; ring timeout / desk fails: next free desk
        │  (a failed desk rests before it is offered again); nobody free: position
        │  announcements and retry; emergency: the control room first; after the maximum
        │  wait: the control room and the desks, until someone answers (Ringer)
        └──caller hangs up (desk gets CANCEL)──> Ended (caller_abandoned)

Keys: digits build the number; '*' and one more key form a command (SAFETY_KEYS anywhere
before the bridge, a state's own STAR_MENU otherwise), so no single digit ever means
anything but a digit during entry.

Each state is a small class whose event methods return the next state. States talk to the
outside only through the ports in :mod:`ivr.telephony`, so they run unchanged against ARI or a
test fake. The IVR never tells the caller what the roster said: every path ends at a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from ivr import ids
from ivr.clock import iso, now
from ivr.config import EntrySettings
from ivr.entities import CallData
from ivr.models import EndReason, RosterResult
from ivr.prompts import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    PROMPT_TAIL_SECONDS,
    prompt,
    say_digits,
    seconds,
)
from ivr.telephony import CallServices, Telephony, Timer, Timers

log = logging.getLogger(__name__)

DIGITS = frozenset("0123456789")
MAX_KEPT_DIGITS = 64  # a caller leaning on the keypad must not grow the row without bound
RETRY_SECONDS = 2.0  # how often a waiting caller's search for a free desk is repeated
SAFETY_KEYS = {"0": "supervisor_now", "9": "emergency"}  # after '*', before the bridge


def heard_silence(timeout: float) -> float:
    """How long an entry timer runs for the caller to hear ``timeout`` seconds of silence: the
    silent tail every prompt file ends with is already part of it."""
    return max(timeout - PROMPT_TAIL_SECONDS, 0.0)


FLAG_MANY_LOOKUPS = "many_lookups"
FLAG_EMERGENCY = "emergency"
FLAG_ASKED_FOR_SUPERVISOR = "asked_for_supervisor"


# --- events the adapter feeds to a call -----------------------------------------------------


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class PlaybackDone:
    playback_id: str


@dataclass(frozen=True)
class TimerFired:
    name: Timer
    key: str = ""  # the leg, for Timer.RING


@dataclass(frozen=True)
class DeskAnswered:
    channel_id: str


@dataclass(frozen=True)
class DeskGone:
    channel_id: str
    cause: str = ""


@dataclass(frozen=True)
class CallerGone:
    """The caller's channel left; ``connection_lost``: Asterisk hung it up because no RTP came
    from the caller any more (their phone or network vanished without a BYE)."""

    cause: str = ""
    connection_lost: bool = False


@dataclass(frozen=True)
class DeskDtmf:
    """A key pressed on the desk phone of one of this call's desk legs."""

    channel_id: str
    digit: str


@dataclass(frozen=True)
class Lost:
    """The caller's channel is gone without a hang-up seen (e.g. Asterisk restarted)."""

    reason: EndReason


@dataclass(frozen=True)
class Wake:
    """A desk may have become free (released, out of wrap-up, registered, available)."""


Event = (Dtmf | PlaybackDone | TimerFired | DeskAnswered | DeskGone | CallerGone | DeskDtmf
         | Wake | Lost)


@dataclass(frozen=True)
class FlowSettings:
    entry: EntrySettings = field(default_factory=EntrySettings)
    ring_timeout: float = 20.0
    hold_interval: float = 8.0
    ring_all: bool = False
    emergency_endpoint: str | None = None
    queue_max_wait: float = 120.0
    whisper_timeout: float = 3.0
    recording: bool = False


@dataclass
class CallContext:
    """What a state may use: the call's data, the switch, timers and domain services."""

    data: CallData
    tel: Telephony
    timers: Timers
    services: CallServices
    settings: FlowSettings
    _seq: int = 0

    def next_id(self, kind: str) -> str:
        self._seq += 1
        return f"{self.data.channel_id}-{kind}-{self._seq}"

    def record(self, kind: str, **detail: object) -> None:
        self.services.record(kind, detail)

    def say(self, *prompt_ids: str) -> list[str]:
        """Catalogue prompts in the caller's language."""
        return [prompt(self.data.language, p) for p in prompt_ids]

    async def play(self, kind: str, media: list[str]) -> str:
        """Play to the caller as one playback; return its id. Logged as a prompt milestone."""
        playback_id = self.next_id(kind)
        await self.tel.play(self.data.channel_id, playback_id, media)
        self.record("prompt", prompt="+".join(media))
        return playback_id


# --- states ---------------------------------------------------------------------------------


class State:
    """Base state: ignores what it does not handle; a caller hang-up always ends the call."""

    name = "state"

    async def enter(self, ctx: CallContext) -> State:
        return self

    async def handle(self, ctx: CallContext, event: Event) -> State:
        match event:
            case Dtmf(digit):
                return await self.on_dtmf(ctx, digit)
            case PlaybackDone(playback_id):
                return await self.on_playback_done(ctx, playback_id)
            case TimerFired(name, key):
                return await self.on_timer(ctx, name, key)
            case DeskAnswered(channel_id):
                return await self.on_desk_answered(ctx, channel_id)
            case DeskGone(channel_id, cause):
                return await self.on_desk_gone(ctx, channel_id, cause)
            case CallerGone(cause, connection_lost):
                ctx.data.connection_lost = ctx.data.connection_lost or connection_lost
                return await self.on_caller_gone(ctx, cause)
            case DeskDtmf(channel_id, digit):
                return await self.on_desk_dtmf(ctx, channel_id, digit)
            case Wake():
                return await self.on_wake(ctx)
            case Lost(reason):
                return await self.on_lost(ctx, reason)
        return self  # pragma: no cover - the match is exhaustive

    # True for the states before the bridge, where *0 and *9 work
    safety_keys = False
    STAR_MENU: ClassVar[dict[str, str]] = {}

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        ctx.record("key_ignored", digit=digit, state=self.name)
        return self

    async def on_star(self, ctx: CallContext, key: str) -> State:
        """'*' followed by ``key``: a safety key or this state's own menu."""
        if self.safety_keys and key in SAFETY_KEYS:
            ctx.record("safety_key", key=f"*{key}", action=SAFETY_KEYS[key], state=self.name)
            await self.leave(ctx)
            if SAFETY_KEYS[key] == "emergency":
                ctx.data.flags.add(FLAG_EMERGENCY)
                return await lookup_and_connect(ctx, ctx.data.digits if ctx.data.roster_result
                                                else "", emergency=True)
            ctx.data.flags.add(FLAG_ASKED_FOR_SUPERVISOR)
            return await lookup_and_connect(ctx, "")
        action = self.STAR_MENU.get(key)
        if action is None:
            ctx.record("star_command_ignored", key=f"*{key}", state=self.name)
            return self
        ctx.record("star_command", key=f"*{key}", action=action, state=self.name)
        return await self.on_menu(ctx, action)

    async def on_menu(self, ctx: CallContext, action: str) -> State:
        return self

    async def leave(self, ctx: CallContext) -> None:
        """Stop what this state plays before a safety key takes the caller elsewhere."""

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        return self

    async def on_timer(self, ctx: CallContext, name: Timer, key: str) -> State:
        return self

    async def on_desk_answered(self, ctx: CallContext, channel_id: str) -> State:
        # a desk leg we no longer want (e.g. it answered just after its ring timeout)
        ctx.record("stray_desk_leg_hung_up", channel=channel_id)
        await ctx.tel.hangup(channel_id)
        return self

    async def on_desk_gone(self, ctx: CallContext, channel_id: str, cause: str) -> State:
        return self

    async def on_desk_dtmf(self, ctx: CallContext, channel_id: str, digit: str) -> State:
        return self

    async def on_wake(self, ctx: CallContext) -> State:
        return self

    async def on_caller_gone(self, ctx: CallContext, cause: str) -> State:
        if ctx.data.connection_lost:
            return await go(ctx, Ended(EndReason.CALLER_CONNECTION_LOST))
        return await go(ctx, Ended(EndReason.CALLER_ABANDONED))

    async def on_lost(self, ctx: CallContext, reason: EndReason) -> State:
        return await go(ctx, Ended(reason))


async def go(ctx: CallContext, state: State) -> State:
    """Persist where the call now stands, then enter the state (which may itself move on)."""
    ctx.data.state = state.name
    ctx.record("state", state=state.name)
    return await state.enter(ctx)


async def lookup_and_connect(ctx: CallContext, digits: str, emergency: bool = False,
                             intro: str | None = None) -> State:
    """Check the number against the roster (once per call) and connect the caller to a person.

    What the roster says changes nothing the caller hears: only the supervisor learns it."""
    d = ctx.data
    if d.roster_result is None:
        d.digits = digits
        found = await ctx.services.lookup(digits)
        d.roster_result, d.officer_id, d.officer_label = (
            found.result, found.officer_id, found.officer_label)
        d.encounter_reference = found.encounter_reference  # never told to the caller
        if found.flagged:
            d.flags.add(FLAG_MANY_LOOKUPS)
        ctx.record("roster_checked", warrant_number=digits, result=found.result.value,
                   flagged=found.flagged)
    return await go(ctx, Connecting(emergency=emergency, intro=intro))


class Greeting(State):
    """What the line is, the 999 advice, the published-number warning; '*n' picks a language."""

    name = "greeting"
    safety_keys = True
    STAR_MENU: ClassVar[dict[str, str]] = {
        str(n): f"language:{lang}" for n, lang in enumerate(LANGUAGES, 1)}

    def __init__(self, replay: bool = False) -> None:
        self.replay = replay  # the greeting again, in a language the caller just chose
        self.playback_id = ""

    async def enter(self, ctx: CallContext) -> State:
        if not self.replay:
            await ctx.tel.answer(ctx.data.channel_id)
            ctx.record("answered")
        media = ctx.say("greeting")
        if not self.replay:
            media += [prompt(lang, "language_offer") for lang in LANGUAGES
                      if lang != ctx.data.language]
        self.playback_id = await ctx.play("greeting", media)
        return self

    async def leave(self, ctx: CallContext) -> None:
        await ctx.tel.stop_playback(self.playback_id)

    async def on_menu(self, ctx: CallContext, action: str) -> State:
        language = action.removeprefix("language:")
        await self.leave(ctx)
        ctx.data.language = language
        ctx.record("language", language=language)
        return await go(ctx, Greeting(replay=True))

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        if digit not in DIGITS and digit != "#":
            return await super().on_dtmf(ctx, digit)
        # barge-in: a digit (or '#') stops the greeting and counts as the first key of entry
        await self.leave(ctx)
        ctx.record("barge_in", prompt="greeting")
        collecting = Collecting(attempt=1)
        await go(ctx, collecting)
        return await collecting.on_dtmf(ctx, digit)

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        if playback_id != self.playback_id:
            return self
        return await go(ctx, Collecting(attempt=1, prompt=True))


class Collecting(State):
    """Digits then '#'; a first-digit and an inter-digit timeout; a key stops any prompt."""

    name = "collecting"
    safety_keys = True

    def __init__(self, attempt: int, prompt: bool = False, retry: bool = False) -> None:
        self.attempt = attempt
        self.with_prompt = prompt
        self.retry = retry
        self.digits = ""
        self.playback_id: str | None = None

    async def enter(self, ctx: CallContext) -> State:
        ctx.data.attempts = self.attempt
        if self.with_prompt:
            ids = ["not_understood", "enter_number"] if self.retry else ["enter_number"]
            self.playback_id = await ctx.play("enter", ctx.say(*ids))
        else:
            ctx.timers.start(Timer.DIGIT, heard_silence(ctx.settings.entry.first_digit_timeout))
        return self

    async def leave(self, ctx: CallContext) -> None:
        ctx.timers.cancel(Timer.DIGIT)
        if self.playback_id is not None:
            await ctx.tel.stop_playback(self.playback_id)
            self.playback_id = None
        if self.digits:
            ctx.record("entry_abandoned", entered=self.digits, attempt=self.attempt)

    async def _barge_in(self, ctx: CallContext) -> None:
        if self.playback_id is not None:
            await ctx.tel.stop_playback(self.playback_id)
            ctx.record("barge_in", prompt="enter_number")
            self.playback_id = None

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        if playback_id == self.playback_id:
            self.playback_id = None
            # the clock for the first digit starts once the caller has heard the question
            if not self.digits:
                ctx.timers.start(Timer.DIGIT, heard_silence(ctx.settings.entry.first_digit_timeout))
        return self

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        await self._barge_in(ctx)
        if digit in DIGITS:
            if len(self.digits) < MAX_KEPT_DIGITS:
                self.digits += digit
            ctx.record("digit", digit=digit, attempt=self.attempt)
            ctx.timers.start(Timer.DIGIT, heard_silence(ctx.settings.entry.inter_digit_timeout))
            return self
        if digit == "#":
            ctx.timers.cancel(Timer.DIGIT)
            ctx.record("key", digit="#", attempt=self.attempt, entered=self.digits)
            entry = ctx.settings.entry
            if not self.digits:
                return await self._failed(ctx, "hash_alone")
            if len(self.digits) < entry.min_digits:
                return await self._failed(ctx, "too_few_digits")
            if len(self.digits) > entry.max_digits:
                return await self._failed(ctx, "too_many_digits")
            return await go(ctx, ReadBack(self.digits, self.attempt))
        # A-D mean nothing here
        ctx.record("key_ignored", digit=digit, attempt=self.attempt)
        return self

    async def on_timer(self, ctx: CallContext, name: Timer, key: str) -> State:
        if name is not Timer.DIGIT:
            return self
        return await self._failed(ctx, "timeout" if not self.digits else "no_hash")

    async def _failed(self, ctx: CallContext, why: str) -> State:
        ctx.record("entry_failed", reason=why, attempt=self.attempt, entered=self.digits)
        if why == "timeout":
            # not one key: maybe no number, no keypad, or too frightened to use it. Asking
            # again only adds dead air; a person, now
            return await lookup_and_connect(ctx, "", intro="no_number")
        if self.attempt >= ctx.settings.entry.max_attempts:
            # never a dead end: after the last attempt a supervisor takes the call anyway
            return await lookup_and_connect(ctx, "")
        return await go(ctx, Collecting(self.attempt + 1, prompt=True, retry=True))


class ReadBack(State):
    """'You entered 1 2 3 4 5 6': '1' confirms at once, no key within a few seconds confirms,
    '*1' keys it again."""

    name = "read_back"
    safety_keys = True
    STAR_MENU: ClassVar[dict[str, str]] = {"1": "re_enter"}

    def __init__(self, digits: str, attempt: int) -> None:
        self.digits = digits
        self.attempt = attempt
        self.playback_id: str | None = None

    async def enter(self, ctx: CallContext) -> State:
        media = [*ctx.say("you_entered"), *say_digits(ctx.data.language, self.digits),
                 *ctx.say("confirm_hint")]
        self.playback_id = await ctx.play("read_back", media)
        return self

    async def leave(self, ctx: CallContext) -> None:
        ctx.timers.cancel(Timer.CONFIRM)
        if self.playback_id is not None:
            await ctx.tel.stop_playback(self.playback_id)
            self.playback_id = None

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        if playback_id == self.playback_id:
            self.playback_id = None
            ctx.timers.start(Timer.CONFIRM, ctx.settings.entry.confirm_timeout)
        return self

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        if digit != "1":
            ctx.record("key_during_read_back", digit=digit)
            return self
        await self.leave(ctx)
        ctx.record("confirmed", by="key")
        return await lookup_and_connect(ctx, self.digits)

    async def on_timer(self, ctx: CallContext, name: Timer, key: str) -> State:
        if name is not Timer.CONFIRM:
            return self
        ctx.record("confirmed", by="timeout")
        return await lookup_and_connect(ctx, self.digits)

    async def on_menu(self, ctx: CallContext, action: str) -> State:
        await self.leave(ctx)
        if self.attempt >= ctx.settings.entry.max_attempts:
            ctx.record("confirmed", by="attempts_used_up")
            return await lookup_and_connect(ctx, self.digits)
        return await go(ctx, Collecting(self.attempt + 1, prompt=True))


WHISPER_RESULT = {
    RosterResult.ON_DUTY: "result_on_duty",
    RosterResult.OFF_DUTY: "result_off_duty",
    RosterResult.RESTRICTED: "result_restricted",
    RosterResult.UNKNOWN: "result_unknown",
    RosterResult.NONE_ENTERED: "result_none_entered",
}
SUPERVISOR_LANGUAGE = DEFAULT_LANGUAGE


def whisper_media(result: RosterResult, flags: set[str]) -> list[str]:
    """What the supervisor hears, once, before the caller is connected: the roster result, an
    emergency, and how to connect. The number, reference and other flags are on the display."""
    lang = SUPERVISOR_LANGUAGE
    media = [prompt(lang, WHISPER_RESULT[result])]
    if FLAG_EMERGENCY in flags:
        media.append(prompt(lang, "flag_emergency"))
    return [*media, prompt(lang, "whisper_hint")]


def whisper_seconds(flags: set[str]) -> float:
    """The whisper's length padded to the longest roster result: the caller is connected at
    the same moment after the desk answers whatever the roster said, so the wait on hold
    never tells the caller (or an impostor listening) the result."""
    return max(sum(seconds(m) for m in whisper_media(r, flags)) for r in WHISPER_RESULT)


class Ringer:
    """The ringing mechanics of one waiting call: its desk legs and the control room's.

    Desk phones ring longest-idle first, one at a time, or all free ones at once
    (``ring_all``); a desk that cannot be rung makes way for the next at once. The control room
    rings when ``overflow_due`` (an emergency, the maximum wait, or nobody signed in): alone
    first for an emergency; when it does not answer it rests, then rings again beside the
    desks. The legs themselves live in ``CallData.runtime`` (never journaled)."""

    def __init__(self, emergency: bool) -> None:
        self.overflow_due = emergency  # the control room rings too
        self.overflow_first = emergency  # ...and alone, until its first attempt ends
        self.overflow_leg: str | None = None
        self.overflow_resting = False  # between two attempts on the control room

    def desk_legs(self, ctx: CallContext) -> list[str]:
        return [leg for leg in ctx.data.runtime.legs if leg != self.overflow_leg]

    async def ring_what_can(self, ctx: CallContext) -> bool:
        """Ring whatever should ring now and is not ringing yet; True if a desk rings."""
        d = ctx.data
        target = ctx.settings.emergency_endpoint
        if self.overflow_due and target and self.overflow_leg is None \
                and not self.overflow_resting:
            await self.ring(ctx, target, overflow=True)
        if self.overflow_first and self.overflow_leg is not None:
            return True  # an emergency: the control room alone first
        ring_all = ctx.settings.ring_all
        if ring_all or not self.desk_legs(ctx):
            # a desk that cannot even be rung makes way for the next one at once
            while desks := await ctx.services.pick_desks(d.channel_id,
                                                         frozenset(d.runtime.tried_desks),
                                                         every=ring_all):
                for desk in desks:
                    await self.ring(ctx, desk)
                if self.desk_legs(ctx):
                    break
        return bool(self.desk_legs(ctx))

    async def ring(self, ctx: CallContext, desk: str, overflow: bool = False) -> bool:
        d = ctx.data
        d.runtime.desk_legs += 1
        leg = ids.desk_leg(d.channel_id, d.runtime.desk_legs)
        d.runtime.legs[leg] = desk
        if overflow:
            self.overflow_leg = leg
        else:
            d.runtime.tried_desks.add(desk)
        # said before the INVITE goes out: the supervisor's screen (the console follows the
        # timeline) shows who is calling while the phone starts to ring, not after ARI's
        # round trips; a desk that cannot be rung follows with desk_failed
        ctx.record("desk_offered", desk=desk, channel=leg, emergency=overflow)
        ringing = await ctx.tel.originate(desk, leg, display(ctx), d.caller_number or "",
                                          ctx.settings.ring_timeout + 5)
        if not ringing:
            if not overflow:
                ctx.services.desk_failed(desk, counts=True)  # rests before it is offered again
            self.drop(ctx, leg, "desk_failed")
            await ctx.tel.hangup(leg)  # in case Asterisk made the channel before it failed
            return False
        ctx.timers.start(Timer.RING, ctx.settings.ring_timeout, key=leg)
        ctx.record("desk_ringing", desk=desk, channel=leg, emergency=overflow,
                   strategy="ring_all" if ctx.settings.ring_all else "longest_idle",
                   waited_s=round((now() - (d.queued_at or now())).total_seconds(), 3))
        return True

    def drop(self, ctx: CallContext, leg: str, why: str) -> str | None:
        """Forget a leg and give its desk back; return the desk (None: not one of ours)."""
        desk = ctx.data.runtime.legs.pop(leg, None)
        if desk is None:
            return None
        ctx.timers.cancel(Timer.RING, leg)
        ctx.record(why, desk=desk, channel=leg)
        ctx.services.release_desk(desk, talked=False)
        if leg == self.overflow_leg:
            # the control room did not take it: now the desks too, and the control room again
            # after a short rest
            self.overflow_leg, self.overflow_first, self.overflow_resting = None, False, True
            ctx.timers.start(Timer.OVERFLOW_RETRY, RETRY_SECONDS)
        return desk

    async def cancel(self, ctx: CallContext, why: str, keep: str | None = None) -> None:
        for leg in [leg for leg in ctx.data.runtime.legs if leg != keep]:
            self.drop(ctx, leg, why)
            await ctx.tel.hangup(leg)  # a ringing phone gets a CANCEL

    def take(self, ctx: CallContext, leg: str) -> None:
        """The leg answered: it no longer rings (it stays a leg until it is bridged, so a
        hang-up on the whisper gives it back as any other leg, the control room's too)."""
        ctx.timers.cancel(Timer.RING, leg)


def display(ctx: CallContext) -> str:
    """The desk phone's caller-ID name: the result, the number keyed, the reference, flags."""
    d = ctx.data
    result = (d.roster_result or RosterResult.NONE_ENTERED).value.replace("_", " ").upper()
    flags = "".join(f" {f.upper()}" for f in sorted(d.flags) if f != FLAG_ASKED_FOR_SUPERVISOR)
    return f"{result} {d.digits or '-'} ref {d.reference}{flags}"


@dataclass
class Seat:
    """A waiting caller's place, kept while they move between Connecting and Whispering: what
    they hear now, whether their reference is still being read, and what rings for them."""

    emergency: bool
    ringer: Ringer
    playback_id: str | None = None  # what the caller hears now (one prompt at a time)
    reference_id: str | None = None  # the reference read-out, until it ends
    reference_again: bool = False  # connected during it: read again to both once bridged
    waiting_since: datetime | None = None

    @property
    def announcing(self) -> bool:
        """The caller is still hearing their reference."""
        return self.reference_id is not None


class Waiting(State):
    """What both waiting states share: the caller on hold in their own holding bridge, with
    music between our prompts (Asterisk goes on playing it if the app dies)."""

    safety_keys = True

    def __init__(self, seat: Seat) -> None:
        self.seat = seat

    async def leave(self, ctx: CallContext) -> None:
        """Stop prompts and ringing (the caller stays on hold for whatever comes next)."""
        if self.seat.playback_id is not None:
            await ctx.tel.stop_playback(self.seat.playback_id)
        await self.seat.ringer.cancel(ctx, "desk_cancelled")
        ctx.timers.cancel_all()

    async def on_star(self, ctx: CallContext, key: str) -> State:
        if key == "0" or (key == "9" and self.seat.emergency):
            ctx.record("safety_key", key=f"*{key}", action="already_connecting", state=self.name)
            return self
        return await super().on_star(ctx, key)

    def caller_heard(self, playback_id: str) -> bool:
        """Note the end of one of the caller's prompts; True if it was the one playing."""
        if playback_id == self.seat.reference_id:
            self.seat.reference_id = None
        if playback_id != self.seat.playback_id:
            return False
        self.seat.playback_id = None  # the music on hold comes back by itself
        return True

    async def on_lost(self, ctx: CallContext, reason: EndReason) -> State:
        for leg in list(ctx.data.runtime.legs):
            self.seat.ringer.drop(ctx, leg, "desk_lost")
        return await super().on_lost(ctx, reason)


class Connecting(Waiting):
    """Queue for a supervisor: hold with music, hear the reference, ring desk phones.

    First the caller hears their reference, then every few seconds their place in the queue
    while no phone rings for them. The first phone to answer takes the call to Whispering; the
    other phones stop ringing. Nobody free: position announcements and a retry every few
    seconds (a freed desk also wakes the caller at once)."""

    name = "connecting"

    def __init__(self, emergency: bool = False, resumed: bool = False,
                 intro: str | None = None, seat: Seat | None = None) -> None:
        super().__init__(seat or Seat(emergency, Ringer(emergency)))
        self.intro = intro  # the prompt id the caller hears in place of "connecting"
        self.resumed = resumed  # adopted after an app restart: the caller has heard it all
        self.back = seat is not None  # back from a whisper the supervisor hung up on

    @property
    def emergency(self) -> bool:
        return self.seat.emergency

    async def enter(self, ctx: CallContext) -> State:
        if self.back:
            # the caller keeps their place: at the front, as they waited longest
            return await self._ring_more(ctx)
        d = ctx.data
        if d.queued_at is None:
            d.queued_at = now()
        if d.hold_bridge_id is None:
            d.hold_bridge_id = ids.hold_bridge(d.channel_id)
            await ctx.tel.hold(d.channel_id, d.hold_bridge_id)
            ctx.record("on_hold", bridge=d.hold_bridge_id)
        # queued once on hold: a caller whose move to hold takes Asterisk seconds (adopted
        # after a restart while a prompt of the old app still plays) or fails (gone) never
        # sits at the head of the queue meanwhile, holding up everyone behind them
        position = ctx.services.join_queue(self.emergency)
        ctx.record("queued", position=position, emergency=self.emergency)
        if not self.emergency:
            ctx.timers.start(Timer.MAX_WAIT, ctx.settings.queue_max_wait)
        if self.resumed:
            ctx.record("resumed", position=position)  # music on hold never stopped
            return await self._ring_more(ctx)
        first = ["emergency"] if self.emergency else [self.intro or "connecting"]
        notice = ["recorded"] if ctx.settings.recording else []
        media = [*ctx.say(*first, *notice, "reference"), *say_digits(d.language, d.reference)]
        self.seat.playback_id = self.seat.reference_id = await ctx.play("connecting", media)
        return await self._ring_more(ctx)

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        self.caller_heard(playback_id)
        return self

    async def _ring_more(self, ctx: CallContext) -> State:
        """Ring whatever can ring now; when nothing can, hold on and try again shortly."""
        seat, ringer = self.seat, self.seat.ringer
        if await ringer.ring_what_can(ctx):
            seat.waiting_since = None
            ctx.timers.cancel(Timer.HOLD)
            ctx.timers.cancel(Timer.RETRY)
            return self
        target = ctx.settings.emergency_endpoint
        if not ringer.overflow_due and target and not await ctx.services.anyone_signed_in():
            ringer.overflow_due = True
            ctx.record("overflow", reason="no_supervisor_signed_in")
            return await self._ring_more(ctx)
        tried = ctx.data.runtime.tried_desks
        if tried:
            tried.clear()  # every free desk had its turn: a new round after a pause
        elif seat.waiting_since is None:
            seat.waiting_since = now()
            ctx.record("no_supervisor_free", position=ctx.services.queue_position())
            ctx.timers.start(Timer.HOLD, ctx.settings.hold_interval)
        ctx.timers.start(Timer.RETRY, RETRY_SECONDS)
        return self

    async def on_wake(self, ctx: CallContext) -> State:
        return await self._ring_more(ctx)

    async def on_timer(self, ctx: CallContext, name: Timer, key: str) -> State:
        d, seat, ringer = ctx.data, self.seat, self.seat.ringer
        if name is Timer.RING:
            leg = key
            was_overflow = leg == ringer.overflow_leg
            desk = ringer.drop(ctx, leg, "desk_no_answer")
            if desk is None:
                return self
            if not was_overflow:
                ctx.services.desk_not_answered(desk)
            await ctx.tel.hangup(leg)
            return await self._ring_more(ctx)
        if name is Timer.RETRY:
            return await self._ring_more(ctx)
        if name is Timer.OVERFLOW_RETRY:
            ringer.overflow_resting = False
            return await self._ring_more(ctx)
        if name is Timer.HOLD and (d.runtime.legs or seat.playback_id is not None):
            # a phone is ringing, or the caller is hearing something already: no pile-up
            ctx.timers.start(Timer.HOLD, ctx.settings.hold_interval)
            return self
        if name is Timer.HOLD:
            position = ctx.services.queue_position()
            said = ["all_busy", "you_are_next"] if position <= 1 else ["all_busy", "position"]
            media = ctx.say(*said) + (say_digits(d.language, str(position)) if position > 1
                                      else [])
            seat.playback_id = await ctx.play("hold", media)
            ctx.timers.start(Timer.HOLD, ctx.settings.hold_interval)
            return self
        if name is Timer.MAX_WAIT and not ringer.overflow_due and ctx.settings.emergency_endpoint:
            ringer.overflow_due = True
            ctx.record("overflow", reason="max_wait")
            return await self._ring_more(ctx)
        return self

    async def on_desk_gone(self, ctx: CallContext, channel_id: str, cause: str) -> State:
        ringer = self.seat.ringer
        desk = ctx.data.runtime.legs.get(channel_id)
        if desk is None:
            return self  # a leg we had already let go (cancelled, timed out)
        if channel_id != ringer.overflow_leg:
            # busy (486), declined, unreachable: the desk rests before it is offered again
            # (to anyone), so it is never rung in a loop; it counts towards the auto-pause
            ctx.services.desk_failed(desk, counts=True)
        ringer.drop(ctx, channel_id, "desk_failed")
        return await self._ring_more(ctx)

    async def on_desk_answered(self, ctx: CallContext, channel_id: str) -> State:
        if channel_id not in ctx.data.runtime.legs:
            return await super().on_desk_answered(ctx, channel_id)  # a stray: hung up
        return await go(ctx, Whispering(self.seat, channel_id))

    async def on_caller_gone(self, ctx: CallContext, cause: str) -> State:
        await self.seat.ringer.cancel(ctx, "desk_cancelled")
        return await super().on_caller_gone(ctx, cause)


class Whispering(Waiting):
    """A desk answered: its supervisor alone hears what they are about to verify (the roster
    result, an emergency, "press 1"), while the caller stays on hold. '1' connects the caller
    at once, else a fixed time after the answer (see :func:`whisper_seconds`); a supervisor
    who hangs up gives the call back (Connecting, the caller keeps the front); a caller who
    hangs up ends it ``caller_left_during_whisper``, keeping who answered and when."""

    name = "whispering"

    def __init__(self, seat: Seat, leg: str) -> None:
        super().__init__(seat)
        self.leg = leg
        self.whisper_id: str | None = None
        self.tried = False  # the bridge was tried (a leg was gone at that moment)

    async def enter(self, ctx: CallContext) -> State:
        d, ringer = ctx.data, self.seat.ringer
        ringer.take(ctx, self.leg)
        d.desk_channel_id, d.desk = self.leg, d.runtime.legs[self.leg]
        # the audit keeps who picked up and when, also if the caller leaves during the whisper
        d.answered_desk, d.answered_at = d.desk, now()
        ctx.services.desk_answered(d.desk)
        await ringer.cancel(ctx, "desk_cancelled", keep=self.leg)  # answered elsewhere
        ctx.timers.cancel(Timer.RETRY)
        ctx.timers.cancel(Timer.HOLD)
        media = whisper_media(d.roster_result or RosterResult.NONE_ENTERED, d.flags)
        self.whisper_id = ctx.next_id("whisper")
        await ctx.tel.play(self.leg, self.whisper_id, media)
        ctx.timers.start(Timer.WHISPER, whisper_seconds(d.flags) + ctx.settings.whisper_timeout)
        ctx.record("whisper", desk=d.desk, prompt="+".join(media),
                   answered_at=iso(d.answered_at))
        return self

    async def on_playback_done(self, ctx: CallContext, playback_id: str) -> State:
        if playback_id == self.whisper_id:
            self.whisper_id = None  # the timer set when the desk answered connects them
        else:
            self.caller_heard(playback_id)
        return self

    async def leave(self, ctx: CallContext) -> None:
        """A safety key (*9) takes the caller elsewhere: this supervisor is let go too."""
        if self.whisper_id is not None:
            await ctx.tel.stop_playback(self.whisper_id)
            self.whisper_id = None
        d = ctx.data
        d.desk, d.desk_channel_id, d.answered_desk, d.answered_at = None, None, None, None
        await super().leave(ctx)

    async def on_timer(self, ctx: CallContext, name: Timer, key: str) -> State:
        ringer = self.seat.ringer
        if name is Timer.WHISPER:
            # after a try at the bridge that found a leg gone and no hang-up came: again
            return await self._connect(ctx, "retry" if self.tried else "timeout")
        if name is Timer.MAX_WAIT and not ringer.overflow_due and ctx.settings.emergency_endpoint:
            # noted: should this supervisor give the call back, the control room rings too
            ringer.overflow_due = True
            ctx.record("overflow", reason="max_wait")
        elif name is Timer.OVERFLOW_RETRY:
            ringer.overflow_resting = False
        return self

    async def on_desk_dtmf(self, ctx: CallContext, channel_id: str, digit: str) -> State:
        if channel_id == self.leg and digit == "1":
            return await self._connect(ctx, "key")
        return self

    async def _connect(self, ctx: CallContext, by: str) -> State:
        ctx.timers.cancel(Timer.WHISPER)
        if self.whisper_id is not None:
            await ctx.tel.stop_playback(self.whisper_id)
            self.whisper_id = None
        ctx.record("whisper_done", by=by)
        self.tried = True
        # a caller still hearing their reference is connected now, and it is read again to
        # both of them: the supervisor is never kept waiting in silence
        # the reference is read again once, whether or not the first try at the bridge made it
        self.seat.reference_again = self.seat.reference_again or self.seat.announcing
        bridged = await bridge(ctx, self.seat, self.leg,
                               reference_again=self.seat.reference_again)
        return bridged or self  # a leg gone at this moment: its hang-up decides

    async def on_desk_answered(self, ctx: CallContext, channel_id: str) -> State:
        if channel_id == self.leg:
            return self  # a replayed StasisStart after a reconnect
        ctx.data.runtime.legs.pop(channel_id, None)
        return await super().on_desk_answered(ctx, channel_id)  # a stray: hung up

    async def on_desk_gone(self, ctx: CallContext, channel_id: str, cause: str) -> State:
        d = ctx.data
        if channel_id != self.leg:
            return self
        ctx.timers.cancel(Timer.WHISPER)
        if self.whisper_id is not None:
            await ctx.tel.stop_playback(self.whisper_id)
        desk = d.runtime.legs.get(channel_id)
        if desk is not None and channel_id != self.seat.ringer.overflow_leg:
            ctx.services.desk_failed(desk, counts=False)  # rests; a human choice, not counted
        self.seat.ringer.drop(ctx, channel_id, "desk_hung_up_during_whisper")
        # the desk gave the call back: it is not the supervisor who took it
        d.desk, d.desk_channel_id, d.answered_desk, d.answered_at = None, None, None, None
        return await go(ctx, Connecting(seat=self.seat))

    async def on_caller_gone(self, ctx: CallContext, cause: str) -> State:
        d = ctx.data
        ctx.timers.cancel(Timer.WHISPER)
        d.runtime.legs.pop(self.leg, None)
        ctx.record("caller_left_during_whisper", desk=d.desk, channel=self.leg)
        await ctx.tel.hangup(self.leg)
        return await go(ctx, Ended(EndReason.CALLER_CONNECTION_LOST if d.connection_lost
                                   else EndReason.CALLER_LEFT_DURING_WHISPER))


async def bridge(ctx: CallContext, seat: Seat, desk_leg: str, reference_again: bool = False
                 ) -> State | None:
    """Take the caller off hold into a mixing bridge with the desk leg (recorded if on).

    Nothing about the call changes until both are in the bridge: a caller or supervisor who
    hangs up at this very moment leaves the call waiting as it was (the desk still its leg,
    the caller still queued), and their hang-up, on its way, decides what comes next — the
    call given back to the queue, or ended. Should no hang-up come, it is tried again."""
    d = ctx.data
    if seat.playback_id is not None:
        await ctx.tel.stop_playback(seat.playback_id)
        seat.playback_id = None  # the music on hold until they are bridged
    bridge_id = ids.mixing_bridge(d.channel_id)
    if not await ctx.tel.create_bridge(bridge_id, [d.channel_id, desk_leg]):  # off hold
        ctx.record("bridge_failed", desk=d.desk, channel=desk_leg)
        ctx.timers.start(Timer.WHISPER, RETRY_SECONDS)
        return None
    ctx.timers.cancel_all()
    d.runtime.legs.pop(desk_leg, None)
    d.bridge_id = bridge_id
    if d.hold_bridge_id is not None:
        await ctx.tel.destroy_bridge(d.hold_bridge_id)
        d.hold_bridge_id = None
    if ctx.settings.recording:
        name = f"verifyline-{d.reference}-{d.channel_id}"
        if await ctx.tel.record_bridge(d.bridge_id, name):
            d.recording = name
        ctx.record("recording", name=name, started=d.recording is not None)
    if reference_again:
        # to each of them, not into the bridge: a bridge's own playback is a third party in
        # it, and three make Asterisk mix every 20 ms (a third of its CPU per call at load);
        # each hears the reference, then the other
        media = [*ctx.say("reference"), *say_digits(d.language, d.reference)]
        await ctx.tel.play_to_each({leg: ctx.next_id("reference")
                                    for leg in (d.channel_id, desk_leg)}, media)
        ctx.record("prompt", prompt="+".join(media), to="caller and desk")
    bridged_at = now()
    d.answered_desk = d.desk
    d.answered_at = d.answered_at or bridged_at
    ctx.services.leave_queue()
    ctx.record("bridged", desk=d.desk, bridge=d.bridge_id, answered_at=iso(d.answered_at),
               waited_s=round((bridged_at - (d.queued_at or bridged_at)).total_seconds(), 3),
               after_answer_s=round((bridged_at - d.answered_at).total_seconds(), 3))
    return await go(ctx, Bridged())


class Bridged(State):
    """Caller and supervisor talk; when either hangs up the other leg and the bridge go."""

    name = "bridged"

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        ctx.record("key_in_bridge", digit=digit)
        return self

    async def on_desk_answered(self, ctx: CallContext, channel_id: str) -> State:
        if channel_id == ctx.data.desk_channel_id:
            return self  # a replayed StasisStart after a reconnect
        return await super().on_desk_answered(ctx, channel_id)

    async def on_caller_gone(self, ctx: CallContext, cause: str) -> State:
        if ctx.data.desk_channel_id is not None:
            await ctx.tel.hangup(ctx.data.desk_channel_id)
        return await go(ctx, Ended(EndReason.CALLER_CONNECTION_LOST if ctx.data.connection_lost
                                   else EndReason.CALLER_HANGUP))

    async def on_desk_gone(self, ctx: CallContext, channel_id: str, cause: str) -> State:
        if channel_id != ctx.data.desk_channel_id:
            return self
        await ctx.tel.hangup(ctx.data.channel_id)
        return await go(ctx, Ended(EndReason.SUPERVISOR_HANGUP))


class Ended(State):
    """Terminal: the call is over and logged; late events are ignored."""

    name = "ended"

    def __init__(self, reason: EndReason) -> None:
        self.reason = reason

    async def enter(self, ctx: CallContext) -> State:
        d = ctx.data
        ctx.timers.cancel_all()
        ctx.services.leave_queue()
        for bridge in (d.bridge_id, d.hold_bridge_id):
            if bridge is not None:
                await ctx.tel.destroy_bridge(bridge)
        if d.desk is not None:
            ctx.services.release_desk(d.desk, talked=d.answered_at is not None)
        if d.roster_result is None:
            d.roster_result = RosterResult.NONE_ENTERED
        d.ended_at = now()
        d.end_reason = self.reason
        ctx.record("ended", reason=self.reason.value)
        return self

    async def on_dtmf(self, ctx: CallContext, digit: str) -> State:
        return self

    async def on_desk_answered(self, ctx: CallContext, channel_id: str) -> State:
        await ctx.tel.hangup(channel_id)
        return self

    async def on_caller_gone(self, ctx: CallContext, cause: str) -> State:
        return self

    async def on_lost(self, ctx: CallContext, reason: EndReason) -> State:
        return self


class HandedToFallback(Ended):
    """The app failed for this call; the dialplan fallback now rings the desks natively."""

    def __init__(self) -> None:
        super().__init__(EndReason.HANDED_TO_FALLBACK)


class Call:
    """One caller's call: logs each event with the call id first, then hands it to its state."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx
        self.state: State = State()
        self._star_pending = False

    @property
    def channel_id(self) -> str:
        return self.ctx.data.channel_id

    @property
    def ended(self) -> bool:
        return isinstance(self.state, Ended)

    async def start(self, first: State | None = None) -> None:
        """Run the call from the greeting, or from ``first`` when resuming an adopted call."""
        log.info("Call %s: start in %s (caller %s)", self.channel_id,
                 first.name if first else "greeting", self.ctx.data.caller_number)
        self.state = await go(self.ctx, first or Greeting())

    async def dispatch(self, event: Event) -> None:
        before = self.state
        log.debug("Call %s: %s in %s", self.channel_id, event, before.name)
        await self._dispatch(event)
        if self.state is not before:
            # the call's course, one line per change of state (every event: DEBUG)
            log.info("Call %s: %s -> %s on %s", self.channel_id, before.name, self.state.name,
                     event)

    async def _dispatch(self, event: Event) -> None:
        match event:
            case Dtmf(digit) if self._star_pending:
                # '*' then one key is a command; the pair never reaches the number
                self._star_pending = False
                self.ctx.timers.cancel(Timer.STAR)
                self.state = await self.state.on_star(self.ctx, digit)
            case Dtmf("*") if not isinstance(self.state, Bridged | Ended):
                self._star_pending = True
                self.ctx.record("key", digit="*", state=self.state.name)
                self.ctx.timers.start(Timer.STAR, self.ctx.settings.entry.inter_digit_timeout)
            case TimerFired(Timer.STAR):
                self._star_pending = False
                self.ctx.record("star_command_ignored", key="*", state=self.state.name)
            case _:
                self.state = await self.state.handle(self.ctx, event)

    async def hand_to_fallback(self) -> None:
        """Safe path after an unexpected error: the dialplan fallback rings the desks."""
        if self.ended:
            return
        await self.ctx.tel.continue_to_fallback(self.channel_id)
        self.state = await go(self.ctx, HandedToFallback())

    async def abandon(self) -> None:
        """Close the call when nothing more can be done for it (its channel is gone)."""
        if not self.ended:
            try:
                self.state = await go(self.ctx, Ended(EndReason.CALLER_ABANDONED))
            except Exception:
                log.exception("Call %s: cleanup after abandon failed", self.channel_id)
