"""Filling a store fast for the benchmarks (bulk Core inserts, 10,000 rows a batch): a roster,
desks, then calls each with its encounter, oldest first; then ANALYZE (and on PostgreSQL the
call id sequence moved past the rows inserted with explicit ids).

Used by benchmarks/console_search.py (1,000,000 calls over 2024, 200 officers) and
benchmarks/scale.py (200,000 officers, 1,000,000 calls ending now).
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text

from ivr.models import Call, Encounter, Officer, OfficerStatus, RosterResult, Supervisor
from ivr.store import Store

START = datetime(2024, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 24 * 3600
OFFICERS, DESKS, CALLERS = 200, 20, 50_000
OUTCOMES = ["verified"] * 70 + ["not_verified"] * 10 + ["escalated"] * 5 + \
    ["advice_given"] * 10 + ["caller_left"] * 5
BATCH = 10_000
FIRST_WARRANT = 1000  # officer i has warrant number FIRST_WARRANT + i
FIRST_REFERENCE = 10_000_000  # call i has reference FIRST_REFERENCE + i


def warrant(i: int) -> str:
    return str(FIRST_WARRANT + i)


def caller(i: int) -> str:
    return f"07700{i:06d}"


def fill_roster(store: Store, officers: int, desks: int = DESKS,
                on_duty: tuple[datetime, datetime] | None = None) -> None:
    """``officers`` active officers (warrant numbers from FIRST_WARRANT up) and ``desks``
    desks; with ``on_duty``, every officer's duty window."""
    start, end = on_duty if on_duty is not None else (None, None)
    with store.engine.begin() as conn:
        for first in range(0, officers, BATCH):
            conn.execute(insert(Officer.__table__), [
                {"warrant_number": warrant(i), "name": f"Officer {i}", "rank": "Constable",
                 "status": OfficerStatus.ACTIVE.value, "unit": "", "station": "",
                 "on_duty_from": start, "on_duty_until": end}
                for i in range(first, min(officers, first + BATCH))])
        conn.execute(insert(Supervisor.__table__), [
            {"desk": f"desk{i + 1}", "display_name": f"desk{i + 1}", "paused": False,
             "signed_out": False, "pause_reason": "", "state": "free"} for i in range(desks)])


def fill_calls(store: Store, calls: int, officers: int = OFFICERS, desks: int = DESKS,
               start: datetime = START, span_seconds: int = YEAR_SECONDS,
               progress: bool = True) -> None:
    """``calls`` ended calls spread at random over ``span_seconds`` from ``start``: most key
    a warrant number of the roster (some an unknown number, some none), from 50,000 caller
    numbers (one in ten withheld), answered by one of the desks most of the time."""
    rnd = random.Random(11)
    offsets = sorted(rnd.randrange(span_seconds) for _ in range(calls))
    began = time.monotonic()
    for first in range(0, calls, BATCH):
        encounters, rows = [], []
        for i in range(first, min(calls, first + BATCH)):
            at = start + timedelta(seconds=offsets[i])
            number = None if rnd.random() < 0.1 else caller(rnd.randrange(CALLERS))
            pick = rnd.random()
            officer = rnd.randrange(officers)
            digits = (warrant(officer) if pick < 0.9 else "" if pick < 0.95
                      else str(rnd.randrange(100000, 999999)))
            result = (RosterResult.ON_DUTY if pick < 0.8 else RosterResult.OFF_DUTY
                      if pick < 0.9 else RosterResult.NONE_ENTERED if pick < 0.95
                      else RosterResult.UNKNOWN)
            answered = rnd.random() < 0.85
            reference = str(FIRST_REFERENCE + i)
            encounters.append({"id": i + 1, "reference": reference, "caller_number": number,
                               "opened_at": at, "kind": "call",
                               "officer_id": officer + 1 if pick < 0.9 else None})
            rows.append({
                "id": i + 1, "channel_id": f"bench-{i}", "reference": reference,
                "encounter_id": i + 1, "caller_number": number, "digits_entered": digits,
                "roster_result": result.value,
                "supervisor_id": rnd.randrange(desks) + 1 if answered else None,
                "started_at": at, "answered_at": at + timedelta(seconds=40) if answered
                else None, "ended_at": at + timedelta(seconds=200),
                "end_reason": "caller_hangup" if answered else "caller_abandoned",
                "path": "ari", "flags": "", "language": "en", "state": "ended",
                "outcome": rnd.choice(OUTCOMES) if answered and rnd.random() < 0.95 else None,
                "recording": f"rec-{i}" if answered else None})
        with store.engine.begin() as conn:
            conn.execute(insert(Encounter.__table__), encounters)
            conn.execute(insert(Call.__table__), rows)
        done = min(calls, first + BATCH)
        if progress and done % 100_000 == 0:
            print(f"  {done:>9,} calls in {time.monotonic() - began:.0f} s", flush=True)


def analyze(store: Store) -> None:
    """Fresh planner statistics; on PostgreSQL the id sequences past the explicit ids."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE"))
            for table in ("call", "encounter"):
                conn.execute(text(f"SELECT setval('{table}_id_seq', "
                                  f"(SELECT coalesce(max(id), 1) FROM {table}))"))
        else:
            conn.execute(text("ANALYZE"))
        conn.commit()


def fill(store: Store, calls: int, officers: int = OFFICERS) -> None:
    """Officers, desks, then calls (each with its encounter) over 2024, oldest first."""
    fill_roster(store, officers)
    fill_calls(store, calls, officers)
    analyze(store)
