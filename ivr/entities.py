"""The call entity: what the line knows about one call.

:class:`CallData` is what is persisted — the call row and every journal ``save`` entry hold
it (see :mod:`ivr.logops`). Its :attr:`CallData.runtime` is bookkeeping of one run of the
app only (the desk legs ringing now, the desks tried this round): it is never written,
because after a restart Asterisk, not an old record, says which legs still exist; adoption
rebuilds what it needs from the stored ``desk_channel_id`` and the live channels
(:mod:`ivr.ids`).

Persistence imports this module, never the state machine (:mod:`ivr.callflow`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from ivr.clock import now
from ivr.models import EndReason, RosterResult
from ivr.prompts import DEFAULT_LANGUAGE


@dataclass
class Legs:
    """The desk legs of a call in this run of the app (never persisted)."""

    legs: dict[str, str] = field(default_factory=dict)  # ringing leg -> desk (not yet bridged)
    tried_desks: set[str] = field(default_factory=set)  # rung this round (not again until all)
    desk_legs: int = 0  # desk legs created so far (names them '<channel>-deskN', ivr.ids)


@dataclass
class CallData:
    """Everything known about one call; saved with each timeline event (but ``runtime``)."""

    channel_id: str
    caller_number: str | None
    reference: str
    started_at: datetime = field(default_factory=now)
    digits: str = ""
    roster_result: RosterResult | None = None
    officer_id: int | None = None
    officer_label: str = ""
    desk: str | None = None
    desk_channel_id: str | None = None
    answered_desk: str | None = None
    bridge_id: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    state: str = "new"
    attempts: int = 0
    language: str = DEFAULT_LANGUAGE
    flags: set[str] = field(default_factory=set)
    hold_bridge_id: str | None = None
    queued_at: datetime | None = None
    recording: str | None = None
    # set from CallerGone before any state sees it, so every state's on_caller_gone (and the
    # base one they defer to) can tell a lost connection from a hang-up
    connection_lost: bool = False
    # a desk held on the console answered with VERIFYLINE_OUTCOME_REQUIRED on: when the call
    # ends that desk owes its outcome (ivr.desks)
    outcome_owed: bool = False
    # the officer's open pre-registered encounter the call is logged against (None: the
    # call's own encounter); the caller is still read the call's own reference
    encounter_reference: str | None = None
    runtime: Legs = field(default_factory=Legs)

    def snapshot(self) -> CallData:
        """A copy to hand to the journal's thread: ``flags`` copied (the call changes them in
        place), ``runtime`` left out (never persisted); every other field is immutable, so
        shared. What ``dataclasses.replace(self, flags=..., runtime=Legs())`` gives, at a
        fraction of its cost: it is taken at every step of every call's timeline."""
        copy = object.__new__(CallData)
        copy.__dict__.update(self.__dict__)
        copy.flags = set(self.flags)
        copy.runtime = Legs()
        return copy


PERSISTED_FIELDS = tuple(f.name for f in fields(CallData) if f.name != "runtime")
"""The CallData fields a journal entry holds, in declaration order."""
