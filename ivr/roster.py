"""The roster of warrant numbers: import from CSV and say what it knows about a number."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ivr.exceptions import RosterImportError
from ivr.models import Encounter, Officer, OfficerStatus, RosterResult, StoreNotice

CSV_HEADER = ["warrant_number", "name", "rank", "status", "on_duty_from", "on_duty_until"]
RESTRICTED = {OfficerStatus.SUSPENDED, OfficerStatus.WITHDRAWN, OfficerStatus.LEFT}
# left by migration 0007 when duty windows had been stored without their offset; an import
# writes every window afresh, so it repairs them
LOST_OFFSETS_NOTICE = "roster_offsets_lost"


@dataclass(frozen=True)
class Lookup:
    """What the roster says about the digits a caller keyed."""

    result: RosterResult
    officer_id: int | None = None
    officer_label: str = ""


class OnRoster(Protocol):
    """What classifying a number needs to know about an officer."""

    @property
    def status(self) -> OfficerStatus: ...
    @property
    def on_duty_from(self) -> datetime | None: ...
    @property
    def on_duty_until(self) -> datetime | None: ...


def classify(officer: OnRoster | None, digits: str, at: datetime) -> RosterResult:
    """Apply the lab-contract rules: restricted beats everything, then the duty window."""
    if not digits:
        return RosterResult.NONE_ENTERED
    if officer is None:
        return RosterResult.UNKNOWN
    if officer.status in RESTRICTED:
        return RosterResult.RESTRICTED
    start, end = officer.on_duty_from, officer.on_duty_until  # aware: the store gives UTC
    if start is not None and end is not None and start <= at < end:
        return RosterResult.ON_DUTY
    return RosterResult.OFF_DUTY


def lookup(session: Session, digits: str, at: datetime) -> Lookup:
    """Look a keyed warrant number up in the roster."""
    officer = (
        session.scalars(select(Officer).where(Officer.warrant_number == digits)).first()
        if digits
        else None
    )
    result = classify(officer, digits, at)
    if officer is None:
        return Lookup(result)
    return Lookup(result, officer.id, f"{officer.rank} {officer.name}")


@dataclass(frozen=True)
class OfficerCard:
    """One officer as the in-memory roster copy keeps them."""

    id: int
    warrant_number: str
    label: str
    status: OfficerStatus
    on_duty_from: datetime | None
    on_duty_until: datetime | None


def officer_cards(session: Session) -> list[OfficerCard]:
    return [OfficerCard(o.id, o.warrant_number, f"{o.rank} {o.name}", o.status,
                        o.on_duty_from, o.on_duty_until)
            for o in session.scalars(select(Officer))]


class RosterCopy:
    """The roster as last read, so a lookup still answers while the database is away (the
    duty windows in it are absolute times, so 'on duty now' stays right)."""

    def __init__(self) -> None:
        self.cards: dict[str, OfficerCard] = {}
        self.read_at: datetime | None = None

    def replace(self, cards: list[OfficerCard], at: datetime) -> None:
        self.cards = {c.warrant_number: c for c in cards}
        self.read_at = at

    def lookup(self, digits: str, at: datetime) -> Lookup:
        card = self.cards.get(digits) if digits else None
        result = classify(card, digits, at)
        return Lookup(result) if card is None else Lookup(result, card.id, card.label)


@dataclass(frozen=True)
class RosterRow:
    warrant_number: str
    name: str
    rank: str
    status: OfficerStatus
    on_duty_from: datetime | None
    on_duty_until: datetime | None


def _when(raw: str, field: str) -> datetime | None:
    if raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{field} {raw!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ValueError(f"{field} {raw!r} has no UTC offset (write e.g. +00:00)")
    return value


def parse_csv(text: str) -> list[RosterRow]:
    """Parse a roster CSV; any bad row fails the whole file with every problem listed."""
    reader = csv.reader(io.StringIO(text))
    problems: list[tuple[int, str]] = []
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != CSV_HEADER:
        raise RosterImportError([(1, f"header must be exactly: {','.join(CSV_HEADER)}")])
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields or all(f.strip() == "" for f in fields):
            continue
        if len(fields) != len(CSV_HEADER):
            problems.append((line, f"expected {len(CSV_HEADER)} fields, found {len(fields)}"))
            continue
        number, name, rank, status, start, end = (f.strip() for f in fields)
        try:
            if not number.isdigit() or len(number) > 30:
                raise ValueError(f"warrant_number {number!r} must be 1 to 30 digits")
            if number in seen:
                raise ValueError(f"warrant_number {number} repeats line {seen[number]}")
            if not name:
                raise ValueError("name is empty")
            try:
                state = OfficerStatus(status.lower())
            except ValueError:
                allowed = "|".join(s.value for s in OfficerStatus)
                raise ValueError(f"status {status!r} must be one of {allowed}") from None
            on_from, on_until = _when(start, "on_duty_from"), _when(end, "on_duty_until")
            if (on_from is None) != (on_until is None):
                raise ValueError("give both on_duty_from and on_duty_until, or neither")
            if on_from is not None and on_until is not None and on_until <= on_from:
                raise ValueError("on_duty_until is not after on_duty_from")
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        seen[number] = line
        rows.append(RosterRow(number, name, rank, state, on_from, on_until))
    if problems:
        raise RosterImportError(problems)
    return rows


def replace_roster(session: Session, rows: list[RosterRow]) -> int:
    """Make the roster exactly these rows, keeping the ids of officers already known."""
    existing = {o.warrant_number: o for o in session.scalars(select(Officer))}
    wanted = {r.warrant_number for r in rows}
    for row in rows:
        officer = existing.get(row.warrant_number) or Officer(warrant_number=row.warrant_number)
        officer.name, officer.rank, officer.status = row.name, row.rank, row.status
        officer.on_duty_from, officer.on_duty_until = row.on_duty_from, row.on_duty_until
        session.add(officer)
    gone = [o.id for n, o in existing.items() if n not in wanted]
    if gone:
        # officers already linked to an encounter stay, marked as having left
        linked = set(session.scalars(
            select(Encounter.officer_id).where(Encounter.officer_id.in_(gone))))
        for n, o in existing.items():
            if n not in wanted and o.id in linked:
                o.status = OfficerStatus.LEFT
        unlinked = [i for i in gone if i not in linked]
        if unlinked:
            session.execute(delete(Officer).where(Officer.id.in_(unlinked)))
    session.execute(delete(StoreNotice).where(StoreNotice.key == LOST_OFFSETS_NOTICE))
    return len(rows)
