"""Concurrent writers on one database, as in production: the app's writer thread, the CLI
(``verifyline supervisors pause ...``) and a second process starting up, each with a Store
(an engine) of its own. Nothing may deadlock, fail or get lost, on either backend."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from ivr import calllog
from ivr.entities import CallData
from ivr.models import Base, Call, CallEvent, EndReason, RosterResult, Supervisor
from ivr.store import Store

WRITERS = 4
CALLS_EACH = 12
ROUNDS = 25
DESKS = ("desk1", "desk2", "desk3", "desk4", "desk5", "desk6")
T0 = datetime(2026, 11, 24, 12, tzinfo=UTC)
DEADLINE = 60.0  # seconds: far above the real time, so only a deadlock gets there


def run_at_once(db_url: str, work: Callable[[Store, int], None], writers: int = WRITERS) -> None:
    """Run ``work(store, n)`` in ``writers`` threads, each with a Store of its own, released
    together; re-raise the first failure; a writer still busy after DEADLINE is a deadlock."""
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        store = Store(db_url)
        try:
            store.engine.connect().close()  # connected before the start: a level start line
            start.wait(timeout=DEADLINE)
            work(store, n)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.dispose()

    threads = [threading.Thread(target=writer, args=(n,), name=f"writer{n}", daemon=True)
               for n in range(writers)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"still writing after {DEADLINE:.0f} s (deadlocked?): {stuck}"
    if errors:
        raise errors[0]


def a_call(n: int, i: int) -> CallData:
    return CallData(channel_id=f"{n}.{i}", caller_number=f"0770090{n:02d}{i:02d}",
                    reference="", started_at=T0 + timedelta(seconds=i))


def log_calls(store: Store, n: int) -> None:
    """What the app's writer thread does for each caller: open, key, answer, hang up."""
    for i in range(CALLS_EACH):
        data = a_call(n, i)
        with store.session() as s:
            data.reference = calllog.open_call(s, data.channel_id, data.caller_number,
                                               data.started_at)
        data.digits, data.roster_result, data.state = "123456", RosterResult.ON_DUTY, "connecting"
        with store.session() as s:
            calllog.save(s, data, "digits", {"digits": data.digits})
        # desks the store has never seen: their rows are created by whoever comes first
        data.answered_desk = DESKS[(n + i) % len(DESKS)]
        data.answered_at = data.started_at + timedelta(seconds=5)
        data.state = "bridged"
        with store.session() as s:
            calllog.save(s, data, "answered", {"desk": data.answered_desk})
        data.ended_at = data.answered_at + timedelta(seconds=30)
        data.end_reason, data.state = EndReason.CALLER_HANGUP, "ended"
        with store.session() as s:
            calllog.save(s, data, "ended", {"reason": data.end_reason.value})


def test_given_writers_logging_calls_at_once_then_every_call_and_event_is_kept(db_url, store):
    run_at_once(db_url, log_calls)

    with store.session() as s:
        calls = calllog.list_calls(s)
        events = s.scalar(select(func.count(CallEvent.id)))
        desks = list(s.scalars(select(Supervisor.desk)))
    assert len(calls) == WRITERS * CALLS_EACH
    assert {c["channel_id"] for c in calls} == {
        f"{n}.{i}" for n in range(WRITERS) for i in range(CALLS_EACH)}
    assert all(c["end_reason"] == "caller_hangup" and c["supervisor"] for c in calls)
    assert len({c["reference"] for c in calls}) == len(calls)
    assert events == WRITERS * CALLS_EACH * 4  # started, digits, answered, ended
    assert sorted(desks) == sorted(DESKS)  # one row per desk, however many raced for it


