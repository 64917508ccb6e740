"""What the supervisor's screen shows about a call: the screen-pop (docs/console.md, "Desk and
screen-pop"), and the desk events the console's live hub fans out.

Everything here reads; the line writes the rows (the call, its ``call_event`` timeline, the
outcomes). A screen-pop is a handful of indexed queries: the call with its encounter, the
officer by the number keyed (the roster's unique warrant number), the device of a
pre-registered encounter, the history of the officer's number and of the caller's number
(``ix_call_digits_entered`` and ``ix_call_caller_number``, bounded to 30 days), the outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from ivr import callers
from ivr.clock import iso, now
from ivr.models import (
    Call,
    CallEvent,
    CallOutcome,
    DeviceToken,
    Encounter,
    EncounterKind,
    Officer,
    OfficerStatus,
    Outcome,
    RosterResult,
    Supervisor,
)

HISTORY_DAYS = 30
HISTORY_LIMIT = 20

RESULT_WORDS = {
    RosterResult.ON_DUTY: "On duty now",
    RosterResult.OFF_DUTY: "Off duty",
    RosterResult.RESTRICTED: "Restricted: treat with caution",
    RosterResult.UNKNOWN: "Not on the roster",
    RosterResult.NONE_ENTERED: "No number entered",
}
RESTRICTED_WHY = {
    OfficerStatus.WITHDRAWN: "card withdrawn",
    OfficerStatus.SUSPENDED: "suspended",
    OfficerStatus.LEFT: "left",
}
FLAG_WORDS = {
    "many_lookups": "Many lookups from this number",
    "emergency": "Emergency (*9)",
    "asked_for_supervisor": "Asked for a supervisor (*0)",
}
OUTCOME_WORDS = {
    Outcome.VERIFIED: "Verified",
    Outcome.NOT_VERIFIED: "Not verified",
    Outcome.ESCALATED: "Escalated (officer's conduct)",
    Outcome.ADVICE_GIVEN: "Advice given",
    Outcome.CALLER_LEFT: "Caller left before verification",
}

# the call_event kinds a desk's screen follows, and the phase each puts the desk's screen in
# ("cleared": the call no longer rings this desk; it rang another or the caller left)
DESK_PHASES = {
    "desk_offered": "ringing",  # just before the INVITE (ivr.callflow Connecting.ring)
    "desk_ringing": "ringing",
    "whisper": "answered",
    "bridged": "answered",
    "desk_no_answer": "cleared",
    "no_answer": "cleared",
    "desk_cancelled": "cleared",
    "desk_failed": "cleared",
    "desk_lost": "cleared",
    "ended": "ended",
    "outcome": "outcome",  # a new outcome: the screen keeps its phase, shows the entry
}


def result_view(result: RosterResult | None, officer: Officer | None) -> dict[str, str]:
    """The roster result as value, words and the colour class the console styles."""
    value = result or RosterResult.NONE_ENTERED
    words = RESULT_WORDS[value]
    if value is RosterResult.RESTRICTED and officer is not None and officer.status in (
            RESTRICTED_WHY):
        words = f"Restricted — {RESTRICTED_WHY[officer.status]}: treat with caution"
    return {"value": value.value, "words": words, "colour": f"result-{value.value}"}


def outcome_words(outcome: str | None) -> str | None:
    if outcome is None:
        return None
    try:
        return OUTCOME_WORDS[Outcome(outcome)]
    except ValueError:
        return outcome


def officer_view(officer: Officer | None) -> dict[str, Any] | None:
    if officer is None:
        return None
    return {"warrant_number": officer.warrant_number, "name": officer.name,
            "rank": officer.rank, "unit": officer.unit, "station": officer.station,
            "status": officer.status.value, "on_duty_from": iso(officer.on_duty_from),
            "on_duty_until": iso(officer.on_duty_until), "photo": officer.photo}


def _phase(call: Call) -> str:
    if call.ended_at is not None:
        return "ended"
    if call.answered_at is not None:
        return "answered"
    return "ringing"


def _history_row(call: Call) -> dict[str, Any]:
    return {"call_id": call.id, "at": iso(call.started_at),
            "reference": call.reference or call.encounter.reference,
            "warrant_number": call.digits_entered,
            "caller_number": callers.shown(call.caller_number),
            "result": (call.roster_result or RosterResult.NONE_ENTERED).value,
            "result_words": RESULT_WORDS[call.roster_result or RosterResult.NONE_ENTERED],
            "outcome": call.outcome, "outcome_words": outcome_words(call.outcome)}


def outcomes(session: Session, call_id: int) -> list[dict[str, Any]]:
    """Every outcome recorded for the call, oldest first (a correction is a later entry)."""
    rows = session.scalars(select(CallOutcome).where(CallOutcome.call_id == call_id)
                           .order_by(CallOutcome.id))
    return [{"at": iso(o.at), "outcome": o.outcome, "words": outcome_words(o.outcome),
             "note": o.note, "by": o.by_user, "desk": o.desk} for o in rows]


def preregistration(session: Session, encounter: Encounter) -> dict[str, Any] | None:
    """The officer's pre-registered encounter this call is logged against, or None."""
    if encounter.kind != EncounterKind.DEVICE.value:
        return None
    device = (session.get(DeviceToken, encounter.device_token_id)
              if encounter.device_token_id is not None else None)
    return {"reference": encounter.reference, "opened_at": iso(encounter.opened_at),
            "closed_at": iso(encounter.closed_at), "place": encounter.place,
            "latitude": encounter.latitude, "longitude": encounter.longitude,
            "purpose": encounter.purpose,
            "device": (device.label or f"token {device.prefix}") if device else None}


