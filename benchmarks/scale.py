"""Benchmark: how cost grows with the work (issue 12, item 3).

    .venv/bin/python benchmarks/scale.py [--db sqlite|postgresql]
                                         [--officers 200000 --calls 1000000] [--lookups 2000]

Fills two stores (benchmarks/filling.py: bulk Core inserts), a small one (100 officers,
1,000 calls) and the full one (``--officers``, ``--calls``; the defaults are a smoke run),
each with calls arriving at the same rate (1,000,000 a year, about 114 an hour) up to now, so
the last hour holds about as many calls in both and only the history differs. Then prints,
for both side by side:

- the warrant lookup the line makes when a caller presses # (ivr.services.check_number: the
  roster row, the caller's lookups in the rate window, the officer's open pre-registration),
  p50/p99 over ``--lookups`` lookups of random known and unknown numbers from random callers
  (one in ten withheld); the target is p99 <= 5 ms;
- start-up: LineService.prepare (migrate, desks, idle order, availability, the journal's
  flush), what the first resync reads (the calls left open), and loading the in-memory roster
  copy (the roster read plus RosterCopy.replace);
- ``verifyline calls list --since <an hour ago> --json``: the real CLI in a subprocess (start
  of Python, imports, the no-op migration it runs, the query and the JSON), and the query
  alone (ivr.calllog.list_calls);
- migrations: upgrade from base on an empty database, the no-op upgrade on the full store,
  and on the full store the newest migration alone (downgraded one step, then upgraded: what
  a deployment of it costs at this size).

SQLite: files in a temporary directory; PostgreSQL: a throwaway cluster (tests/pgcluster.py).
Figures are wall times on whatever else the machine runs: repeat a run before believing one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from alembic import command  # noqa: E402
from sqlalchemy import func, insert, select, text  # noqa: E402

from ari_app.client import AriClient  # noqa: E402
from ari_app.service import LineService  # noqa: E402
from benchmarks import filling  # noqa: E402
from ivr import calllog, services  # noqa: E402
from ivr.clock import now  # noqa: E402
from ivr.config import Settings  # noqa: E402
from ivr.models import Call, Encounter  # noqa: E402
from ivr.store import Store, alembic_config  # noqa: E402
from tests.pgcluster import PgCluster  # noqa: E402

RATE_PER_SECOND = 1_000_000 / filling.YEAR_SECONDS  # the full store's arrival rate
SMALL_OFFICERS, SMALL_CALLS = 100, 1_000
LOOKUP_P99_MS = 5.0
CLI_RUNS = 5
STARTS = 3  # start-up figures: the median of this many
BUSY_CALLS, BUSY_CALLER = 5_000, "07800000001"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(work: Callable[[], object]) -> float:
    t = time.perf_counter()
    work()
    return time.perf_counter() - t


@dataclass
class Figures:
    """One store's figures, in seconds (lookups: samples)."""

    officers: int
    calls: int
    fill: float = 0.0
    upgrade_from_base: float = 0.0
    noop_upgrade: float = 0.0
    newest_migration: float = 0.0
    lookups: tuple[float, float] = (0.0, 0.0)  # p50, p99
    lookups_known: tuple[float, float] = (0.0, 0.0)
    lookups_busy: tuple[float, float] = (0.0, 0.0)
    prepare: float = 0.0
    open_calls: float = 0.0
    roster_copy: float = 0.0
    roster_cards: int = 0
    since_rows: int = 0
    since_query: float = 0.0
    since_cli: tuple[float, float] = (0.0, 0.0)  # median, max


def settings_for(home: Path, url: str) -> Settings:
    return Settings.from_env({"VERIFYLINE_HOME": str(home), "VERIFYLINE_DB_URL": url})


def fill(store: Store, officers: int, calls: int) -> None:
    """The roster and ``calls`` calls at the full store's rate, the newest a minute ago."""
    span = max(60, round(calls / RATE_PER_SECOND))
    start = now() - timedelta(seconds=span + 60)
    filling.fill_roster(store, officers)
    filling.fill_calls(store, calls, officers, start=start, span_seconds=span)
    filling.analyze(store)
    settle(store)


