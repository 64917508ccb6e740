"""Which supervisor's desk phone takes which caller: a small call-distribution queue.

A desk is offered a call only when it is registered, not in use, not ringing for another
caller, not paused or signed out, out of wrap-up, and not resting after a failure (a desk that
answered busy or could not be rung rests 5 s, then 10, 20, at most 30 s, so a do-not-disturb
phone is never rung in a loop; only an answered call ends the run). Free desks go
longest-idle first. Callers
are served first come, first served, an emergency ahead of everyone; a free desk goes to the
longest-waiting caller that is not already ringing one.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ivr.clock import as_utc, now
from ivr.telephony import DeskPresence

NEVER = datetime.min.replace(tzinfo=UTC)
# how long a desk that failed (busy, declined, unreachable) is not offered again: doubling
# from the first to the last, reset once it answers a call
FAIL_REST_SECONDS = 5.0
FAIL_REST_MAX_SECONDS = 30.0


@dataclass
class DeskStatus:
    idle_since: datetime | None = None
    paused: bool = False
    signed_out: bool = False
    wrap_until: datetime | None = None
    no_answers: int = 0  # rung and not answered (or failed), in a row
    failures: int = 0  # failed in a row (busy, declined, unreachable): sets the rest
    rest_until: datetime | None = None
    console_user: str | None = None  # who holds the desk on the console (None: phone only)
    # the call whose outcome the desk owes (VERIFYLINE_OUTCOME_REQUIRED): no call until given
    owed: str | None = None


@dataclass(frozen=True)
class _Ticket:
    priority: int  # 0 emergency, 1 everyone else
    seq: int


class DeskPool:
    """The desk phones of the operations room, the callers waiting for one, and who is
    reserved for which call."""

    def __init__(self, desks: Sequence[str], idle_since: Mapping[str, datetime | None],
                 wrap_up: float = 0.0, auto_pause_after: int = 0) -> None:
        self.desks = tuple(desks)
        self.status = {d: DeskStatus(idle_since=as_utc(idle_since.get(d))) for d in self.desks}
        self.wrap_up = wrap_up
        self.auto_pause_after = auto_pause_after
        self._reserved: dict[str, str] = {}
        self._queue: dict[str, _Ticket] = {}
        self._seq = itertools.count()

    # --- callers -------------------------------------------------------------------------

    def join(self, call_key: str, emergency: bool = False) -> None:
        """Queue a caller (again: keeps their place, an emergency moves to the front)."""
        ticket = self._queue.get(call_key)
        priority = 0 if emergency else 1
        if ticket is None:
            self._queue[call_key] = _Ticket(priority, next(self._seq))
        elif priority < ticket.priority:
            self._queue[call_key] = _Ticket(priority, ticket.seq)

    def leave(self, call_key: str) -> None:
        self._queue.pop(call_key, None)

    def waiting(self) -> list[str]:
        """Queued callers in the order they are served."""
        return sorted(self._queue, key=lambda k: (self._queue[k].priority, self._queue[k].seq))

    def position(self, call_key: str) -> int:
        """1 for the next caller to be served; 0 when not queued."""
        order = self.waiting()
        return order.index(call_key) + 1 if call_key in order else 0

    def my_turn(self, call_key: str) -> bool:
        """May this caller take a desk now (not queued, or the longest-waiting not ringing
        one)? Callers woken out of turn need not even read the desks' presence."""
        return call_key not in self._queue or self._first_unserved() == call_key

    def first_unserved(self) -> str | None:
        """The caller whose turn it is: the longest-waiting one not ringing a desk."""
        return self._first_unserved()

    def _first_unserved(self) -> str | None:
        ringing = set(self._reserved.values())
        return next((k for k in self.waiting() if k not in ringing), None)

    # --- desks ---------------------------------------------------------------------------

    def available(self, desk: str, at: datetime | None = None) -> bool:
        """Not paused, not signed out, out of wrap-up (presence aside)."""
        st = self.status.get(desk)
        if st is None or st.paused or st.signed_out or st.owed is not None:
            return False
        at = at or now()
        return all(until is None or until <= at for until in (st.wrap_until, st.rest_until))

    def free(self, presence: Mapping[str, DeskPresence], exclude: frozenset[str] = frozenset(),
             at: datetime | None = None) -> list[str]:
        """Desks that can ring now, longest idle first (never used counts as idle longest)."""
        candidates = [
            d for d in self.desks
            if d not in exclude and d not in self._reserved and self.available(d, at)
            and (p := presence.get(d)) is not None and p.registered and not p.in_use
        ]
        order = {d: i for i, d in enumerate(self.desks)}
        return sorted(candidates, key=lambda d: (self.status[d].idle_since or NEVER, order[d]))

    def any_signed_in(self, presence: Mapping[str, DeskPresence]) -> bool:
        """Is anyone there at all: a registered desk whose supervisor has not signed out."""
        return any((p := presence.get(d)) is not None and p.registered
                   and not self.status[d].signed_out for d in self.desks)

    def reserve(self, presence: Mapping[str, DeskPresence], call_key: str,
                exclude: frozenset[str] = frozenset(), at: datetime | None = None,
                every: bool = False) -> list[str]:
        """If it is this caller's turn, reserve the best free desk for them (``every``: all
        free desks, for ring-all) and return what was reserved, best first."""
        if not self.my_turn(call_key):
            return []  # someone has waited longer
        free = self.free(presence, exclude, at)
        taken = free if every else free[:1]
        for desk in taken:
            self._reserved[desk] = call_key
        return taken

    def hold(self, desk: str, call_key: str) -> None:
        """Mark a desk as taken by a call found already in progress (after a restart)."""
        self._reserved[desk] = call_key

    def answered(self, desk: str) -> None:
        if desk in self.status:
            st = self.status[desk]
            st.no_answers, st.failures, st.rest_until = 0, 0, None

    def no_answer(self, desk: str) -> bool:
        """Count a ring nobody answered; True when that pauses the desk automatically."""
        st = self.status.get(desk)
        if st is None:
            return False
        st.no_answers += 1
        if self.auto_pause_after and st.no_answers >= self.auto_pause_after and not st.paused:
            st.paused = True
            return True
        return False

    def failed(self, desk: str, counts: bool = True, at: datetime | None = None
               ) -> tuple[bool, datetime | None]:
        """A desk that was offered a call and did not take it (busy, declined, unreachable, or
        its supervisor hung up during the whisper): it rests before it is offered again, to
        anyone. ``counts``: it also counts as unanswered towards the auto-pause. Returns
        (paused automatically now, when the rest ends)."""
        st = self.status.get(desk)
        if st is None:
            return False, None
        st.failures += 1
        rest = min(FAIL_REST_SECONDS * 2 ** (st.failures - 1), FAIL_REST_MAX_SECONDS)
        st.rest_until = (at or now()) + timedelta(seconds=rest)
        return (self.no_answer(desk) if counts else False), st.rest_until

    def release(self, desk: str, talked: bool, at: datetime | None = None,
                call_key: str | None = None) -> datetime | None:
        """Give a reserved desk back; after a conversation it rests for the wrap-up time.
        Returns when the desk can be offered again, if that is later than now. With
        ``call_key``, only that call's reservation is given back (never another call's)."""
        if call_key is None or self._reserved.get(desk) == call_key:
            self._reserved.pop(desk, None)
        elif not talked:
            return None
        st = self.status.get(desk)
        if st is None or not talked:
            return None
        at = at or now()
        st.idle_since = at
        st.wrap_until = at + timedelta(seconds=self.wrap_up) if self.wrap_up else None
        return st.wrap_until

    def set_availability(self, desk: str, paused: bool, signed_out: bool) -> bool:
        """Apply what the store says; True if anything changed."""
        st = self.status.get(desk)
        if st is None or (st.paused, st.signed_out) == (paused, signed_out):
            return False
        st.paused, st.signed_out = paused, signed_out
        if not paused:
            # a rest after a failure is kept: this may be the store's view from before the
            # line paused the desk itself (an auto-pause journaled a moment ago), and ringing
            # the desk again at once is exactly what the rest prevents
            st.no_answers = 0
        return True

    def owe_outcome(self, desk: str, channel_id: str) -> None:
        """The desk's call ended owing its outcome: set here, at the end, so the desk is never
        offered a call in the moment before the store says so."""
        st = self.status.get(desk)
        if st is not None:
            st.owed = channel_id

    def set_console(self, desk: str, console_user: str | None, wrapup_channel: str | None,
                    last_channel: str | None) -> bool:
        """Apply the store's console binding and owed outcome; True if the desk may be offered
        a call now when it could not before. The owed outcome set locally goes only once the
        store has the call's end (``last_channel``) and nothing owed; one the store has (an
        earlier run's) is owed here too."""
        st = self.status.get(desk)
        if st is None:
            return False
        st.console_user = console_user
        if wrapup_channel is not None:
            st.owed = wrapup_channel
            return False
        if st.owed is not None and last_channel == st.owed:
            st.owed = None
            return True
        return False

    def wrapping_up(self, desk: str, at: datetime | None = None) -> bool:
        """In the wrap-up time after a call, or owing its outcome."""
        st = self.status.get(desk)
        if st is None:
            return False
        return st.owed is not None or (st.wrap_until is not None and st.wrap_until > (at or now()))

    def reserved_for(self, desk: str) -> str | None:
        return self._reserved.get(desk)