def screen_pop(session: Session, call_id: int, at: datetime | None = None) -> dict[str, Any] | None:
    """What the supervisor's screen shows about one call (None: no such call)."""
    call = session.scalars(
        select(Call).where(Call.id == call_id)
        .options(joinedload(Call.encounter), joinedload(Call.supervisor))).first()
    if call is None:
        return None
    officer = (session.scalars(select(Officer).where(
        Officer.warrant_number == call.digits_entered)).first()
        if call.digits_entered else None)
    if officer is None and call.encounter.officer_id is not None:
        officer = session.get(Officer, call.encounter.officer_id)
    since = (at or now()) - timedelta(days=HISTORY_DAYS)
    about_officer: list[dict[str, Any]] = []
    if call.digits_entered:
        about_officer = [_history_row(c) for c in session.scalars(
            select(Call).where(Call.digits_entered == call.digits_entered,
                               Call.started_at >= since, Call.id != call.id)
            .options(joinedload(Call.encounter))
            .order_by(Call.started_at.desc()).limit(HISTORY_LIMIT))]
    number = callers.caller_number(call.caller_number)
    from_caller: list[dict[str, Any]] = []
    if number is not None:  # withheld callers are many people: they have no history
        from_caller = [_history_row(c) for c in session.scalars(
            select(Call).where(Call.caller_number == call.caller_number,
                               Call.started_at >= since, Call.id != call.id)
            .options(joinedload(Call.encounter))
            .order_by(Call.started_at.desc()).limit(HISTORY_LIMIT))]
    flags = [f for f in call.flags.split(",") if f]
    entries = outcomes(session, call.id)
    return {
        "call_id": call.id,
        "reference": call.reference or call.encounter.reference,
        "encounter_reference": call.encounter.reference,
        "caller_number": callers.shown(call.caller_number),
        "digits": call.digits_entered,
        "result": result_view(call.roster_result, officer),
        "officer": officer_view(officer),
        "preregistration": preregistration(session, call.encounter),
        "history": {"officer": about_officer, "caller": from_caller, "days": HISTORY_DAYS},
        "flags": [{"flag": f, "words": FLAG_WORDS.get(f, f)} for f in flags],
        "desk": call.supervisor.desk if call.supervisor else None,
        "phase": _phase(call),
        "state": call.state,
        "started_at": iso(call.started_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "end_reason": call.end_reason,
        "recording": call.recording is not None,
        "outcome": call.outcome,
        "outcome_words": outcome_words(call.outcome),
        "outcomes": entries,
    }


@dataclass(frozen=True)
class DeskEvent:
    """One call_event a desk's screen follows: ``desk`` from the event's detail, else the
    desk that answered the call (an ``ended``)."""

    id: int
    call_id: int
    kind: str
    desk: str | None
    at: datetime

    @property
    def phase(self) -> str:
        return DESK_PHASES[self.kind]


def last_event_id(session: Session) -> int:
    """The newest call_event's id (0: none yet): where a new hub starts following."""
    return int(session.scalar(select(func.max(CallEvent.id))) or 0)


def desk_events_since(session: Session, last_id: int, limit: int = 500,
                      desk: str | None = None) -> list[DeskEvent]:
    """The desk events after ``last_id``, oldest first (the primary key's range: cheap)."""
    rows = session.execute(
        select(CallEvent.id, CallEvent.call_id, CallEvent.kind, CallEvent.detail, CallEvent.at,
               Supervisor.desk)
        .join(Call, Call.id == CallEvent.call_id)
        .outerjoin(Supervisor, Supervisor.id == Call.supervisor_id)
        .where(CallEvent.id > last_id, CallEvent.kind.in_(list(DESK_PHASES)))
        .order_by(CallEvent.id).limit(limit))
    return [e for e in _desk_events(rows) if desk is None or e.desk == desk]


def _desk_events(rows: Iterable[Any]) -> Iterator[DeskEvent]:
    for event_id, call_id, kind, detail, at, answered_desk in rows:
        named = detail.get("desk") if isinstance(detail, dict) else None
        which = named if isinstance(named, str) else answered_desk
        yield DeskEvent(event_id, call_id, kind, which, at)


def latest_desk_event(session: Session, desk: str, scan: int = 500) -> DeskEvent | None:
    """The desk's newest event among the last ``scan`` desk events (a fresh page's start)."""
    rows = session.execute(
        select(CallEvent.id, CallEvent.call_id, CallEvent.kind, CallEvent.detail, CallEvent.at,
               Supervisor.desk)
        .join(Call, Call.id == CallEvent.call_id)
        .outerjoin(Supervisor, Supervisor.id == Call.supervisor_id)
        .where(CallEvent.kind.in_(list(DESK_PHASES)))
        .order_by(CallEvent.id.desc()).limit(scan))
    for event in _desk_events(rows):
        if event.desk == desk:
            return event
    return None
