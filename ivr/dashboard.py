"""The operations dashboard (docs/console.md, "Dashboard"): who is waiting, what each desk is
doing, the callbacks still to make and today's counts.

Everything here reads what the line wrote. A caller is waiting while their call has not ended
and its state is one of :data:`WAITING_STATES` (the state machine's ``connecting``: queued,
a desk may be ringing; ``whispering``: a desk answered and hears the whisper, the caller still
hears the hold music). Their place in the queue is the line's order: emergencies first, then
the longest wait (ivr.callflow ``Connecting``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ivr import callers, calllog
from ivr import desks as desk_room
from ivr.callflow import FLAG_EMERGENCY
from ivr.clock import as_utc, iso, now
from ivr.models import Call, Callback, CallEvent, EndReason, RosterResult
from ivr.screenpop import outcome_words

WAITING_STATES = ("connecting", "whispering")


def _queued_at(session: Session, call_ids: list[int]) -> dict[int, datetime]:
    """When each call first joined the queue (its first ``queued`` event)."""
    if not call_ids:
        return {}
    rows = session.execute(select(CallEvent.call_id, func.min(CallEvent.at))
                           .where(CallEvent.call_id.in_(call_ids), CallEvent.kind == "queued")
                           .group_by(CallEvent.call_id))
    out: dict[int, datetime] = {}
    for call_id, at in rows:
        aware = as_utc(at)
        if aware is not None:
            out[call_id] = aware
    return out


def waiting(session: Session, at: datetime) -> list[dict[str, Any]]:
    """The callers waiting for a supervisor, in queue order (position 1 is answered next)."""
    calls = list(session.scalars(select(Call).where(Call.ended_at.is_(None),
                                                    Call.state.in_(WAITING_STATES))))
    queued = _queued_at(session, [c.id for c in calls])
    rows: list[dict[str, Any]] = []
    for c in calls:
        since = queued.get(c.id) or as_utc(c.started_at) or at
        emergency = FLAG_EMERGENCY in c.flags.split(",")
        rows.append({"call_id": c.id, "reference": c.reference,
                     "caller_number": callers.shown(c.caller_number),
                     "withheld": callers.caller_number(c.caller_number) is None,
                     "queued_at": iso(since),
                     "wait_seconds": max(0, int((at - since).total_seconds())),
                     "emergency": emergency, "state": c.state,
                     "_order": (not emergency, since, c.id)})
    rows.sort(key=lambda r: r["_order"])
    for position, row in enumerate(rows, start=1):
        del row["_order"]
        row["position"] = position
    return rows


def desk_rows(session: Session) -> list[dict[str, Any]]:
    return [{"desk": d.desk, "state": d.state, "state_since": iso(d.state_since),
             "paused": d.paused, "signed_out": d.signed_out,
             "pause_reason": d.pause_reason or None, "console_user": d.console_user,
             "outcome_owed": d.wrapup_channel is not None,
             "outcome_owed_reference": d.wrapup_reference}
            for d in desk_room.views(session)]


def today(session: Session, at: datetime) -> dict[str, Any]:
    """Counts of the calls started today (UTC), on the started_at index."""
    start = at.replace(hour=0, minute=0, second=0, microsecond=0)
    day = (Call.started_at >= start, Call.started_at < start + timedelta(days=1))
    calls = int(session.scalar(select(func.count(Call.id)).where(*day)) or 0)
    answered = int(session.scalar(select(func.count(Call.id)).where(
        *day, Call.answered_at.is_not(None))) or 0)
    abandoned = int(session.scalar(select(func.count(Call.id)).where(
        *day, Call.end_reason == EndReason.CALLER_ABANDONED.value)) or 0)
    callbacks = int(session.scalar(select(func.count(Callback.id)).where(
        Callback.created_at >= start, Callback.created_at < start + timedelta(days=1))) or 0)
    by_result = {r.value: 0 for r in RosterResult}
    for result, n in session.execute(select(Call.roster_result, func.count(Call.id))
                                     .where(*day).group_by(Call.roster_result)):
        key = (result or RosterResult.NONE_ENTERED).value
        by_result[key] = by_result.get(key, 0) + int(n)
    by_outcome: dict[str, int] = {}
    for outcome, n in session.execute(select(Call.outcome, func.count(Call.id))
                                      .where(*day).group_by(Call.outcome)):
        by_outcome[outcome or "none"] = int(n)
    owed = sum(1 for d in desk_room.views(session) if d.wrapup_channel is not None)
    return {"day": start.date().isoformat(), "calls": calls, "answered": answered,
            "abandoned": abandoned, "callbacks": callbacks, "by_result": by_result,
            "by_outcome": by_outcome,
            "by_outcome_words": {k: outcome_words(k) if k != "none" else "None recorded"
                                 for k in by_outcome},
            "outcomes_owed": owed}


def dashboard(session: Session, at: datetime | None = None) -> dict[str, Any]:
    at = at or now()
    return {"at": iso(at), "waiting": waiting(session, at), "desks": desk_rows(session),
            "callbacks": calllog.callbacks(session), "today": today(session, at)}
