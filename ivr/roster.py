"""The roster of warrant numbers: import from CSV and say what it knows about a number."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, Protocol

from sqlalchemy import String, bindparam, delete, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from ivr import photos
from ivr.clock import iso
from ivr.exceptions import RosterImportError, invalid_fields
from ivr.models import Encounter, Officer, OfficerStatus, RosterResult, StoreNotice

CSV_HEADER = ["warrant_number", "name", "rank", "status", "on_duty_from", "on_duty_until"]
# optional trailing columns (the console's issue): a file may add unit; unit,station; or
# unit,station,photo. A column left out leaves that field of known officers as it was.
CSV_EXTRA = ["unit", "station", "photo"]
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
    """Look a keyed warrant number up in the roster (one row's few columns, by a statement
    built once: the ORM object and a statement built per call were most of a lookup's CPU)."""
    row = session.execute(_LOOKUP, {"b_number": digits}).first() if digits else None
    return lookup_card(_card(row) if row is not None else None, digits, at)


class OfficerCard(NamedTuple):
    """One officer as the in-memory roster copy keeps them (a tuple: 200,000 of them are
    made every time the copy is read)."""

    id: int
    warrant_number: str
    label: str
    status: OfficerStatus
    on_duty_from: datetime | None
    on_duty_until: datetime | None


_STATUS = {s.value: s for s in OfficerStatus}
# what a card is made of (also in statements that ask more at once: services.check_number):
# the status as stored, turned into its enum by a dict
CARD_COLUMNS = (Officer.id, Officer.warrant_number, Officer.rank, Officer.name,
                 type_coerce(Officer.status, String), Officer.on_duty_from,
                 Officer.on_duty_until)
_LOOKUP = select(*CARD_COLUMNS).where(Officer.warrant_number == bindparam("b_number"))


def card_of(row: Sequence[Any]) -> OfficerCard | None:
    """The card in the first columns of such a row; None when the officer's columns are null
    (no officer has the number)."""
    return None if row[0] is None else _card(row[:len(CARD_COLUMNS)])


def lookup_card(card: OfficerCard | None, digits: str, at: datetime) -> Lookup:
    """What the roster says about the digits, given the card they found (or None)."""
    result = classify(card, digits, at)
    return Lookup(result) if card is None else Lookup(result, card.id, card.label)


def _card(row: Sequence[Any]) -> OfficerCard:
    i, number, rank, name, status, start, end = row
    return OfficerCard(i, number, f"{rank} {name}", _STATUS[status], start, end)


def officer_cards(session: Session) -> list[OfficerCard]:
    """Every officer as the roster copy keeps them. The columns alone, not ORM objects, and
    the status as stored, turned into its enum by a dict: at 200,000 officers the objects and
    the Enum type's conversion were most of a 4-second read."""
    return [_card(row) for row in session.execute(select(*CARD_COLUMNS))]


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
        return lookup_card(self.cards.get(digits) if digits else None, digits, at)


@dataclass(frozen=True)
class RosterRow:
    warrant_number: str
    name: str
    rank: str
    status: OfficerStatus
    on_duty_from: datetime | None
    on_duty_until: datetime | None
    # None: the file has no such column (the officer's value is kept)
    unit: str | None = None
    station: str | None = None
    photo: str | None = None


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
    names = [h.strip() for h in header] if header is not None else []
    extra = names[len(CSV_HEADER):]
    if names[:len(CSV_HEADER)] != CSV_HEADER or extra != CSV_EXTRA[:len(extra)]:
        raise RosterImportError([(1, f"header must be exactly: {','.join(CSV_HEADER)} "
                                     f"(optionally followed by {','.join(CSV_EXTRA)}, "
                                     "in that order, trailing ones left out)")])
    width = len(names)
    rows: list[RosterRow] = []
    seen: dict[str, int] = {}
    for fields in reader:
        line = reader.line_num
        if not fields or all(f.strip() == "" for f in fields):
            continue
        if len(fields) != width:
            problems.append((line, f"expected {width} fields, found {len(fields)}"))
            continue
        number, name, rank, status, start, end = (f.strip() for f in fields[:6])
        more: list[str | None] = [f.strip() for f in fields[6:]]
        more += [None] * (len(CSV_EXTRA) - len(more))
        unit, station, photo = more
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
            for field, value, longest in (("unit", unit, 120), ("station", station, 120)):
                if value is not None and len(value) > longest:
                    raise ValueError(f"{field} is longer than {longest} characters")
            if photo and not photos.valid_name(photo):
                raise ValueError(f"photo {photo!r} must be a file name in the photos folder "
                                 "ending .jpg, .jpeg or .png")
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        seen[number] = line
        rows.append(RosterRow(number, name, rank, state, on_from, on_until, unit, station,
                              None if photo is None else photo or ""))
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
        if row.unit is not None:
            officer.unit = row.unit
        if row.station is not None:
            officer.station = row.station
        if row.photo is not None:
            officer.photo = row.photo or None
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


# --- the console's roster admin ---------------------------------------------------------------

EDITABLE = ("name", "rank", "unit", "station", "status", "on_duty_from", "on_duty_until")


def officer_json(o: Officer, at: datetime) -> dict[str, object]:
    """An officer as the console shows them (times as ISO 8601 UTC)."""
    return {"id": o.id, "warrant_number": o.warrant_number, "name": o.name, "rank": o.rank,
            "unit": o.unit, "station": o.station, "status": o.status.value,
            "on_duty_from": iso(o.on_duty_from), "on_duty_until": iso(o.on_duty_until),
            "photo": o.photo, "result_now": classify(o, o.warrant_number, at).value}


def search(session: Session, query: str = "", limit: int = 200) -> list[Officer]:
    """Officers whose warrant number starts with, or whose name contains, ``query``."""
    q = select(Officer)
    text = query.strip()
    if text:
        like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        q = q.where(or_(Officer.warrant_number.like(f"{like}%", escape="\\"),
                        func.lower(Officer.name).like(f"%{like.lower()}%", escape="\\")))
    return list(session.scalars(q.order_by(Officer.warrant_number).limit(limit)))


@dataclass(frozen=True)
class OfficerEdit:
    """The editor's fields, as typed (times still text: parsed by :func:`parse_edit`)."""

    name: str
    rank: str
    unit: str
    station: str
    status: str
    on_duty_from: str
    on_duty_until: str
    # a UTC offset (+05:30) for times given without one (the browser's datetime-local)
    offset: str = "+00:00"


def _offset(raw: str) -> timezone | None:
    text = raw.strip()
    if len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    try:
        hours, minutes = int(text[1:3]), int(text[4:6])
    except ValueError:
        return None
    if hours > 14 or minutes >= 60:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _edit_time(raw: str, zone: timezone | None) -> datetime | None:
    text = raw.strip()
    if not text:
        return None
    value = datetime.fromisoformat(text)  # ValueError: not a date-time
    if value.tzinfo is None:
        if zone is None:
            raise ValueError("give a UTC offset")
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def parse_edit(edit: OfficerEdit) -> dict[str, object]:
    """The new values, or 422 officer_invalid naming every field at fault."""
    problems: dict[str, str] = {}
    name = edit.name.strip()
    if not name:
        problems["name"] = "required"
    for field, value, longest in (("name", name, 200), ("rank", edit.rank.strip(), 100),
                                  ("unit", edit.unit.strip(), 120),
                                  ("station", edit.station.strip(), 120)):
        if len(value) > longest:
            problems[field] = f"at most {longest} characters"
    try:
        status: OfficerStatus | None = OfficerStatus(edit.status.strip().lower())
    except ValueError:
        status = None
        problems["status"] = "one of " + "|".join(s.value for s in OfficerStatus)
    zone = _offset(edit.offset)
    if zone is None:
        problems["offset"] = "a UTC offset such as +05:30 or -04:00"
    window: dict[str, datetime | None] = {}
    for field, raw in (("on_duty_from", edit.on_duty_from), ("on_duty_until", edit.on_duty_until)):
        try:
            window[field] = _edit_time(raw, zone)
        except ValueError:
            window[field] = None
            problems[field] = "a date and time (with a UTC offset, or the offset field)"
    start, end = window["on_duty_from"], window["on_duty_until"]
    if "on_duty_from" not in problems and "on_duty_until" not in problems:
        if (start is None) != (end is None):
            problems["on_duty_until" if end is None else "on_duty_from"] = \
                "give both ends of the duty window, or neither"
        elif start is not None and end is not None and end <= start:
            problems["on_duty_until"] = "must be after on_duty_from"
    if problems:
        raise invalid_fields("officer_invalid", problems)
    return {"name": name, "rank": edit.rank.strip(), "unit": edit.unit.strip(),
            "station": edit.station.strip(), "status": status,
            "on_duty_from": start, "on_duty_until": end}


def _shown(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, OfficerStatus):
        return value.value
    return value


def apply_edit(officer: Officer, values: dict[str, object]
               ) -> tuple[dict[str, object], dict[str, object]]:
    """Set the new values; return (before, after) of the fields that changed."""
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    for field in EDITABLE:
        old, new = getattr(officer, field), values[field]
        if _shown(old) != _shown(new):
            before[field], after[field] = _shown(old), _shown(new)
            setattr(officer, field, new)
    return before, after


def import_counts(session: Session, rows: list[RosterRow]) -> dict[str, int]:
    """What replacing the roster with these rows will do (added, updated, removed or left)."""
    existing = {o.warrant_number: o.id for o in session.scalars(select(Officer))}
    wanted = {r.warrant_number for r in rows}
    gone = [i for n, i in existing.items() if n not in wanted]
    linked = set(session.scalars(select(Encounter.officer_id)
                                 .where(Encounter.officer_id.in_(gone)))) if gone else set()
    return {"rows": len(rows), "added": len(wanted - existing.keys()),
            "updated": len(wanted & existing.keys()), "marked_left": len(linked),
            "removed": len(gone) - len(linked)}