def settle(store: Store) -> None:
    """Write out what the fill left to write (a checkpoint, then the page cache), so the
    lookups that follow do not share the disk with a gigabyte of it being flushed."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("CHECKPOINT"))
        else:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    os.sync()


def bench_lookups(store: Store, settings: Settings, officers: int, runs: int
                  ) -> tuple[list[float], list[float]]:
    """(every lookup's time, the known numbers' times)."""
    rnd = random.Random(5)
    every, known = [], []
    for i in range(runs + 50):
        hit = rnd.random() < 0.8
        digits = (filling.warrant(rnd.randrange(officers)) if hit
                  else str(rnd.randrange(10**8, 10**9)))  # 9 digits: never on the roster
        number = None if rnd.random() < 0.1 else filling.caller(rnd.randrange(filling.CALLERS))
        took = timed(lambda d=digits, n=number, c=f"lookup-{i}": services.check_number(
            store, settings, d, n, c, now()))
        if i >= 50:  # the first ones warm the pool and the caches
            every.append(took)
            if hit:
                known.append(took)
    return every, known


def bench_startup(store: Store, settings: Settings) -> tuple[float, float, float, int]:
    """(LineService.prepare, the first resync's read, the roster copy's load, cards)."""
    async def run() -> tuple[float, float, float, int]:
        line = LineService(settings, store, AriClient(settings.ari_url, settings.ari_user,
                                                      settings.ari_password, settings.app_name))
        try:
            t = time.perf_counter()
            await line.prepare()
            prepare = time.perf_counter() - t
            t = time.perf_counter()
            await line.in_db(lambda: services.open_calls(store))
            resync = time.perf_counter() - t
            t = time.perf_counter()
            cards = await line.in_db(lambda: services.roster_cards(store))
            line.roster_copy.replace(cards, now())
            copy = time.perf_counter() - t
            return prepare, resync, copy, len(line.roster_copy.cards)
        finally:
            line._db.shutdown(wait=True)
            line.durable.stop()
    return asyncio.run(run())


def bench_since(store: Store, settings: Settings) -> tuple[int, float, tuple[float, float]]:
    since = now() - timedelta(hours=1)
    rows: list[object] = []

    def query() -> None:
        with store.session() as s:
            rows[:] = calllog.list_calls(s, since=since)
    query()
    took = statistics.median(timed(query) for _ in range(5))
    env = {**os.environ, "VERIFYLINE_HOME": str(settings.home),
           "VERIFYLINE_DB_URL": settings.db_url}
    # what the verifyline entry point runs, from this checkout (never an installed copy)
    cli = [sys.executable, "-c", "import sys; from ops.cli import main; sys.exit(main())",
           "calls", "list", "--since", since.isoformat(), "--json"]
    env["PYTHONPATH"] = str(REPO)
    walls = []
    for _ in range(CLI_RUNS):
        t = time.perf_counter()
        done = subprocess.run(cli, env=env, cwd=REPO, capture_output=True, text=True,
                              check=False)
        walls.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise SystemExit(f"verifyline calls list failed: {done.stderr.strip()}")
    return len(rows), took, (statistics.median(walls), max(walls))


def add_history_of_one(store: Store, calls: int) -> None:
    """``calls`` past calls over the last year, all from one caller about officer 0: what a
    busy officer and a number that calls often (a switchboard's) accumulate."""
    with store.engine.begin() as conn:
        first = int(conn.execute(select(func.max(Call.id))).scalar() or 0) + 1
        start = now() - timedelta(days=365)
        step = timedelta(days=364) / max(1, calls)
        encounters, rows = [], []
        for i in range(first, first + calls):
            at = start + step * (i - first)
            encounters.append({"id": i, "reference": f"9{i:010d}", "caller_number": BUSY_CALLER,
                               "opened_at": at, "kind": "call", "officer_id": 1})
            rows.append({"id": i, "channel_id": f"busy-{i}", "reference": f"9{i:010d}",
                         "encounter_id": i, "caller_number": BUSY_CALLER,
                         "digits_entered": filling.warrant(0), "roster_result": "on_duty",
                         "started_at": at, "ended_at": at + timedelta(seconds=60),
                         "end_reason": "caller_hangup", "path": "ari", "flags": "",
                         "language": "en", "state": "ended"})
        conn.execute(insert(Encounter.__table__), encounters)
        conn.execute(insert(Call.__table__), rows)
    filling.analyze(store)


def bench_history_of_one(store: Store, settings: Settings, runs: int) -> tuple[float, float]:
    """p50/p99 of the busy caller looking the busy officer up."""
    samples = [timed(lambda c=f"busy-lookup-{i}": services.check_number(
        store, settings, filling.warrant(0), BUSY_CALLER, c, now())) for i in range(runs + 20)]
    return percentile(samples[20:], 0.5), percentile(samples[20:], 0.99)


def newest_migration(url: str) -> float:
    """Downgrade the newest migration, then time upgrading to it again."""
    cfg = alembic_config(url)
    command.downgrade(cfg, "-1")
    return timed(lambda: command.upgrade(cfg, "head"))


def bench(url: str, home: Path, officers: int, calls: int, lookups: int) -> Figures:
    f = Figures(officers, calls)
    home.mkdir(parents=True, exist_ok=True)
    settings = settings_for(home, url)
    store = Store(url)
    try:
        f.upgrade_from_base = timed(store.migrate)
        print(f"  {officers:,} officers, {calls:,} calls: filling ...", flush=True)
        f.fill = timed(lambda: fill(store, officers, calls))
        f.noop_upgrade = statistics.median(timed(store.migrate) for _ in range(3))
        every, known = bench_lookups(store, settings, officers, lookups)
        f.lookups = percentile(every, 0.5), percentile(every, 0.99)
        f.lookups_known = percentile(known, 0.5), percentile(known, 0.99)
        starts = [bench_startup(store, settings) for _ in range(STARTS)]
        f.prepare, f.open_calls, f.roster_copy = (
            statistics.median(s[k] for s in starts) for k in range(3))
        f.roster_cards = starts[-1][3]
        f.since_rows, f.since_query, f.since_cli = bench_since(store, settings)
        add_history_of_one(store, BUSY_CALLS)
        f.lookups_busy = bench_history_of_one(store, settings, min(lookups, 1_000))
        store.dispose()
        f.newest_migration = newest_migration(url)
    finally:
        store.dispose()
    return f


def report(label: str, small: Figures, full: Figures, lookups: int) -> bool:
    rows: list[tuple[str, str, str]] = [
        ("officers / calls", f"{small.officers:,} / {small.calls:,}",
         f"{full.officers:,} / {full.calls:,}"),
        ("filled in (s)", f"{small.fill:.1f}", f"{full.fill:.1f}"),
        (f"lookup p50 / p99 ms ({lookups:,})",
         f"{ms(small.lookups[0])} / {ms(small.lookups[1])}",
         f"{ms(full.lookups[0])} / {ms(full.lookups[1])}"),
        ("  known numbers only p50 / p99 ms",
         f"{ms(small.lookups_known[0])} / {ms(small.lookups_known[1])}",
         f"{ms(full.lookups_known[0])} / {ms(full.lookups_known[1])}"),
        (f"  {BUSY_CALLS:,} calls of 1 caller on 1 officer",
         f"{ms(small.lookups_busy[0])} / {ms(small.lookups_busy[1])}",
         f"{ms(full.lookups_busy[0])} / {ms(full.lookups_busy[1])}"),
        (f"start-up (median of {STARTS}): prepare ms", ms(small.prepare), ms(full.prepare)),
        ("start-up: open calls (resync) ms", ms(small.open_calls), ms(full.open_calls)),
        ("start-up: roster copy load ms", ms(small.roster_copy), ms(full.roster_copy)),
        ("  officers in the copy", f"{small.roster_cards:,}", f"{full.roster_cards:,}"),
        ("calls list --since 1 h: rows", f"{small.since_rows:,}", f"{full.since_rows:,}"),
        ("  the query alone ms", ms(small.since_query), ms(full.since_query)),
        (f"  the CLI, median / max of {CLI_RUNS} ms",
         f"{ms(small.since_cli[0])} / {ms(small.since_cli[1])}",
         f"{ms(full.since_cli[0])} / {ms(full.since_cli[1])}"),
        ("upgrade from base (empty db) ms", ms(small.upgrade_from_base),
         ms(full.upgrade_from_base)),
        ("no-op upgrade ms", ms(small.noop_upgrade), ms(full.noop_upgrade)),
        ("newest migration on this store ms", ms(small.newest_migration),
         ms(full.newest_migration)),
    ]
    print(f"\n{label}")
    print(f"{'':<38} {'small store':>20} {'full store':>22}")
    for name, a, b in rows:
        print(f"{name:<38} {a:>20} {b:>22}")
    met = full.lookups[1] * 1000 <= LOOKUP_P99_MS
    print(f"lookup p99 <= {LOOKUP_P99_MS:g} ms on the full store: {'met' if met else 'NOT met'}")
    return met


@contextmanager
def database(kind: str, tmp: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, empty database URLs by name."""
    if kind == "sqlite":
        yield lambda name: f"sqlite:///{tmp}/{name}.db"
        return
    cluster = PgCluster.create()
    try:
        yield cluster.create_database
    finally:
        cluster.destroy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--officers", type=int, default=20_000)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--lookups", type=int, default=2_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as new_url:
        print(f"{args.db}: the small store", flush=True)
        small = bench(new_url("small"), Path(tmp) / "home-small", SMALL_OFFICERS, SMALL_CALLS,
                      args.lookups)
        print(f"{args.db}: the full store", flush=True)
        full = bench(new_url("full"), Path(tmp) / "home-full", args.officers, args.calls,
                     args.lookups)
        ok = report(f"{args.db}: how cost grows with the work", small, full, args.lookups)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
