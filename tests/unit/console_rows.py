"""Rows the console reads, written straight into the store (what the line would have logged)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from ivr.clock import now
from ivr.models import (
    Call,
    CallEvent,
    CallOutcome,
    CallPath,
    DeviceToken,
    Encounter,
    EncounterKind,
    Officer,
    OfficerStatus,
    RosterResult,
    Supervisor,
)

_serial = itertools.count(1)


def officer(s: Session, warrant: str = "4521", status: OfficerStatus = OfficerStatus.ACTIVE,
            name: str = "Jane Smith", photo: str | None = None) -> Officer:
    at = now()
    o = Officer(warrant_number=warrant, name=name, rank="Sergeant", status=status,
                on_duty_from=at - timedelta(hours=2), on_duty_until=at + timedelta(hours=6),
                unit="Response team 3", station="Central", photo=photo)
    s.add(o)
    s.flush()
    return o


def desk(s: Session, name: str = "desk1", console_user: str | None = None) -> Supervisor:
    sup = Supervisor(desk=name, display_name=name, console_user=console_user)
    s.add(sup)
    s.flush()
    return sup


def call(s: Session, *, caller: str | None = "07700900001", digits: str = "4521",
         result: RosterResult | None = RosterResult.ON_DUTY, started: datetime | None = None,
         supervisor: Supervisor | None = None, encounter: Encounter | None = None,
         officer_id: int | None = None, flags: str = "", outcome: str | None = None,
         ended: bool = False, recording: str | None = None, state: str = "connecting",
         reference: str | None = None) -> Call:
    n = next(_serial)
    started = started or now()
    if encounter is None:
        encounter = Encounter(reference=reference or f"{100000 + n}", caller_number=caller,
                              opened_at=started, officer_id=officer_id)
        s.add(encounter)
        s.flush()
    c = Call(channel_id=f"chan-{n}", reference=reference or f"{200000 + n}",
             encounter_id=encounter.id, caller_number=caller, digits_entered=digits,
             roster_result=result, supervisor_id=supervisor.id if supervisor else None,
             started_at=started, path=CallPath.ARI, flags=flags, outcome=outcome,
             ended_at=started + timedelta(minutes=2) if ended else None,
             end_reason="caller_hangup" if ended else None, recording=recording,
             state="ended" if ended else state)
    s.add(c)
    s.flush()
    return c


def event(s: Session, c: Call, kind: str, **detail: object) -> CallEvent:
    e = CallEvent(call_id=c.id, at=now(), kind=kind, detail=dict(detail))
    s.add(e)
    s.flush()
    return e


def outcome(s: Session, c: Call, value: str, by: str = "supervisor", note: str = "",
            desk_name: str | None = "desk1") -> CallOutcome:
    o = CallOutcome(call_id=c.id, at=now(), outcome=value, note=note, by_user=by, desk=desk_name)
    s.add(o)
    c.outcome = value
    s.flush()
    return o


def preregistered(s: Session, o: Officer, label: str = "Jane's phone") -> Encounter:
    token = DeviceToken(token_hash=f"{next(_serial):064d}", prefix="vl_abc", officer_id=o.id,
                        label=label, created_at=now(), created_by="admin")
    s.add(token)
    s.flush()
    e = Encounter(reference=f"{300000 + next(_serial)}", officer_id=o.id, opened_at=now(),
                  kind=EncounterKind.DEVICE.value, place="High Street, outside no. 12",
                  latitude=51.5, longitude=-0.12, purpose="Stop and search",
                  device_token_id=token.id)
    s.add(e)
    s.flush()
    return e
