"""The console's side of a desk: who holds it, what state the line shows for it, and the
outcome it still owes (``VERIFYLINE_OUTCOME_REQUIRED``).

The line (the ARI app) is the only writer of a desk's shown state: it computes it here, in
:func:`desk_state`, from what it knows at that moment, and journals it only when it changes
(:mod:`ivr.logops` ``desk_state``). The console reads it back through :func:`views`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from ivr.clock import now
from ivr.exceptions import ConsoleError
from ivr.models import Call, Supervisor
from ivr.store import notify


class DeskState(enum.StrEnum):
    """What the dashboard shows for a desk (``Supervisor.state``)."""

    FREE = "free"
    RINGING = "ringing"
    TALKING = "talking"  # the whisper or the conversation
    WRAP_UP = "wrap_up"  # the wrap-up time, or an outcome still owed
    PAUSED = "paused"
    SIGNED_OUT = "signed_out"
    UNREGISTERED = "unregistered"  # the desk phone is not registered
    UNKNOWN = "unknown"  # nothing said yet


def desk_state(*, registered: bool, in_use: bool, ringing: bool, talking: bool,
               wrap_up: bool, paused: bool, signed_out: bool) -> DeskState:
    """The one place a desk's shown state is decided. A call in progress wins over
    everything (a supervisor talking is talking, whatever they chose before); then whether
    the phone is there at all; then the supervisor's own choice; then the wrap-up."""
    if talking:
        return DeskState.TALKING
    if ringing:
        return DeskState.RINGING
    if not registered:
        return DeskState.UNREGISTERED
    if in_use:
        return DeskState.TALKING  # a call of the phone's own (not one the line offered)
    if signed_out:
        return DeskState.SIGNED_OUT
    if paused:
        return DeskState.PAUSED
    if wrap_up:
        return DeskState.WRAP_UP
    return DeskState.FREE


@dataclass(frozen=True)
class DeskRow:
    """What the line reads about one desk every second (services.availability)."""

    paused: bool
    signed_out: bool
    console_user: str | None = None
    wrapup_channel: str | None = None
    last_channel: str | None = None


@dataclass(frozen=True)
class DeskView:
    """One desk as the console shows it."""

    desk: str
    state: str
    state_since: datetime | None
    paused: bool
    signed_out: bool
    pause_reason: str
    console_user: str | None
    wrapup_channel: str | None
    wrapup_reference: str | None  # the reference of the call whose outcome is owed


@dataclass(frozen=True)
class CallbackJob:
    """A callback the line claimed: ring ``desk``, then ``number``."""

    command_id: int
    desk: str
    number: str | None  # None: withheld (refused when requested; never dialled)
    reference: str
    requested_by: str


def rows(session: Session) -> dict[str, DeskRow]:
    return {s.desk: DeskRow(s.paused, s.signed_out, s.console_user, s.wrapup_channel,
                            s.last_channel)
            for s in session.scalars(select(Supervisor))}


def set_state(session: Session, desk: str, state: str, at: datetime) -> None:
    """The line's word on a desk's state (journaled, so applied in order after its calls)."""
    session.execute(update(Supervisor).where(Supervisor.desk == desk).values(
        state=state, state_since=at))
    notify(session)


def _desk(session: Session, desk: str) -> Supervisor:
    sup = session.scalars(select(Supervisor).where(Supervisor.desk == desk)).first()
    if sup is None:
        raise ConsoleError("desk_unknown", f"there is no desk {desk!r}", 404)
    return sup


def take(session: Session, desk: str, username: str) -> None:
    sup = _desk(session, desk)
    if sup.console_user is not None and sup.console_user != username:
        raise ConsoleError("desk_taken", f"desk {desk} is held by {sup.console_user}", 409)
    if sup.console_user is None:
        # one UPDATE guarded by the old value: two users taking the same desk at once, one wins
        done = cast(CursorResult[Any], session.execute(update(Supervisor).where(
            Supervisor.id == sup.id, Supervisor.console_user.is_(None)).values(
            console_user=username, console_since=now())))
        if done.rowcount == 0:
            raise ConsoleError("desk_taken", f"desk {desk} was just taken by someone else",
                               409)


def leave(session: Session, desk: str, username: str) -> None:
    """Give the desk back (only its holder can); it stays owing an outcome it owes."""
    _desk(session, desk)
    session.execute(update(Supervisor).where(
        Supervisor.desk == desk, Supervisor.console_user == username).values(
        console_user=None, console_since=None))


def release(session: Session, desk: str) -> None:
    """An admin lets a desk go without the outcome it owes (audited by the caller)."""
    _desk(session, desk)
    session.execute(update(Supervisor).where(Supervisor.desk == desk).values(
        wrapup_channel=None))
    notify(session)


def views(session: Session) -> list[DeskView]:
    sups = list(session.scalars(select(Supervisor).order_by(Supervisor.desk)))
    owed = [s.wrapup_channel for s in sups if s.wrapup_channel]
    refs = {channel: ref for channel, ref in session.execute(
        select(Call.channel_id, Call.reference).where(Call.channel_id.in_(owed)))}
    return [DeskView(desk=s.desk, state=s.state, state_since=s.state_since, paused=s.paused,
                     signed_out=s.signed_out, pause_reason=s.pause_reason,
                     console_user=s.console_user, wrapup_channel=s.wrapup_channel,
                     wrapup_reference=refs.get(s.wrapup_channel) if s.wrapup_channel else None)
            for s in sups]


def call_ended(sup: Supervisor, call: Call, owes_outcome: bool) -> None:
    """An answered call of this desk ended: the desk owes its outcome (``owes_outcome``:
    required, and not already given: the supervisor may record it while still talking);
    ``last_channel`` tells the line this end is written."""
    if owes_outcome:
        sup.wrapup_channel = call.channel_id
    sup.last_channel = call.channel_id

