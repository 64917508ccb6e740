"""The line's reads stay independent of the history's size: each query the code really makes
(captured as it runs) is answered through an index that narrows it to the rows it needs,
never by reading the call log or the encounters whole (benchmarks/scale.py measures it at
200,000 officers and 1,000,000 calls).

How: the statements a use case sends are captured with their parameters, then asked for their
plan (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with sequential scans discouraged, since
on a table of a few rows a scan is what the planner rightly picks); the test reads the index
used and the columns of its condition.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from ivr import calllog, services
from ivr.config import Settings
from ivr.models import (
    Call,
    CallPath,
    Encounter,
    EncounterKind,
    Officer,
    OfficerStatus,
    RosterResult,
)
from ivr.store import Store

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
CALLER = "07700900123"


def index_conditions(store: Store, work: Callable[[], object], table: str) -> list[str]:
    """For each SELECT ``work`` makes from ``table``, how its plan reads the table: the
    index and its condition (``SCAN`` / ``Seq Scan``: the whole table)."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        work()
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    sqlite = store.engine.dialect.name == "sqlite"
    found = []
    with store.engine.connect() as conn:
        if not sqlite:
            conn.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT") or \
                    f"FROM {table} " not in f"{statement} ".replace('"', ""):
                continue
            rows = conn.exec_driver_sql(
                ("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters).all()
            lines = [str(r[-1] if sqlite else r[0]).strip() for r in rows]
            found.append(" | ".join(
                line for line in lines
                if (sqlite and f" {table}" in f" {line}") or
                (not sqlite and ("Index" in line or "Seq Scan" in line))))
    return found


def add_past_calls(store: Store, officer_id: int, n: int = 30) -> None:
    """``n`` ended calls of CALLER about the officer over the last month."""
    with store.session() as s:
        for i in range(n):
            at = NOW - timedelta(days=30) + timedelta(hours=i)
            enc = Encounter(reference=f"9{i:07d}", caller_number=CALLER, opened_at=at,
                            kind=EncounterKind.CALL.value, officer_id=officer_id)
            s.add(enc)
            s.flush()
            s.add(Call(channel_id=f"past-{i}", reference=enc.reference, encounter_id=enc.id,
                       caller_number=CALLER, digits_entered="4242",
                       roster_result=RosterResult.ON_DUTY, started_at=at,
                       ended_at=at + timedelta(minutes=2), end_reason="caller_hangup",
                       path=CallPath.ARI, state="ended"))


def an_officer(store: Store) -> int:
    with store.session() as s:
        officer = Officer(warrant_number="4242", name="Ann Smith", rank="PC",
                          status=OfficerStatus.ACTIVE)
        s.add(officer)
        s.flush()
        return officer.id


def test_given_past_calls_when_a_caller_looks_a_number_up_then_their_rate_is_counted_by_index(
        store: Store, tmp_path: Path) -> None:
    officer = an_officer(store)
    add_past_calls(store, officer)
    settings = Settings(home=tmp_path, db_url="")

    [count] = index_conditions(store, lambda: services.check_number(
        store, settings, "4242", CALLER, "new-call", NOW), "call")

    # the caller's calls since the rate window's start: one range of one index
    assert "ix_call_caller_number" in count
    assert "started_at" in count


def test_given_an_officer_with_past_calls_when_looked_up_then_the_open_encounter_read_by_index(
        store: Store, tmp_path: Path) -> None:
    officer = an_officer(store)
    add_past_calls(store, officer)
    settings = Settings(home=tmp_path, db_url="")

    [device] = index_conditions(store, lambda: services.check_number(
        store, settings, "4242", CALLER, "new-call", NOW), "encounter")

    # past calls' encounters (kind call, never closed) are passed over inside the index
    assert "ix_encounter_officer_open" in device
    assert "kind" in device
    assert "opened_at" in device


def test_given_ended_calls_when_the_line_looks_for_open_ones_then_only_open_rows_are_read(
        store: Store) -> None:
    add_past_calls(store, an_officer(store))

    [open_calls] = index_conditions(store, lambda: services.open_calls(store), "call")

    assert "ix_call_open" in open_calls


def test_given_a_call_log_when_listed_since_an_hour_ago_then_only_that_hour_is_read(
        store: Store) -> None:
    add_past_calls(store, an_officer(store))
    since = NOW - timedelta(hours=1)

    def listed() -> None:
        with store.session() as s:
            calllog.list_calls(s, since=since)
            calllog.list_calls(s, limit=10, since=since)

    plans = index_conditions(store, listed, "call")

    assert len(plans) == 2
    assert all("ix_call_started_at" in p for p in plans), plans
