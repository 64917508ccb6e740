"""What the journal writer costs the app per call: the CPU the writer thread spends applying
journal entries to the database (ivr.journal.DurableLog), on SQLite and on PostgreSQL.

It builds the entries of N full calls with ivr.logops' builders, the way ari_app/runtime.py
and ari_app/service.py write them (open; greeting; seven keys; roster checked; read-back;
confirmed; reference; queued; on hold; desk offered; desk ringing and the desk's state;
answered; whisper; bridged; recording; ended; the desk's state again: 25 entries a call),
interleaved by time as a line taking ``--rate`` calls a second would write them, so each
chunk holds entries of many calls. Then it drives the writer's two steps itself, in this
thread: journal ``--chunk`` entries (what the writer found queued at once), apply them; and it
times only the apply (time.thread_time: this thread's CPU, which for PostgreSQL is the client
side only, the server's work is not counted; and the wall clock).

    .venv/bin/python benchmarks/journal_apply.py --calls 300 --chunk 1 20 200
    .venv/bin/python benchmarks/journal_apply.py --db sqlite --calls 300 --chunk 20

The machine is shared: repeat a figure (``--repeat``) before believing it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from ivr import calllog, logops
from ivr.entities import CallData
from ivr.journal import DurableLog, Journal
from ivr.models import Call, CallEvent, EndReason, Officer, OfficerStatus, RosterResult
from ivr.store import Store
from tests.pgcluster import PgCluster

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
DESKS = 400  # enough that a desk is never wanted by two calls at once at 30 calls/s


def one_call(n: int, start: datetime, officer_id: int) -> list[tuple[datetime, logops.Operation]]:
    """The journal entries of one verified call, with the time each is written."""
    d = CallData(channel_id=f"bench-{n}", caller_number=f"07700{n:06d}",
                 reference=f"{100000 + n}", started_at=start)
    desk = f"load{n % DESKS}"
    out: list[tuple[datetime, logops.Operation]] = []

    def at(seconds: float) -> datetime:
        return start + timedelta(seconds=seconds)

    def save(seconds: float, kind: str, detail: dict[str, object]) -> None:
        out.append((at(seconds), logops.save_entry(d, kind, detail, at(seconds))))

    out.append((start, logops.open_entry(d, d.reference)))
    d.state = "greeting"
    save(0.1, "prompt", {"prompt": "greeting"})
    d.state = "collecting"
    for i, key in enumerate("123456#"):
        if key != "#":
            d.digits += key
        save(2.0 + 0.3 * i, "key", {"digit": key})
    d.roster_result, d.officer_id, d.officer_label = (
        RosterResult.ON_DUTY, officer_id, "PC Bench")
    save(4.2, "roster_checked", {"result": "on_duty"})
    d.state = "read_back"
    save(4.3, "prompt", {"prompt": "read_back"})
    save(6.0, "confirmed", {"digit": "1"})
    save(6.1, "prompt", {"prompt": "reference"})
    d.state, d.queued_at, d.hold_bridge_id = "connecting", at(9.0), f"{d.channel_id}-hold"
    save(9.0, "queued", {"emergency": False})
    save(9.0, "on_hold", {"bridge": d.hold_bridge_id})
    d.desk, d.desk_channel_id, d.attempts = desk, f"{d.channel_id}-desk1", 1
    save(9.01, "desk_offered", {"desk": desk})
    save(9.02, "desk_ringing", {"desk": desk, "channel": d.desk_channel_id})
    out.append((at(9.02), logops.desk_state_entry(desk, "ringing", at(9.02))))
    d.state, d.answered_desk, d.answered_at = "whispering", desk, at(10.0)
    save(10.0, "answered", {"desk": desk})
    out.append((at(10.0), logops.desk_state_entry(desk, "talking", at(10.0))))
    save(10.1, "whisper", {"desk": desk})
    d.state, d.bridge_id = "bridged", f"{d.channel_id}-bridge"
    save(12.0, "bridged", {"bridge": d.bridge_id})
    d.recording = f"{d.channel_id}-rec"
    save(12.0, "recording", {"name": d.recording})
    d.state, d.ended_at, d.end_reason = "ended", at(21.5), EndReason.CALLER_HANGUP
    save(21.5, "ended", {"reason": "caller_hangup"})
    out.append((at(21.5), logops.desk_state_entry(desk, "free", at(21.5))))
    return out


def line_of_calls(calls: int, rate: float, officer_id: int) -> list[logops.Operation]:
    """Every call's entries, in the order a line taking ``rate`` calls a second writes them."""
    timed = [(when, n, i, op) for n in range(calls)
             for i, (when, op) in enumerate(
                 one_call(n, T0 + timedelta(seconds=n / rate), officer_id))]
    timed.sort(key=lambda t: (t[0], t[1], t[2]))
    return [op for *_, op in timed]


