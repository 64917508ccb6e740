"""Finding encounters afterwards: the console's search, its CSV export and an encounter's
detail (docs/console.md, "Encounters").

Every filter is one of the call table's indexed columns (migration 0008): the date range on
``ix_call_started_at``, the warrant number on ``ix_call_digits_entered``, the outcome on
``ix_call_outcome``, the desk on ``ix_call_supervisor_id`` (each with ``started_at`` second, so
the newest-first order comes from the index), the caller on ``ix_call_caller_number``, the
reference on ``ix_call_reference`` or the encounter's unique reference. The count uses the
same filters without a join, and stops at :data:`COUNT_CAP` (counting a million matches costs
as much as reading them; "10,000+" says enough).

Pages: ``page=N`` skips N-1 pages (OFFSET: a deep page reads every row before it), so the
links the console gives are keyset cursors instead: ``after=<call id>`` (the last row of the
page shown: the next, older page) and ``before=<call id>`` (the first row: the newer page).
A cursor page reads only its own rows from the (started_at, id) order, however deep.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from ivr import callers, calllog, retention
from ivr.clock import iso
from ivr.exceptions import ConsoleError
from ivr.models import Call, CallEvent, Encounter, Officer, Outcome, RosterResult, Supervisor
from ivr.screenpop import outcome_words, outcomes, preregistration, result_view

PER_PAGE = 50
MAX_PAGE = 100_000
COUNT_CAP = 10_000  # the count stops here: "10,000+"
EXPORT_MAX = 100_000  # rows in one CSV export of a whole search
NO_OUTCOME = "none"  # the outcome filter's value for "nothing recorded yet"

CSV_COLUMNS = ("call_id", "reference", "encounter_reference", "started_at", "answered_at",
               "ended_at", "end_reason", "caller_number", "warrant_number", "roster_result",
               "officer", "desk", "outcome", "flags", "recording")


@dataclass(frozen=True)
class SearchFilters:
    """A search: every field given narrows it (times are UTC; ``until`` is exclusive)."""

    since: datetime | None = None
    until: datetime | None = None
    reference: str | None = None
    warrant: str | None = None
    caller: str | None = None
    outcome: str | None = None
    desk: str | None = None
    # the caller's number as retention hashes it (ivr.retention.caller_hash): the search by a
    # number also finds its calls whose number was hashed at the end of its retention period
    caller_hash: str | None = None

    def as_params(self, zone: str = "UTC") -> dict[str, str]:
        """The query parameters that give this search back (for links and the CSV)."""
        out: dict[str, str] = {}
        if self.since is not None:
            out["from"] = self.since.isoformat()
        if self.until is not None:
            out["to"] = self.until.isoformat()
        for name in ("reference", "warrant", "caller", "outcome", "desk"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


def _bad(message: str) -> ConsoleError:
    return ConsoleError("filter_invalid", message, 422)


def parse_time(raw: str, zone: ZoneInfo, end: bool) -> datetime:
    """``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]``, with an offset (``Z``, ``+01:00``) or in
    ``zone``; a date alone as ``to`` means the end of that day."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=zone)
            moment = start + timedelta(days=1) if end else start
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
    except ValueError:
        raise _bad(f"{raw!r} is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)") from None
    return moment.astimezone(UTC)


def parse_filters(params: Mapping[str, str], retention_key: str = "") -> SearchFilters:
    """The search the query parameters ask for (422 filter_invalid if one is malformed); with
    the ``retention_key``, a search by number also matches that number's hashed calls."""
    def text(name: str, longest: int) -> str | None:
        value = (params.get(name) or "").strip()
        if len(value) > longest:
            raise _bad(f"{name} is longer than {longest} characters")
        return value or None

    zone_name = (params.get("tz") or "UTC").strip()
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(f"tz={zone_name!r} is not a time zone (e.g. Europe/London, UTC)") from None
    since = parse_time(params["from"], zone, end=False) if params.get("from") else None
    until = parse_time(params["to"], zone, end=True) if params.get("to") else None
    if since is not None and until is not None and until <= since:
        raise _bad("the end of the date range is not after its start")
    outcome = text("outcome", 30)
    if outcome is not None and outcome != NO_OUTCOME and outcome not in set(Outcome):
        raise _bad(f"outcome={outcome!r}: use one of {', '.join(Outcome)} or {NO_OUTCOME}")
    caller = text("caller", 80)
    number = callers.caller_number(caller)
    hashed = (retention.caller_hash(retention_key, number)
              if retention_key and number is not None and not callers.is_hashed(number)
              else None)
    return SearchFilters(since=since, until=until, reference=text("reference", 14),
                         warrant=text("warrant", 80), caller=caller,
                         outcome=outcome, desk=text("desk", 80), caller_hash=hashed)


