"""Pre-registered encounters: an officer's device says "I am stopping someone here, for this
reason" before anyone calls (the API, docs/api.md).

A pre-registration is an encounter of kind ``device``. It is open until the device closes it
or until :data:`PREREGISTRATION_HOURS` have passed since it was opened; after that it no
longer counts as open (no call attaches to it, and the device may open another). An officer
has at most one open at a time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ivr import calllog
from ivr.clock import iso
from ivr.encounters import OPEN_FOR, PREREGISTRATION_HOURS, open_device_encounter
from ivr.exceptions import ConsoleError, DetailedConsoleError, invalid_fields
from ivr.models import CallOutcome, DeviceToken, Encounter, EncounterKind, Officer

__all__ = ["OPEN_FOR", "PREREGISTRATION_HOURS"]
MAX_PLACE = 500
MAX_PURPOSE = 1000
MAX_LISTED = 100


@dataclass(frozen=True)
class Request:
    """A device's request to open a pre-registration, validated."""

    place: str
    latitude: float | None
    longitude: float | None
    purpose: str


def _text(body: Mapping[str, Any], name: str, longest: int, problems: dict[str, str]) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        problems[name] = "required: a non-empty string"
        return ""
    if len(value.strip()) > longest:
        problems[name] = f"at most {longest} characters"
    return value.strip()


def _coordinate(body: Mapping[str, Any], name: str, limit: float,
                problems: dict[str, str]) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    # JSON true is an int to Python: it is no coordinate
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems[name] = "a number"
        return None
    if not -limit <= value <= limit:
        problems[name] = f"between -{limit:g} and {limit:g}"
        return None
    return float(value)


def parse_request(body: Mapping[str, Any]) -> Request:
    """Validate a device's JSON body; 422 encounter_invalid names every field at fault."""
    problems: dict[str, str] = {}
    place = _text(body, "place", MAX_PLACE, problems)
    purpose = _text(body, "purpose", MAX_PURPOSE, problems)
    latitude = _coordinate(body, "latitude", 90, problems)
    longitude = _coordinate(body, "longitude", 180, problems)
    if "latitude" not in problems and "longitude" not in problems and \
            (latitude is None) != (longitude is None):
        problems["latitude" if latitude is None else "longitude"] = \
            "give latitude and longitude together, or neither"
    if problems:
        raise invalid_fields("encounter_invalid", problems)
    return Request(place, latitude, longitude, purpose)


def is_open(encounter: Encounter, at: datetime) -> bool:
    return encounter.closed_at is None and at < encounter.opened_at + OPEN_FOR


def current(session: Session, officer_id: int, at: datetime) -> Encounter | None:
    """The officer's open pre-registration at ``at`` (the newest), or None."""
    return open_device_encounter(session, officer_id, at)


def open_for(session: Session, token: DeviceToken, request: Request, at: datetime
             ) -> Encounter:
    """Open a pre-registration for the token's officer; 409 encounter_open if one is."""
    # on PostgreSQL two devices of one officer opening at once queue on the officer's row
    session.scalars(select(Officer.id).where(Officer.id == token.officer_id)
                    .with_for_update()).first()
    already = current(session, token.officer_id, at)
    if already is not None:
        raise DetailedConsoleError(
            "encounter_open", f"encounter {already.reference} is still open: close it first",
            409, reference=already.reference)
    encounter = Encounter(reference=calllog.new_reference(session), officer_id=token.officer_id,
                          opened_at=at, kind=EncounterKind.DEVICE.value, place=request.place,
                          latitude=request.latitude, longitude=request.longitude,
                          purpose=request.purpose, device_token_id=token.id)
    session.add(encounter)
    session.flush()
    return encounter


def find(session: Session, token: DeviceToken, reference: str) -> Encounter:
    """One of the token's officer's pre-registrations; 404 encounter_not_found otherwise
    (also for another officer's: a device learns nothing about encounters not its own)."""
    encounter = session.scalars(
        select(Encounter).where(Encounter.reference == reference,
                                Encounter.kind == EncounterKind.DEVICE.value,
                                Encounter.officer_id == token.officer_id)).first()
    if encounter is None:
        raise ConsoleError("encounter_not_found",
                           f"no encounter {reference!r} of this officer", 404)
    return encounter


def close(encounter: Encounter, at: datetime) -> None:
    if encounter.closed_at is not None:
        raise ConsoleError("encounter_closed",
                           f"encounter {encounter.reference} was closed at "
                           f"{iso(encounter.closed_at)}", 409)
    encounter.closed_at = at


def listed(session: Session, token: DeviceToken, at: datetime, open_only: bool
           ) -> list[Encounter]:
    """The officer's pre-registrations, newest first (at most MAX_LISTED)."""
    query = select(Encounter).where(Encounter.officer_id == token.officer_id,
                                    Encounter.kind == EncounterKind.DEVICE.value)
    if open_only:
        query = query.where(Encounter.closed_at.is_(None), Encounter.opened_at > at - OPEN_FOR)
    return list(session.scalars(query.order_by(Encounter.opened_at.desc(), Encounter.id.desc())
                                .limit(MAX_LISTED)))


def as_json(session: Session, encounter: Encounter, at: datetime) -> dict[str, object]:
    """What the device sees: the encounter and its calls, never who called (no caller
    number, no digits): the officer must not learn the caller's identity."""
    calls: list[dict[str, object]] = []
    for call in sorted(encounter.calls, key=lambda c: (c.started_at, c.id)):
        latest = session.scalars(select(CallOutcome).where(CallOutcome.call_id == call.id)
                                 .order_by(CallOutcome.id.desc())).first()
        calls.append({
            "started_at": iso(call.started_at), "answered_at": iso(call.answered_at),
            "ended_at": iso(call.ended_at),
            "supervisor": call.supervisor.desk if call.supervisor is not None else None,
            "outcome": latest.outcome if latest is not None else call.outcome,
            "outcome_at": iso(latest.at) if latest is not None else None,
        })
    return {
        "reference": encounter.reference,
        "opened_at": iso(encounter.opened_at),
        "expires_at": iso(encounter.opened_at + OPEN_FOR),
        "closed_at": iso(encounter.closed_at),
        "open": is_open(encounter, at),
        "place": encounter.place,
        "latitude": encounter.latitude,
        "longitude": encounter.longitude,
        "purpose": encounter.purpose,
        "warrant_number": encounter.officer.warrant_number if encounter.officer else None,
        "called": bool(calls),
        "calls": calls,
    }