def prepare(store: Store) -> int:
    store.migrate()
    with store.session() as s:
        calllog.ensure_desks(s, [f"load{i}" for i in range(DESKS)])
        officer = Officer(warrant_number="123456", name="Bench", rank="PC",
                          status=OfficerStatus.ACTIVE)
        s.add(officer)
        s.flush()
        return officer.id


@dataclasses.dataclass
class Figures:
    cpu: float  # seconds of this thread's CPU in apply
    wall: float
    entries: int
    calls: int


class _Refusals(logging.Handler):
    """A chunk the database refused is applied again one by one: the figure would be that
    path's, so the benchmark stops instead."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            raise SystemExit(f"the journal warned: {record.getMessage()}")


def run(url: str, home: Path, ops: list[logops.Operation], calls: int, chunk: int,
        officer_id: int) -> Figures:
    store = Store(url)
    log = DurableLog(Journal(home / "journal.log"), store, logops.CODEC)
    cpu = wall = 0.0
    try:
        for i in range(0, len(ops), chunk):
            log.journal.append([logops.CODEC.encode(op) for op in ops[i:i + chunk]])
            c0, w0 = time.thread_time(), time.perf_counter()
            log._apply()  # the writer thread's step, here in this thread to time it alone
            cpu += time.thread_time() - c0
            wall += time.perf_counter() - w0
            if log.journal.entries:
                raise SystemExit(f"entries left unapplied (database down?): "
                                 f"{len(log.journal.entries)}")
        with store.session() as s:
            rows = s.scalar(select(func.count(Call.id))) or 0
            events = s.scalar(select(func.count(CallEvent.id))) or 0
            ended = s.scalar(select(func.count(Call.id)).where(Call.ended_at.is_not(None))) or 0
        saves = sum(isinstance(op, logops.SaveCall) for op in ops)
        if (rows, ended, events) != (calls, calls, saves + calls):
            raise SystemExit(f"wrong rows: {rows} calls, {ended} ended, {events} events "
                             f"(expected {calls}, {calls}, {saves + calls})")
        if (home / "rejected.jsonl").exists():
            raise SystemExit("entries were rejected: see rejected.jsonl")
    finally:
        log.journal.close()
        store.dispose()
    return Figures(cpu, wall, len(ops), calls)


@contextmanager
def databases(which: list[str], tmp: Path) -> Iterator[Iterator[tuple[str, str]]]:
    cluster = PgCluster.create() if "postgresql" in which else None
    counter = iter(range(1_000_000))

    def urls() -> Iterator[tuple[str, str]]:
        while True:
            n = next(counter)
            for db in which:
                if db == "sqlite":
                    yield db, f"sqlite:///{tmp / f'bench{n}.db'}"
                else:
                    assert cluster is not None
                    yield db, cluster.create_database(f"bench{n}")

    try:
        yield urls()
    finally:
        if cluster is not None:
            cluster.destroy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--rate", type=float, default=30.0, help="calls a second (interleaving)")
    ap.add_argument("--chunk", type=int, nargs="+", default=[1, 20, 200],
                    help="entries journaled and applied at once (200: a replay's chunk)")
    ap.add_argument("--db", choices=["sqlite", "postgresql"], nargs="+",
                    default=["sqlite", "postgresql"])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("ivr.journal").addHandler(_Refusals())
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp, \
            databases(args.db, Path(tmp)) as urls:
        print(f"{args.calls} calls at {args.rate:g}/s interleaved; CPU of the applying thread")
        print(f"{'db':<11} {'chunk':>5} {'entries':>7} {'CPU ms/call':>12} "
              f"{'wall ms/call':>12} {'entries/s':>10}")
        for chunk in args.chunk:
            for db in args.db:
                runs = []
                for r in range(args.repeat):
                    kind, url = next(urls)
                    while kind != db:
                        kind, url = next(urls)
                    officer = prepare(Store(url))
                    ops = line_of_calls(args.calls, args.rate, officer)
                    home = Path(tmp) / f"{db}-{chunk}-{r}"
                    runs.append(run(url, home, ops, args.calls, chunk, officer))
                for f in runs:
                    print(f"{db:<11} {chunk:>5} {f.entries:>7} {1000 * f.cpu / f.calls:>12.2f} "
                          f"{1000 * f.wall / f.calls:>12.2f} {f.entries / f.wall:>10.0f}")
                cpus = [1000 * f.cpu / f.calls for f in runs]
                print(f"{db:<11} {chunk:>5} median CPU ms/call {statistics.median(cpus):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