def parse_page(raw: str | None) -> int:
    if raw is None or raw == "":
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise _bad(f"page={raw!r} must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


@dataclass(frozen=True)
class Cursor:
    """A keyset page: the rows older than (``after``) or newer than (``before``) the call
    with this id, in the search's newest-first order."""

    call_id: int
    older: bool  # True: after (the next, older page); False: before (the newer page)


def parse_cursor(params: Mapping[str, str]) -> Cursor | None:
    """``after=<call id>`` or ``before=<call id>`` (422 filter_invalid: malformed, or both)."""
    after, before = params.get("after") or "", params.get("before") or ""
    if after and before:
        raise _bad("give after or before, not both")
    raw = after or before
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 2**62:
        raise _bad(f"{'after' if after else 'before'}={raw!r} must be a call id")
    return Cursor(int(raw), older=bool(after))


def _where(query: Select[Any], f: SearchFilters) -> Select[Any]:
    if f.since is not None:
        query = query.where(Call.started_at >= f.since)
    if f.until is not None:
        query = query.where(Call.started_at < f.until)
    if f.reference:
        # a scalar subquery (the reference is unique): PostgreSQL then ORs two index scans;
        # with IN (subquery) it scanned the whole call table
        query = query.where(or_(
            Call.reference == f.reference,
            Call.encounter_id == select(Encounter.id).where(
                Encounter.reference == f.reference).scalar_subquery()))
    if f.warrant:
        query = query.where(Call.digits_entered == f.warrant)
    if f.caller and f.caller_hash:
        query = query.where(Call.caller_number.in_([f.caller, f.caller_hash]))
    elif f.caller:
        query = query.where(Call.caller_number == f.caller)
    if f.outcome == NO_OUTCOME:
        query = query.where(Call.outcome.is_(None))
    elif f.outcome:
        query = query.where(Call.outcome == f.outcome)
    if f.desk:
        query = query.where(Call.supervisor_id.in_(
            select(Supervisor.id).where(Supervisor.desk == f.desk)))
    return query


def _row(call: Call) -> dict[str, Any]:
    officer = call.encounter.officer
    return {
        "call_id": call.id,
        "reference": call.reference or call.encounter.reference,
        "encounter_reference": call.encounter.reference,
        "started_at": iso(call.started_at), "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at), "end_reason": call.end_reason,
        "caller_number": callers.shown(call.caller_number),
        "warrant_number": call.digits_entered,
        "roster_result": (call.roster_result or RosterResult.NONE_ENTERED).value,
        "result": result_view(call.roster_result, officer),
        "officer": f"{officer.rank} {officer.name}" if officer else None,
        "desk": call.supervisor.desk if call.supervisor else None,
        "outcome": call.outcome, "outcome_words": outcome_words(call.outcome),
        "flags": [f for f in call.flags.split(",") if f],
        "recording": call.recording is not None,
    }


def _rows_query(f: SearchFilters) -> Select[Call]:
    return _where(select(Call), f).options(
        joinedload(Call.encounter).joinedload(Encounter.officer),
        joinedload(Call.supervisor)).order_by(Call.started_at.desc(), Call.id.desc())


def count(session: Session, f: SearchFilters, cap: int | None = None) -> tuple[int, bool]:
    """(how many calls match, up to ``cap`` (COUNT_CAP); whether there are more)."""
    cap = COUNT_CAP if cap is None else cap
    capped = _where(select(Call.id), f).limit(cap + 1).subquery()
    found = int(session.scalar(select(func.count()).select_from(capped)) or 0)
    return min(found, cap), found > cap


def _keyset(query: Select[Any], session: Session, cursor: Cursor) -> Select[Any]:
    at = session.scalar(select(Call.started_at).where(Call.id == cursor.call_id))
    if at is None:
        raise _bad(f"there is no call {cursor.call_id} to page from")
    if cursor.older:
        # started_at <= at alone is what the index ranges over; the OR breaks ties by id
        return query.where(Call.started_at <= at, or_(
            Call.started_at < at, and_(Call.started_at == at, Call.id < cursor.call_id)))
    return query.where(Call.started_at >= at, or_(
        Call.started_at > at, and_(Call.started_at == at, Call.id > cursor.call_id)))


def search(session: Session, f: SearchFilters, page: int = 1,
           per_page: int = PER_PAGE, cursor: Cursor | None = None) -> dict[str, Any]:
    """One page of the calls that match, newest first, how many match (up to COUNT_CAP), and
    the cursors of the pages beside it (None: there is none)."""
    total, more = count(session, f)
    if cursor is None:
        calls = list(session.scalars(_rows_query(f).limit(per_page + 1)
                                     .offset((page - 1) * per_page)))
        older, newer = len(calls) > per_page, page > 1
        calls = calls[:per_page]
    elif cursor.older:
        calls = list(session.scalars(_keyset(_rows_query(f), session, cursor)
                                     .limit(per_page + 1)))
        older, newer = len(calls) > per_page, True
        calls = calls[:per_page]
    else:
        query = _keyset(_where(select(Call), f), session, cursor).options(
            joinedload(Call.encounter).joinedload(Encounter.officer),
            joinedload(Call.supervisor)).order_by(Call.started_at, Call.id)
        calls = list(session.scalars(query.limit(per_page + 1)))
        older, newer = True, len(calls) > per_page
        calls = list(reversed(calls[:per_page]))
    rows = [_row(c) for c in calls]
    pages = max(1, -(-total // per_page))
    return {"rows": rows, "total": total, "total_capped": more,
            "page": page if cursor is None else None, "per_page": per_page, "pages": pages,
            "after": rows[-1]["call_id"] if rows and older else None,
            "before": rows[0]["call_id"] if rows and newer else None}


def _csv_line(row: dict[str, Any]) -> str:
    out = io.StringIO()
    values = {**row, "flags": " ".join(row["flags"]), "recording": "yes" if row["recording"]
              else "no"}
    csv.writer(out, lineterminator="\r\n").writerow(
        ["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return out.getvalue()


def csv_lines(session: Session, f: SearchFilters, page: int | None = None,
              per_page: int = PER_PAGE) -> Iterator[str]:
    """The search as CSV (header first): one page, or the whole search up to EXPORT_MAX."""
    yield ",".join(CSV_COLUMNS) + "\r\n"
    query = _rows_query(f)
    query = (query.limit(per_page).offset((page - 1) * per_page) if page is not None
             else query.limit(EXPORT_MAX))
    for call in session.scalars(query.execution_options(yield_per=1000)):
        yield _csv_line(_row(call))


def find_encounter(session: Session, reference: str) -> Encounter | None:
    """The encounter a reference names: its own, or the one a call read it was logged on."""
    found = session.scalars(select(Encounter).where(Encounter.reference == reference)).first()
    if found is not None:
        return found
    call = session.scalars(select(Call).where(Call.reference == reference)).first()
    return call.encounter if call is not None else None


def detail(session: Session, reference: str) -> dict[str, Any] | None:
    """An encounter with every call of it and each call's full timeline and outcomes."""
    encounter = find_encounter(session, reference)
    if encounter is None:
        return None
    officer: Officer | None = encounter.officer
    calls = session.scalars(select(Call).where(Call.encounter_id == encounter.id)
                            .options(joinedload(Call.supervisor), joinedload(Call.encounter))
                            .order_by(Call.started_at, Call.id)).unique().all()
    views = []
    for call in calls:
        events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)
                                 .order_by(CallEvent.id))
        views.append({
            **_row(call),
            "json": calllog.call_as_json(call),
            "timeline": [{"id": e.id, "at": iso(e.at), "kind": e.kind, "detail": e.detail}
                         for e in events],
            "outcomes": outcomes(session, call.id),
        })
    return {
        "reference": encounter.reference, "kind": encounter.kind,
        "opened_at": iso(encounter.opened_at), "closed_at": iso(encounter.closed_at),
        "caller_number": callers.shown(encounter.caller_number),
        "officer": (f"{officer.rank} {officer.name}" if officer else None),
        "warrant_number": officer.warrant_number if officer else None,
        "preregistration": preregistration(session, encounter),
        "calls": views,
    }


def call_recording(session: Session, call_id: int) -> tuple[str, str] | None:
    """(the call's reference, its recording's name), or None when it has none."""
    call = session.get(Call, call_id)
    if call is None or call.recording is None:
        return None
    return call.reference, call.recording
