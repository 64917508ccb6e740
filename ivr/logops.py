"""The call-log writes, as journal operations, applied to the database by
:class:`ivr.journal.DurableLog` (see there for the exactly-once rule).

Everything the line writes goes through here — a call opened, a timeline event with the
call's state, a desk's availability, a call found lost, a call the dialplan fallback took —
so none of it is lost while the database is down.

Each operation is a frozen dataclass (:data:`Operation`); its journal form, a name and JSON
arguments, is written and read back in one place, :data:`CODEC`. That form is the journal's
file format: journals written by earlier versions must still replay, so a name or argument
is never changed in meaning — only added, with a default for entries that lack it.

    op        arguments
    open      channel_id, caller_number, started_at, reference, path
    save      data (the call's persisted fields), kind, detail, at
    availability  desk, paused, signed_out, reason
    close     channel_id, reason, at
    fallback  channel_id, caller_number, started_at, answered_at, ended_at, desk,
              end_reason, dial_status
    desk_state  desk, state (ivr.desks.DeskState), at
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import calllog, desks
from ivr.clock import now
from ivr.entities import PERSISTED_FIELDS, CallData
from ivr.models import Call, CallPath, EndReason, RosterResult

_DATES = ("started_at", "answered_at", "ended_at", "queued_at")
_SETS = ("flags",)
# entries of earlier versions also hold the runtime legs (legs, tried_desks, desk_legs): they
# are ignored on replay, as a new run of the app never inherits ringing legs from a record
_FIELDS = frozenset(PERSISTED_FIELDS)


def _date(raw: object) -> datetime | None:
    return datetime.fromisoformat(str(raw)) if raw else None


def call_to_json(data: CallData) -> dict[str, Any]:
    """The persisted fields of a call, as JSON (never its runtime legs)."""
    raw: dict[str, Any] = {name: getattr(data, name) for name in PERSISTED_FIELDS}
    for name in _DATES:
        value = getattr(data, name)
        raw[name] = value.isoformat() if value is not None else None
    for name in _SETS:
        raw[name] = sorted(getattr(data, name))
    raw["roster_result"] = data.roster_result.value if data.roster_result else None
    raw["end_reason"] = data.end_reason.value if data.end_reason else None
    return raw


def call_from_json(raw: Mapping[str, Any]) -> CallData:
    kw = {k: v for k, v in raw.items() if k in _FIELDS}  # tolerate fields of other versions
    for name in _DATES:
        kw[name] = _date(kw.get(name))
    if kw["started_at"] is None:
        kw["started_at"] = now()
    for name in _SETS:
        kw[name] = set(kw.get(name) or ())
    kw["roster_result"] = RosterResult(kw["roster_result"]) if kw.get("roster_result") else None
    kw["end_reason"] = EndReason(kw["end_reason"]) if kw.get("end_reason") else None
    return CallData(**kw)


# --- the operations ------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class OpenCall:
    """A call row opened (its reference taken, with a suffix if another call has it)."""

    NAME: ClassVar[str] = "open"
    channel_id: str
    caller_number: str | None
    started_at: datetime
    reference: str
    path: CallPath = CallPath.ARI

    def to_args(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "caller_number": self.caller_number,
                "started_at": self.started_at.isoformat(), "reference": self.reference,
                "path": self.path.value}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> OpenCall:
        return cls(a["channel_id"], a["caller_number"], _date(a["started_at"]) or now(),
                   a["reference"], CallPath(a["path"]))

    def apply(self, s: Session) -> None:
        calllog.open_call(s, self.channel_id, self.caller_number, self.started_at, self.path,
                          reference=self.reference)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        # no sync: it writes only new rows, and reads of an existing call only what no
        # queued statement changes (its reference)
        calllog.open_call(s, self.channel_id, self.caller_number, self.started_at, self.path,
                          reference=self.reference, batch=batch)


@dataclass(frozen=True)
class SaveCall:
    """A timeline event, and the call row brought up to date with the call's data."""

    NAME: ClassVar[str] = "save"
    data: CallData  # a snapshot: the call goes on changing after the event
    kind: str
    detail: Mapping[str, object]
    at: datetime

    def to_args(self) -> dict[str, Any]:
        return {"data": call_to_json(self.data), "kind": self.kind, "detail": dict(self.detail),
                "at": self.at.isoformat()}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> SaveCall:
        return cls(call_from_json(a["data"]), a["kind"], a["detail"], _date(a["at"]) or now())

    def apply(self, s: Session) -> None:
        calllog.save(s, self.data, self.kind, dict(self.detail), self.at)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        calllog.save(s, self.data, self.kind, dict(self.detail), self.at, batch=batch)


@dataclass(frozen=True)
class SetAvailability:
    """A desk paused, made available, signed out or in."""

    NAME: ClassVar[str] = "availability"
    desk: str
    paused: bool
    signed_out: bool
    reason: str

    def to_args(self) -> dict[str, Any]:
        return {"desk": self.desk, "paused": self.paused, "signed_out": self.signed_out,
                "reason": self.reason}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> SetAvailability:
        return cls(a["desk"], a["paused"], a["signed_out"], a["reason"])

    def apply(self, s: Session) -> None:
        calllog.set_availability(s, self.desk, paused=self.paused, signed_out=self.signed_out,
                                 reason=self.reason)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        batch.sync()
        self.apply(s)


