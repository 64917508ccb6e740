"""The call log: the one place call rows, encounters and timelines are written and read."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ScalarSelect, Table, bindparam, case, delete, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from ivr import callers, desks, ids
from ivr.clock import iso, now
from ivr.entities import CallData
from ivr.models import (
    Call,
    Callback,
    CallEvent,
    CallOutcome,
    CallPath,
    Encounter,
    EncounterKind,
    EndReason,
    RosterResult,
    Supervisor,
)
from ivr.store import insert_new, notify

REFERENCE_DIGITS = 6
# calls that ended before a supervisor answered and whose caller should be called back: they
# gave up while queued or during the whisper, or the line lost them (the app or Asterisk went
# down, or their own connection vanished)
CALL_BACK = (EndReason.CALLER_ABANDONED, EndReason.CALLER_LEFT_DURING_WHISPER, EndReason.LOST,
             EndReason.ASTERISK_RESTART, EndReason.CALLER_CONNECTION_LOST)


def random_reference() -> str:
    """A short numeric encounter reference a caller can quote (no leading zero)."""
    return secrets.choice("123456789") + "".join(
        secrets.choice("0123456789") for _ in range(REFERENCE_DIGITS - 1))


# statements built once (one per call each: building them was much of their CPU)
_REFERENCE_TAKEN = select(Encounter.id).where(Encounter.reference == bindparam("b_ref"))
_CALL_REFERENCE_TAKEN = select(Call.id).where(Call.reference == bindparam("b_ref"))
_RECENT_LOOKUPS = select(func.count(Call.id)).where(
    Call.caller_number == bindparam("b_number"), Call.started_at >= bindparam("b_since"),
    Call.channel_id != bindparam("b_call"), Call.digits_entered != "")


def new_reference(session: Session) -> str:
    """A short numeric encounter reference a caller can quote, unique in the store."""
    for _ in range(50):
        ref = random_reference()
        # a call attached to a pre-registered encounter keeps the reference it was read
        # after its own encounter is gone: neither may be drawn again
        if (session.execute(_REFERENCE_TAKEN, {"b_ref": ref}).first() is None
                and session.execute(_CALL_REFERENCE_TAKEN, {"b_ref": ref}).first() is None):
            return ref
    raise RuntimeError("could not find a free encounter reference")  # pragma: no cover


def open_call(
    session: Session, channel_id: str, caller_number: str | None, started_at: datetime,
    path: CallPath = CallPath.ARI, reference: str | None = None, batch: Batch | None = None,
) -> str:
    """Create the encounter and the call row for a new caller; return the encounter reference.
    Idempotent, also when several writers open the same call at once (the loser of the race
    drops its encounter and returns the winner's reference).

    ``reference``: the one the line already chose (and may have told the caller) while the
    database was away. In the rare case another encounter took it meanwhile, the call is
    logged as ``<reference>-2`` (then -3...) so both stay findable by what the caller says."""
    for attempt in range(5):
        # a batch that read this chunk's calls knows a new one is not there yet
        if attempt > 0 or batch is None or not batch.absent(channel_id):
            existing = session.scalars(select(Call).where(Call.channel_id == channel_id)
                                       ).first()
            if existing is not None:
                return existing.reference or existing.encounter.reference
        ref = (new_reference(session) if reference is None
               else reference if attempt == 0 else f"{reference}-{attempt + 1}")
        encounter_id = insert_new(session, Encounter, "reference", reference=ref,
                                  caller_number=caller_number, opened_at=started_at)
        if encounter_id is None:
            continue  # another caller got this reference meanwhile: draw again
        call_id = insert_new(session, Call, "channel_id", channel_id=channel_id,
                             reference=ref, encounter_id=encounter_id, caller_number=caller_number,
                             started_at=started_at, path=path, state="new", digits_entered="")
        if call_id is None:  # another writer opened this very call meanwhile
            session.execute(delete(Encounter).where(Encounter.id == encounter_id))
            continue
        if batch is not None:
            batch.opened(channel_id, call_id)
        _event(session, batch, call_id, started_at, "started",
               {"caller_number": caller_number, "path": path.value, "reference": ref})
        return ref
    raise RuntimeError(f"could not open call {channel_id}")  # pragma: no cover


def _supervisor(session: Session, desk: str | None) -> Supervisor | None:
    """The desk's row, created when missing (by us or, in a race, by another writer)."""
    if desk is None:
        return None
    sup = session.scalars(select(Supervisor).where(Supervisor.desk == desk)).first()
    if sup is None:
        insert_new(session, Supervisor, "desk", desk=desk, display_name=desk)
        sup = session.scalars(select(Supervisor).where(Supervisor.desk == desk)).one()
    return sup


def save(session: Session, data: CallData, kind: str, detail: dict[str, object],
         at: datetime | None = None, batch: Batch | None = None) -> None:
    """Append one timeline event and bring the call row up to date with ``data``.

    With a ``batch`` (a journal chunk being applied) it is queued for the batch's bulk
    statements (:meth:`Batch.save`), but for a call logged against a pre-registered
    encounter, which goes on here."""
    if batch is not None and batch.save(data, kind, detail, at):
        return
    call = session.scalars(select(Call).where(Call.channel_id == data.channel_id)).one()
    call.digits_entered = data.digits
    call.flags = ",".join(sorted(data.flags))
    call.recording = data.recording
    call.language = data.language
    call.roster_result = data.roster_result
    call.state = data.state
    call.desk_channel_id = data.desk_channel_id
    call.bridge_id = data.bridge_id
    call.answered_at = data.answered_at
    call.ended_at = data.ended_at
    call.end_reason = data.end_reason.value if data.end_reason else None
    sup = _supervisor(session, data.answered_desk)
    call.supervisor_id = sup.id if sup else None
    if data.encounter_reference is not None:
        attach(session, call, data.encounter_reference)
    if data.officer_id is not None and call.encounter.officer_id is None:
        call.encounter.officer_id = data.officer_id
    if data.ended_at is not None and sup is not None:
        sup.idle_since = data.ended_at
    if kind == "ended" and sup is not None:
        owed = session.scalars(select(CallOutcome.id).where(CallOutcome.call_id == call.id)
                               ).first() is None
        desks.call_ended(sup, call, data.outcome_owed and owed)
    _event(session, batch, call.id, at or now(), kind, dict(detail))
    if batch is None:
        notify(session)  # the console's live hub: a new timeline event
    else:
        batch.notify = True
    # answered_at is kept when the caller left during the whisper: they never talked
    if (kind == "ended" and data.end_reason in CALL_BACK and data.bridge_id is None
            and (data.queued_at is not None or data.end_reason is not EndReason.CALLER_ABANDONED)):
        # they waited for a supervisor and gave up, or the line lost them: call them back
        existing = session.scalars(select(Callback).where(Callback.call_id == call.id)).first()
        if existing is None:
            session.add(Callback(call_id=call.id, caller_number=data.caller_number,
                                 reference=data.reference, digits_entered=data.digits,
                                 created_at=data.ended_at or now()))


def attach(session: Session, call: Call, reference: str) -> None:
    """Log the call against the pre-registered encounter ``reference`` (the officer's, opened
    by their device); the call's own encounter, now empty, goes. ``call.reference`` stays
    what the caller was read: telling a caller a pre-registration's reference would let an
    impostor learn from a repeated reference that the number is real."""
    if call.encounter.reference == reference:
        return
    target = session.scalars(select(Encounter).where(Encounter.reference == reference)).first()
    if target is None:
        return  # gone meanwhile: the call stays on its own encounter
    own = call.encounter
    call.encounter = target
    session.flush()
    if own.kind == EncounterKind.CALL.value and not session.scalars(
            select(Call.id).where(Call.encounter_id == own.id)).first():
        session.delete(own)


def lookups_counted(caller_number: str | None) -> bool:
    """Whether a caller's lookups are counted: a withheld number cannot be, as withheld
    callers are many people, not one number."""
    return callers.caller_number(caller_number) is not None


def recent_lookups_column() -> ScalarSelect[int]:
    """:func:`recent_lookups` as a column of a statement that asks more at once, with the
    same bound parameters (b_number, b_since, b_call); its count means nothing for a withheld
    caller."""
    return _RECENT_LOOKUPS.scalar_subquery()


def recent_lookups(session: Session, caller_number: str | None, this_call: str,
                   since: datetime) -> int:
    """How many numbers this caller had looked up since ``since`` (other calls than this one).
    A withheld number cannot be counted: withheld callers are many people, not one number."""
    if not lookups_counted(caller_number):
        return 0
    return int(session.scalar(_RECENT_LOOKUPS, {"b_number": caller_number, "b_since": since,
                                                "b_call": this_call}) or 0)


def ensure_desks(session: Session, desks: Iterable[str]) -> None:
    """Make sure every configured desk phone has a supervisor row (in name order, so two
    writers doing this at once wait for each other instead of deadlocking)."""
    known = set(session.scalars(select(Supervisor.desk)))
    for desk in sorted(set(desks) - known):
        insert_new(session, Supervisor, "desk", desk=desk, display_name=desk)


def availability(session: Session) -> dict[str, tuple[bool, bool]]:
    """desk -> (paused, signed out), as the supervisors (or the line) last set it."""
    return {s.desk: (s.paused, s.signed_out) for s in session.scalars(select(Supervisor))}


def set_availability(session: Session, desk: str, paused: bool, signed_out: bool,
                     reason: str = "") -> None:
    """Write the desk's whole availability in one UPDATE. Why not set the attributes: the ORM
    then writes only the columns that differ from what it read, so two writers at once (the CLI
    and a feature code) could leave one's ``paused`` beside the other's ``pause_reason``."""
    _supervisor(session, desk)
    session.execute(update(Supervisor).where(Supervisor.desk == desk).values(
        paused=paused, signed_out=signed_out, pause_reason=reason if paused else ""))


def supervisors(session: Session) -> list[dict[str, Any]]:
    return [{"desk": s.desk, "paused": s.paused, "signed_out": s.signed_out,
             "pause_reason": s.pause_reason or None, "idle_since": iso(s.idle_since)}
            for s in session.scalars(select(Supervisor).order_by(Supervisor.desk))]


def callbacks(session: Session, include_done: bool = False) -> list[dict[str, Any]]:
    """Callers who hung up before a supervisor answered, oldest first."""
    query = select(Callback).order_by(Callback.created_at, Callback.id)
    if not include_done:
        query = query.where(Callback.done_at.is_(None))
    return [{"id": c.id, "call_id": c.call_id, "caller_number": callers.shown(c.caller_number),
             "reference": c.reference, "digits_entered": c.digits_entered,
             "created_at": iso(c.created_at), "done_at": iso(c.done_at), "done_by": c.done_by}
            for c in session.scalars(query)]


def callback_done(session: Session, callback_id: int, by: str) -> bool:
    cb = session.get(Callback, callback_id)
    if cb is None or cb.done_at is not None:
        return False
    cb.done_at, cb.done_by = now(), by
    return True


def idle_since(session: Session) -> dict[str, datetime | None]:
    return {s.desk: s.idle_since for s in session.scalars(select(Supervisor))}


def call_as_json(call: Call) -> dict[str, Any]:
    """One call in the lab contract's JSON shape."""
    return {
        "id": call.id,
        "reference": call.reference or call.encounter.reference,
        # the encounter it is logged against: the same, unless the call was attached to the
        # officer's pre-registered encounter (docs/api.md)
        "encounter_reference": call.encounter.reference,
        "caller_number": callers.caller_number(call.caller_number),  # rows from before too
        "warrant_number": call.digits_entered or "",
        "roster_result": call.roster_result.value if call.roster_result else None,
        "supervisor": call.supervisor.desk if call.supervisor else None,
        "started_at": iso(call.started_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "end_reason": call.end_reason,
        "path": call.path.value,
        "flags": [f for f in call.flags.split(",") if f],
        "language": call.language,
        "recording": call.recording,
        "channel_id": call.channel_id,
        "officer": (
            f"{call.encounter.officer.rank} {call.encounter.officer.name}"
            if call.encounter.officer else None
        ),
    }


def list_calls(session: Session, limit: int | None = None,
               since: datetime | None = None) -> list[dict[str, Any]]:
    """Calls, oldest first, in the lab contract's JSON shape: those started at or after
    ``since``, and of them the newest ``limit``. Both are conditions of the query (the index on
    ``started_at`` finds them), so the cost follows the calls listed, not the log's size."""
    query = select(Call).options(selectinload(Call.encounter).selectinload(Encounter.officer),
                                 selectinload(Call.supervisor))
    if since is not None:
        query = query.where(Call.started_at >= since)
    if limit is None:
        calls = list(session.scalars(query.order_by(Call.started_at, Call.id)))
    else:
        newest = query.order_by(Call.started_at.desc(), Call.id.desc()).limit(max(0, limit))
        calls = list(session.scalars(newest))[::-1]
    return [call_as_json(c) for c in calls]


def call_json(session: Session, call_id: int) -> dict[str, Any] | None:
    """One call in the lab contract's JSON shape (None: no such call)."""
    call = session.get(Call, call_id)
    return None if call is None else call_as_json(call)


def timeline(session: Session, call_id: int) -> list[dict[str, Any]]:
    events = session.scalars(
        select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
    )
    return [{"at": iso(e.at), "kind": e.kind, **e.detail} for e in events]


@dataclass(frozen=True)
class FallbackRecord:
    """One call the dialplan fallback handled while the app was away (a spool line)."""

    channel_id: str
    caller_number: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    desk: str | None
    end_reason: EndReason
    dial_status: str


def ingest_fallback(session: Session, record: FallbackRecord, batch: Batch | None = None
                    ) -> bool:
    """Log a fallback call exactly once; return False when it was already logged."""
    call = session.scalars(select(Call).where(Call.channel_id == record.channel_id)).first()
    if call is not None and call.path == CallPath.FALLBACK:
        return False
    if call is None:
        open_call(session, record.channel_id, record.caller_number, record.started_at,
                  CallPath.FALLBACK, batch=batch)
        call = session.scalars(select(Call).where(Call.channel_id == record.channel_id)).one()
    call.path = CallPath.FALLBACK
    if call.roster_result is None:
        call.roster_result = RosterResult.NONE_ENTERED
    sup = _supervisor(session, record.desk)
    call.supervisor_id = sup.id if sup else None
    call.answered_at = record.answered_at
    call.ended_at = record.ended_at
    call.end_reason = record.end_reason.value
    call.state = "ended"
    if sup is not None and record.answered_at is not None:
        sup.idle_since = record.ended_at
    _event(session, batch, call.id, record.ended_at, "fallback_logged",
           {"dial_status": record.dial_status, "desk": record.desk})
    return True


def data_from_row(row: Call) -> CallData:
    """What a call row says about the call (for adopting it or closing it)."""
    data = CallData(channel_id=row.channel_id, caller_number=row.caller_number,
                    reference=row.reference or row.encounter.reference,
                    started_at=row.started_at)
    data.digits = row.digits_entered
    data.roster_result = row.roster_result
    data.state = row.state
    data.desk_channel_id = row.desk_channel_id
    data.bridge_id = row.bridge_id
    data.answered_at = row.answered_at
    data.answered_desk = row.supervisor.desk if row.supervisor else None
    data.flags = {f for f in row.flags.split(",") if f}
    data.language = row.language
    data.desk = data.answered_desk
    if data.desk_channel_id is not None:
        data.runtime.desk_legs = ids.desk_leg_number(data.desk_channel_id) or 0
    return data


def _event(session: Session, batch: Batch | None, call_id: int, at: datetime, kind: str,
           detail: dict[str, object]) -> None:
    if batch is None:
        session.add(CallEvent(call_id=call_id, at=at, kind=kind, detail=detail))
    else:
        batch.events.append({"call_id": call_id, "at": at, "kind": kind, "detail": detail})


_CALLS = cast(Table, Call.__table__)
_SUPERVISORS = cast(Table, Supervisor.__table__)
_ENCOUNTERS = cast(Table, Encounter.__table__)
_EVENTS = cast(Table, CallEvent.__table__)
_CALLBACKS = cast(Table, Callback.__table__)
# one statement each, executed for many rows at once (executemany); the call's SET clause is
# the parameters' columns: those calllog.save writes through the ORM
_UPDATE_CALL = update(_CALLS).where(_CALLS.c.id == bindparam("b_id"))
_SET_OFFICER = update(_ENCOUNTERS).where(
    _ENCOUNTERS.c.id == select(_CALLS.c.encounter_id).where(
        _CALLS.c.id == bindparam("b_id")).scalar_subquery(),
    _ENCOUNTERS.c.officer_id.is_(None)).values(officer_id=bindparam("b_officer"))
_SET_IDLE = update(_SUPERVISORS).where(_SUPERVISORS.c.id == bindparam("b_id")).values(
    idle_since=bindparam("b_at"))
# ivr.desks.call_ended: the desk owes the call's outcome (if b_owes), and it was its last
_DESK_CALL_ENDED = update(_SUPERVISORS).where(_SUPERVISORS.c.id == bindparam("b_id")).values(
    last_channel=bindparam("b_channel"),
    wrapup_channel=case((bindparam("b_owes"), bindparam("b_channel")),
                        else_=_SUPERVISORS.c.wrapup_channel))
# built once: building a statement costs more CPU than running it (SQLAlchemy's cache key)
_READ_CALLS = (select(_CALLS.c.channel_id, _CALLS.c.id, _ENCOUNTERS.c.officer_id)
               .join(_ENCOUNTERS, _ENCOUNTERS.c.id == _CALLS.c.encounter_id)
               .where(_CALLS.c.channel_id.in_(bindparam("b_channels", expanding=True))))
_READ_CALL = select(_CALLS.c.id).where(_CALLS.c.channel_id == bindparam("b_channel"))
_READ_DESKS = select(_SUPERVISORS.c.desk, _SUPERVISORS.c.id).where(
    _SUPERVISORS.c.desk.in_(bindparam("b_desks", expanding=True)))
_INSERT_EVENTS = insert(_EVENTS)
_SET_DESK_STATE = update(_SUPERVISORS).where(_SUPERVISORS.c.desk == bindparam("b_desk")).values(
    state=bindparam("b_state"), state_since=bindparam("b_at"))


def _last_of_each(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The last of the rows for each value of ``key`` (what executing them all in order
    leaves, for an UPDATE that sets the same columns from each)."""
    return list({row[key]: row for row in rows}.values())


class Batch:
    """The call-log writes of one journal chunk, applied in one transaction with a few bulk
    statements instead of an ORM lookup, flush and NOTIFY per entry.

    Why: a call writes ~25 entries (a snapshot of its persisted fields with each timeline
    event); applied one by one through the ORM they cost the app ~50-85 ms of CPU a call
    (benchmarks/journal_apply.py). The rows are the same either way
    (tests/unit/test_journal_batch.py compares them field by field).

    How, keeping the order of the entries: a ``save`` (but of a call logged against a
    pre-registered encounter) is queued as parameters of one UPDATE of the call row, one
    INSERT of its event, and the officer, desk idle-time and wrap-up updates it implies (a
    callback owed is written at once); a desk's shown state likewise; ``open`` inserts its
    rows without first looking for them when the chunk's read found none. Everything else
    (an attach, close, fallback, availability) runs through the ORM as before,
    after :meth:`sync` has written what was queued before it (and expired what the session
    had read, which those statements may have changed). Call and desk ids are read once per
    chunk (:meth:`preload`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.notify = False
        self.events: list[dict[str, Any]] = []
        self._calls: dict[str, int] = {}
        self._absent: set[str] = set()  # read and not found: not opened yet
        self._desks: dict[str, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._officers: list[dict[str, Any]] = []
        # calls whose encounter has its officer (or will, by a queued update): a save's
        # officer changes it only while it has none
        self._officer_set: set[int] = set()
        self._idle: list[dict[str, Any]] = []
        self._desk_states: list[dict[str, Any]] = []
        self._desk_ends: list[dict[str, Any]] = []

    def preload(self, channel_ids: Iterable[str], desks: Iterable[str]) -> None:
        """Read the ids of these calls and desks in one query each."""
        wanted = set(channel_ids) - self._calls.keys()
        if wanted:
            for channel, id_, officer in self.session.execute(
                    _READ_CALLS, {"b_channels": list(wanted)}):
                self._calls[channel] = id_
                if officer is not None:
                    self._officer_set.add(id_)
            self._absent |= wanted - self._calls.keys()
        wanted = set(desks) - self._desks.keys()
        if wanted:
            self._desks.update((desk, id_) for desk, id_ in self.session.execute(
                _READ_DESKS, {"b_desks": list(wanted)}))

    def absent(self, channel_id: str) -> bool:
        """Was this call not in the database when the chunk began, nor opened since?"""
        return channel_id in self._absent

    def opened(self, channel_id: str, call_id: int) -> None:
        self._absent.discard(channel_id)
        self._calls[channel_id] = call_id

    def _call_id(self, channel_id: str) -> int:
        found = self._calls.get(channel_id)
        if found is None:  # opened in this chunk (or never: then refused, as before)
            found = self.session.execute(_READ_CALL, {"b_channel": channel_id}).scalar_one()
            self._calls[channel_id] = found
        return found

    def _desk_id(self, desk: str) -> int:
        found = self._desks.get(desk)
        if found is None:
            sup = _supervisor(self.session, desk)
            assert sup is not None
            found = self._desks[desk] = sup.id
        return found

    def save(self, data: CallData, kind: str, detail: dict[str, object],
             at: datetime | None) -> bool:
        """Queue the common ``save``; False when it needs :func:`save`'s ORM path."""
        if data.encounter_reference is not None:
            self.sync()
            return False
        call_id = self._call_id(data.channel_id)
        sup_id = self._desk_id(data.answered_desk) if data.answered_desk is not None else None
        self._updates.append({
            "b_id": call_id, "digits_entered": data.digits,
            "flags": ",".join(sorted(data.flags)), "recording": data.recording,
            "language": data.language, "roster_result": data.roster_result,
            "state": data.state, "desk_channel_id": data.desk_channel_id,
            "bridge_id": data.bridge_id, "answered_at": data.answered_at,
            "ended_at": data.ended_at,
            "end_reason": data.end_reason.value if data.end_reason else None,
            "supervisor_id": sup_id})
        if data.officer_id is not None and call_id not in self._officer_set:
            self._officer_set.add(call_id)
            self._officers.append({"b_id": call_id, "b_officer": data.officer_id})
        if data.ended_at is not None and sup_id is not None:
            self._idle.append({"b_id": sup_id, "b_at": data.ended_at})
        if kind == "ended":
            self._ended(call_id, sup_id, data)
        self.events.append({"call_id": call_id, "at": at or now(), "kind": kind,
                            "detail": dict(detail)})
        self.notify = True
        return True

    def _ended(self, call_id: int, sup_id: int | None, data: CallData) -> None:
        """What :func:`save` does at a call's end besides the row: the desk's wrap-up and
        last call (:func:`ivr.desks.call_ended`), a callback owed to the caller."""
        s = self.session
        if sup_id is not None:
            owes = data.outcome_owed and s.execute(select(CallOutcome.id).where(
                CallOutcome.call_id == call_id)).first() is None
            self._desk_ends.append({"b_id": sup_id, "b_channel": data.channel_id,
                                    "b_owes": owes})
        if not (data.end_reason in CALL_BACK and data.bridge_id is None
                and (data.queued_at is not None
                     or data.end_reason is not EndReason.CALLER_ABANDONED)):
            return
        s.flush()  # a callback the ORM path added in this chunk (Core reads do not flush)
        # written at once: a second end of the call in this chunk must find it
        if s.execute(select(_CALLBACKS.c.id).where(_CALLBACKS.c.call_id == call_id)
                     ).first() is None:
            s.execute(insert(_CALLBACKS).values(
                call_id=call_id, caller_number=data.caller_number, reference=data.reference,
                digits_entered=data.digits, created_at=data.ended_at or now()))

    def desk_state(self, desk: str, state: str, at: datetime) -> None:
        """Queue :func:`ivr.desks.set_state`."""
        self._desk_states.append({"b_desk": desk, "b_state": state, "b_at": at})
        self.notify = True

    def sync(self) -> None:
        """Write what is queued, after what the ORM holds (it came first); then forget what
        the session read, so the ORM path that follows sees the rows as they now are."""
        s = self.session
        s.flush()
        # a row set whole by each of its updates needs only the last: a call's row is
        # saved with each of its timeline events, several of them in one chunk
        queued = [(_UPDATE_CALL, _last_of_each(self._updates, "b_id")),
                  (_SET_OFFICER, self._officers),
                  (_SET_IDLE, _last_of_each(self._idle, "b_id")),
                  (_SET_DESK_STATE, _last_of_each(self._desk_states, "b_desk")),
                  (_DESK_CALL_ENDED, self._desk_ends), (_INSERT_EVENTS, self.events)]
        if not any(rows for _, rows in queued):
            return
        for statement, rows in queued:
            if rows:
                s.execute(statement, rows)
        self._updates, self._officers, self._idle = [], [], []
        self._desk_states, self._desk_ends, self.events = [], [], []
        self._officer_set.clear()  # the ORM path that follows may attach another encounter
        s.expire_all()

    def finish(self) -> None:
        """Write everything still queued, and wake the console's live hub once."""
        self.sync()
        if self.notify:
            notify(self.session)
