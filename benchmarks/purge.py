"""Benchmark: ``verifyline purge`` (ivr.retention) on a year of calls.

    .venv/bin/python benchmarks/purge.py [--calls 200000] [--backend sqlite|postgresql|both]

Fills a fresh database (benchmarks/filling.py: calls spread over 2024 from 50,000 caller
numbers, one in ten withheld, most answered and recorded) and gives each call its timeline's
``started`` event with the number, and one call in twenty a callback. Then, as of 2025-01-01
with the default periods (numbers 90 days, recordings 31), times a dry run, the run, and a
second run (which finds nothing to do), and prints what each changed. The recording files are
not on disk (the rows are cleared all the same and say ``file: missing``): the figure is the
database's work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.filling import BATCH, analyze, fill
from ivr import retention
from ivr.models import Call, Callback, CallEvent
from ivr.store import Store
from tests.pgcluster import PgCluster

AT = datetime(2025, 1, 1, tzinfo=UTC)
POLICY = retention.Policy(caller_number_days=90, recordings_days=31)
KEY = "benchmark-key-" + "x" * 32


def add_timelines(store: Store) -> None:
    """A ``started`` event per call (what calllog.open_call writes), a callback per 20."""
    with store.engine.begin() as conn:
        rows = list(conn.execute(select(Call.id, Call.caller_number, Call.started_at,
                                        Call.reference).order_by(Call.id)))
        for first in range(0, len(rows), BATCH):
            chunk = rows[first:first + BATCH]
            conn.execute(insert(CallEvent.__table__), [
                {"call_id": i, "at": at, "kind": "started",
                 "detail": {"caller_number": n, "path": "ari", "reference": ref}}
                for i, n, at, ref in chunk])
            callbacks = [{"call_id": i, "caller_number": n, "reference": ref,
                          "digits_entered": "", "created_at": at}
                         for i, n, at, ref in chunk if i % 20 == 0]
            if callbacks:
                conn.execute(insert(Callback.__table__), callbacks)


def bench(store: Store, label: str, calls: int, tmp: Path) -> None:
    print(f"\n{label}: filling {calls:,} calls ...", flush=True)
    t = time.monotonic()
    store.migrate()
    fill(store, calls)
    add_timelines(store)
    analyze(store)  # the planner's statistics of call_event and callback too
    print(f"filled in {time.monotonic() - t:.0f} s")
    for name, dry in (("dry run", True), ("run", False), ("second run", False)):
        t = time.perf_counter()
        report = retention.purge(store, POLICY, KEY, tmp / "recordings", AT, dry_run=dry,
                                 lock_file=tmp / "purge.lock", run_by="benchmark")
        seconds = time.perf_counter() - t
        print(f"{name:<11} {seconds:7.1f} s  calls {report.calls_hashed:,}, encounters "
              f"{report.encounters_hashed:,}, callbacks {report.callbacks_hashed:,}, events "
              f"{report.events_hashed:,}, recordings {report.recordings_deleted:,}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = ap.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{tmp}/bench.db")
            bench(store, "SQLite", args.calls, Path(tmp))
            store.dispose()
    if args.backend in ("postgresql", "both"):
        cluster = PgCluster.create()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                store = Store(cluster.create_database("bench"))
                bench(store, "PostgreSQL", args.calls, Path(tmp))
                store.dispose()
        finally:
            cluster.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