@dataclass(frozen=True)
class CloseCall:
    """A call whose channel is gone while nobody was watching (app or Asterisk down)."""

    NAME: ClassVar[str] = "close"
    channel_id: str
    reason: EndReason
    at: datetime

    def to_args(self) -> dict[str, Any]:
        return {"channel_id": self.channel_id, "reason": self.reason.value,
                "at": self.at.isoformat()}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> CloseCall:
        return cls(a["channel_id"], EndReason(a["reason"]), _date(a["at"]) or now())

    def apply(self, s: Session, batch: calllog.Batch | None = None) -> None:
        row = s.scalars(select(Call).where(Call.channel_id == self.channel_id)).first()
        if row is None or row.ended_at is not None:
            return  # already closed (by its own hang-up, logged meanwhile): nothing to do
        data = calllog.data_from_row(row)
        data.ended_at, data.end_reason, data.state = self.at, self.reason, "ended"
        calllog.save(s, data, "ended", {"reason": self.reason.value}, data.ended_at,
                     batch=batch)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        batch.sync()  # the row as the entries before this one left it
        self.apply(s, batch)


@dataclass(frozen=True)
class IngestFallback:
    """A call the dialplan fallback handled while the app was away (logged exactly once)."""

    NAME: ClassVar[str] = "fallback"
    record: calllog.FallbackRecord

    def to_args(self) -> dict[str, Any]:
        r = self.record
        return {"channel_id": r.channel_id, "caller_number": r.caller_number,
                "started_at": r.started_at.isoformat(), "answered_at": _iso(r.answered_at),
                "ended_at": r.ended_at.isoformat(), "desk": r.desk,
                "end_reason": r.end_reason.value, "dial_status": r.dial_status}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> IngestFallback:
        return cls(calllog.FallbackRecord(
            channel_id=a["channel_id"], caller_number=a["caller_number"],
            started_at=_date(a["started_at"]) or now(), answered_at=_date(a["answered_at"]),
            ended_at=_date(a["ended_at"]) or now(), desk=a["desk"],
            end_reason=EndReason(a["end_reason"]), dial_status=a["dial_status"]))

    def apply(self, s: Session) -> None:
        calllog.ingest_fallback(s, self.record)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        batch.sync()
        calllog.ingest_fallback(s, self.record, batch=batch)


@dataclass(frozen=True)
class SetDeskState:
    """What the line now shows for a desk (journaled after the calls that changed it)."""

    NAME: ClassVar[str] = "desk_state"
    desk: str
    state: str
    at: datetime

    def to_args(self) -> dict[str, Any]:
        return {"desk": self.desk, "state": self.state, "at": self.at.isoformat()}

    @classmethod
    def from_args(cls, a: Mapping[str, Any]) -> SetDeskState:
        return cls(a["desk"], a["state"], _date(a["at"]) or now())

    def apply(self, s: Session) -> None:
        desks.set_state(s, self.desk, self.state, self.at)

    def apply_in(self, s: Session, batch: calllog.Batch) -> None:
        batch.desk_state(self.desk, self.state, self.at)


Operation = (OpenCall | SaveCall | SetAvailability | CloseCall | IngestFallback
             | SetDeskState)
_KINDS: dict[str, type[Operation]] = {
    k.NAME: k for k in (OpenCall, SaveCall, SetAvailability, CloseCall, IngestFallback,
                        SetDeskState)}


class _Codec:
    """The one place operations meet their journal form (see :class:`ivr.journal.Codec`)."""

    def encode(self, op: Operation) -> tuple[str, dict[str, Any]]:
        return op.NAME, op.to_args()

    def decode(self, name: str, args: Mapping[str, Any]) -> Operation:
        kind = _KINDS.get(name)
        if kind is None:
            raise ValueError(f"unknown journal operation {name!r}")
        return kind.from_args(args)

    def apply(self, session: Session, op: Operation) -> None:
        op.apply(session)

    def apply_all(self, session: Session, ops: Sequence[Operation]) -> None:
        """Apply many in order, in this one transaction, with bulk statements
        (:class:`ivr.calllog.Batch`): the rows are those :meth:`apply` one by one writes."""
        batch = calllog.Batch(session)
        batch.preload({op.data.channel_id if isinstance(op, SaveCall) else op.channel_id
                       for op in ops if isinstance(op, SaveCall | OpenCall)},
                      {op.data.answered_desk for op in ops
                       if isinstance(op, SaveCall) and op.data.answered_desk is not None})
        for op in ops:
            op.apply_in(session, batch)
        batch.finish()


CODEC = _Codec()


# --- building them -------------------------------------------------------------------------


def open_entry(data: CallData, reference: str, path: CallPath = CallPath.ARI) -> OpenCall:
    return OpenCall(data.channel_id, data.caller_number, data.started_at, reference, path)


def save_entry(data: CallData, kind: str, detail: Mapping[str, object], at: datetime
               ) -> SaveCall:
    return SaveCall(data.snapshot(), kind, dict(detail), at)


def availability_entry(desk: str, paused: bool, signed_out: bool, reason: str
                       ) -> SetAvailability:
    return SetAvailability(desk, paused, signed_out, reason)


def close_entry(channel_id: str, reason: EndReason) -> CloseCall:
    return CloseCall(channel_id, reason, now())


def desk_state_entry(desk: str, state: str, at: datetime) -> SetDeskState:
    return SetDeskState(desk, state, at)


def fallback_entry(record: calllog.FallbackRecord) -> IngestFallback:
    return IngestFallback(record)
