"""The call-log writes, as journal operations: each is a name and JSON arguments, applied to
the database by :class:`ivr.journal.DurableLog` (see there for the exactly-once rule).

Everything the line writes goes through here — a call opened, a timeline event with the
call's state, a desk's availability, a call found lost, a call the dialplan fallback took —
so none of it is lost while the database is down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import calllog
from ivr.clock import now
from ivr.entities import PERSISTED_FIELDS, CallData
from ivr.journal import Applier
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


# --- building entries ----------------------------------------------------------------------


def open_entry(data: CallData, reference: str, path: CallPath = CallPath.ARI
               ) -> tuple[str, dict[str, Any]]:
    return "open", {"channel_id": data.channel_id, "caller_number": data.caller_number,
                    "started_at": data.started_at.isoformat(), "reference": reference,
                    "path": path.value}


def save_entry(data: CallData, kind: str, detail: Mapping[str, object], at: datetime
               ) -> tuple[str, dict[str, Any]]:
    return "save", {"data": call_to_json(data), "kind": kind, "detail": dict(detail),
                    "at": at.isoformat()}


def availability_entry(desk: str, paused: bool, signed_out: bool, reason: str
                       ) -> tuple[str, dict[str, Any]]:
    return "availability", {"desk": desk, "paused": paused, "signed_out": signed_out,
                            "reason": reason}


def close_entry(channel_id: str, reason: EndReason) -> tuple[str, dict[str, Any]]:
    return "close", {"channel_id": channel_id, "reason": reason.value,
                     "at": now().isoformat()}


def fallback_entry(record: calllog.FallbackRecord) -> tuple[str, dict[str, Any]]:
    raw = dataclasses.asdict(record)
    raw["end_reason"] = record.end_reason.value
    return "fallback", {k: v.isoformat() if isinstance(v, datetime) else v
                        for k, v in raw.items()}


# --- applying them -------------------------------------------------------------------------


def _open(s: Session, a: dict[str, Any]) -> None:
    calllog.open_call(s, a["channel_id"], a["caller_number"], _date(a["started_at"]) or now(),
                      CallPath(a["path"]), reference=a["reference"])


def _save(s: Session, a: dict[str, Any]) -> None:
    calllog.save(s, call_from_json(a["data"]), a["kind"], a["detail"], _date(a["at"]))


def _availability(s: Session, a: dict[str, Any]) -> None:
    calllog.set_availability(s, a["desk"], paused=a["paused"], signed_out=a["signed_out"],
                             reason=a["reason"])


def _close(s: Session, a: dict[str, Any]) -> None:
    """Close a call whose channel is gone while nobody was watching (app or Asterisk down)."""
    row = s.scalars(select(Call).where(Call.channel_id == a["channel_id"])).first()
    if row is None or row.ended_at is not None:
        return  # already closed (by its own hang-up, logged meanwhile): nothing to do
    data = calllog.data_from_row(row)
    data.ended_at, data.end_reason, data.state = _date(a["at"]), EndReason(a["reason"]), "ended"
    calllog.save(s, data, "ended", {"reason": a["reason"]}, data.ended_at)


def _fallback(s: Session, a: dict[str, Any]) -> None:
    calllog.ingest_fallback(s, calllog.FallbackRecord(
        channel_id=a["channel_id"], caller_number=a["caller_number"],
        started_at=_date(a["started_at"]) or now(), answered_at=_date(a["answered_at"]),
        ended_at=_date(a["ended_at"]) or now(), desk=a["desk"],
        end_reason=EndReason(a["end_reason"]), dial_status=a["dial_status"]))


APPLIERS: dict[str, Applier] = {
    "open": _open, "save": _save, "availability": _availability, "close": _close,
    "fallback": _fallback,
}