def test_given_app_and_cli_changing_availability_at_once_then_no_error_and_one_row_per_desk(
        db_url, store):
    def availability(store: Store, n: int) -> None:
        for i in range(ROUNDS):
            desk = DESKS[(n + i) % len(DESKS)]
            with store.session() as s:
                if i % 5 == 0:  # the app (re)starting meanwhile
                    calllog.ensure_desks(s, DESKS)
                calllog.set_availability(s, desk, paused=n % 2 == 0, signed_out=False,
                                         reason=f"writer{n}")

    run_at_once(db_url, availability)

    with store.session() as s:
        rows = calllog.supervisors(s)
    assert [r["desk"] for r in rows] == sorted(DESKS)
    # each desk holds what one writer set last, never a mix of two writers' changes
    assert all(r["paused"] == (r["pause_reason"] is not None) for r in rows)
    assert all(r["pause_reason"] is None or int(r["pause_reason"][-1]) % 2 == 0 for r in rows)


def test_given_desk_changed_after_a_writer_read_it_then_that_writer_leaves_no_mixed_state(
        db_url, store):
    with store.session() as s:
        calllog.set_availability(s, "desk1", paused=True, signed_out=False, reason="cli")
    other = Store(db_url)
    try:
        with store.session() as late:
            # read (and held) before the other writer commits
            (seen,) = late.scalars(select(Supervisor)).all()
            assert seen.paused
            with other.session() as s:  # a supervisor makes the desk available (*52)
                calllog.set_availability(s, "desk1", paused=False, signed_out=False)
            # the line auto-pauses it, from what it read: paused already, only the reason new
            calllog.set_availability(late, "desk1", paused=True, signed_out=False,
                                     reason="no_answer")
    finally:
        other.dispose()

    with store.session() as s:
        (row,) = calllog.supervisors(s)
    assert (row["paused"], row["pause_reason"]) == (True, "no_answer")


def test_given_calls_and_availability_changes_at_once_then_nothing_is_lost(db_url, store):
    def mixed(store: Store, n: int) -> None:
        if n % 2 == 0:
            log_calls(store, n)
            return
        for i in range(ROUNDS):
            with store.session() as s:
                calllog.set_availability(s, DESKS[i % len(DESKS)], paused=i % 2 == 0,
                                         signed_out=False, reason="cli")

    run_at_once(db_url, mixed)

    with store.session() as s:
        calls = s.scalar(select(func.count(Call.id)))
        idle = calllog.idle_since(s)
    assert calls == (WRITERS // 2) * CALLS_EACH
    assert set(idle) == set(DESKS)
    # the call log's idle times survived the availability writes to the same rows
    assert all(idle[d] is not None for d in DESKS)


def test_given_one_call_opened_by_several_writers_at_once_then_one_row_and_one_reference(
        db_url, store):
    references: list[str] = []

    def open_same(store: Store, n: int) -> None:
        with store.session() as s:
            references.append(calllog.open_call(s, "1700000000.1", "07700900123", T0))

    run_at_once(db_url, open_same)

    with store.session() as s:
        (call,) = calllog.list_calls(s)
        events = s.scalar(select(func.count(CallEvent.id)))
    assert references == [call["reference"]] * WRITERS
    assert events == 1  # one "started" event, not one per writer


# a process that starts like the app or a CLI command: connect, then (on "go") migrate
STARTER = """
import sys
from ivr.store import Store
store = Store(sys.argv[1])
store.engine.connect().close()
print("ready", flush=True)
sys.stdin.readline()
store.migrate()
"""


def test_given_processes_starting_at_once_on_an_empty_database_then_each_finds_it_migrated(
        empty_db_url):
    # processes, not threads: Alembic keeps its migration context in module globals
    starters = [subprocess.Popen([sys.executable, "-c", STARTER, empty_db_url], text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE) for _ in range(3)]
    try:
        for p in starters:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in starters:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [(p.wait(DEADLINE), p.communicate()[1]) for p in starters]
    finally:
        for p in starters:
            if p.poll() is None:
                p.kill()
            p.communicate()  # reaps it and closes its pipes
    assert [rc for rc, _ in results] == [0, 0, 0], [err[-600:] for _, err in results]

    store = Store(empty_db_url)
    try:
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        store.dispose()

