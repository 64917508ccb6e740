"""Load test: many concurrent verification calls through real Asterisk and the real ARI app.

    .venv/bin/python benchmarks/load.py [--calls N | --seconds S] [--rate R] [--hold H]
                                        [--desks D] [--recording on|off] [--json FILE]

Small run (what `make test` runs, through tests/e2e/test_load.py):

    .venv/bin/python benchmarks/load.py --calls 30 --rate 3

Full load from the issue (35 calls/s for a minute, 2100 calls; about 400 conversations held at
once, since a caller talks about --hold + 2 s after the bridge; 806 desks by default):

    .venv/bin/python benchmarks/load.py --rate 35 --seconds 60 --hold 9.5

What it does:

1. starts a lab of its own (a temporary ``VERIFYLINE_HOME``, SIP 65060, ARI 65088, console
   65080, RTP 61000-64999 by default: never the test suite's lab), with D desk endpoints
   ``load1``... ``loadD``, no wrap-up, no auto-pause, no rate flag, and imports
   ``ivr/demo_roster.csv``;
2. one sipp process registers every desk (``benchmarks/sipp/desks_register.xml`` with an
   injection file) and answers every call offered to any of them
   (``desks_answer.xml``: rings 300 ms, answers, presses 1 in the whisper by SIP INFO, echoes
   RTP, waits for the BYE); the script waits until ARI shows every desk online;
3. one sipp process on 127.0.0.2 (the public trunk) places the calls at R calls/s
   (``caller.xml``): keys ``123456#1`` as RFC 4733 events, waits for the reference read-out,
   talks H seconds (G.711 audio, echoed by the desk) and hangs up;
4. once a second it samples CPU (100 % = one core), RSS and open files of Asterisk, the app
   and both sipp processes, the whole machine's CPU, and the number of Asterisk channels
   (``GET /ari/channels``);
5. when the callers are done and every call is logged as ended (or ``--drain`` seconds have
   passed), it reads the call log (``verifyline calls list --json``) and each call's timeline
   and prints the figures; then it always stops its lab (``lab.down``).

Figures:

- attempted: calls sipp placed; failed: attempted calls that did not both complete in sipp
  (INVITE to 200 OK to the BYE's 200 OK, no unexpected message) and reach a supervisor
  (a ``bridged`` event in their timeline); bridged; logged: calls with exactly one row in the
  call log (matched by the caller's number); unlogged: attempted minus logged; duplicate rows.
- setup latency, percentiles p50/p90/p99/max:
  ``SIP answer`` INVITE to 200 OK (sipp's response time); ``queued -> desk ringing`` the app
  finding a free desk after the caller's last key; ``queued -> bridged`` what the caller waits
  after confirming, which includes the fixed reference read-out (about 8 s, recording notice
  included); ``bridge delay beyond the prompt`` the same minus the length of that read-out
  (from the prompt files): the part that grows with load; ``started -> answered`` the whole
  setup from the call log (greeting barge-in, keys, read-out, bridge); and the talk time
  (bridged -> ended, about --hold + 2 s unloaded: the caller hangs up on a fixed schedule, so
  a late bridge shortens it; "bridged late" counts calls that talked less than --hold / 2).
- peak concurrency: calls in progress and conversations (bridged) from the call log, and the
  peak number of Asterisk channels sampled.
- CPU and memory per process over the load window (from the first call until every call is
  logged as ended): idle (measured for a few seconds before the first call), average and peak
  CPU %, CPU seconds, CPU ms per call beyond the idle rate and the projection to ``--project``
  calls/s (idle + ms per call x rate: linear, for the same call shape, so costs that grow with
  the number of desks or of calls waiting are not in it), RSS idle and peak, open files; then
  the app's restarts, warnings and errors during the calls, and Asterisk's task-processor
  queue high-water marks (reset just before the first call: registering many desks alone
  fills the device-state queue; queues backing up show Asterisk saturating).

Exit status 0 only if every requested call was attempted, bridged and logged exactly once
(so the small run can gate ``make test``); 1 otherwise; 2 if the lab could not be set up.

The machine is shared: another lab or test suite running at the same time takes CPU from this
one, which the machine CPU figure shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ivr import calllog, prompts  # noqa: E402
from ivr.config import Settings  # noqa: E402
from ivr.store import Store  # noqa: E402
from ops import lab  # noqa: E402

SCENARIOS = Path(__file__).resolve().parent / "sipp"
# callers' numbers are this prefix + sipp's call number: unique to the run, so a database shared
# with earlier runs (--db-url) is still read right
CALLER_PREFIX = f"079{random.randrange(100000):05d}"
DEMO_ROSTER = REPO / "ivr" / "demo_roster.csv"
SIPP_DTMF_MS = 400  # sipp's play_dtmf: one digit about every 400 ms
IDLE_BASELINE_S = 4.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    calls: int
    rate: float
    hold: float
    desks: int
    digits: str
    recording: bool
    sip_port: int
    ari_port: int
    rtp_ports: str
    drain: float
    project: float
    keep: bool
    json_path: Path | None
    db_url: str | None
    trace: bool = False
    kill_app_at: float | None = None  # seconds into the calls: kill -9 the app (a fault)

    @property
    def caller_port(self) -> int:
        return self.sip_port + 10

    @property
    def desk_port(self) -> int:
        return self.sip_port + 11

    @property
    def console_port(self) -> int:
        # the lab starts a console too: never the default 8080, where a developer's lab or
        # another benchmark's may be
        return self.sip_port + 20

    @property
    def overflow_port(self) -> int:
        return self.sip_port + 39  # nothing listens: the control room is never rung here

    @property
    def caller_media_port(self) -> int:
        return self.sip_port + 100

    @property
    def desk_media_port(self) -> int:
        return self.sip_port + 200


def parse_args(argv: Sequence[str] | None = None) -> Options:
    ap = argparse.ArgumentParser(
        description="Run N concurrent verification calls at a given rate and print the "
                    "figures (see the module docstring).")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--calls", type=int, help="calls to place (default 30)")
    size.add_argument("--seconds", type=float,
                      help="place calls for this long at --rate (calls = rate x seconds)")
    ap.add_argument("--rate", type=float, default=3.0, help="calls per second (default 3)")
    ap.add_argument("--hold", type=float, default=5.0,
                    help="seconds each caller talks once bridged (default 5)")
    ap.add_argument("--desks", type=int, default=0,
                    help="desk phones (default: enough for rate x call length, at most calls)")
    ap.add_argument("--digits", default="123456#1",
                    help="keys the caller sends (default 123456#1: on duty, confirmed)")
    ap.add_argument("--recording", choices=("on", "off"), default="on",
                    help="VERIFYLINE_RECORDING for the run (default on, the product default)")
    ap.add_argument("--sip-port", type=int, default=65060,
                    help="the lab's SIP port; sipp uses +10, +11, +100, +200 (default 65060)")
    ap.add_argument("--ari-port", type=int, default=65088, help="the lab's ARI port")
    ap.add_argument("--rtp-ports", default="61000-64999", help="the lab's RTP port range")
    ap.add_argument("--drain", type=float, default=60.0,
                    help="seconds to wait after the last call for the log to show every call "
                         "ended (default 60)")
    ap.add_argument("--project", type=float, default=35.0,
                    help="project CPU per call to this many calls/s (default 35)")
    ap.add_argument("--db-url", help="VERIFYLINE_DB_URL (default: SQLite in the temp home); "
                    "the run replaces the roster in that database")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary home (logs, sipp files, database) afterwards")
    ap.add_argument("--trace", action="store_true",
                    help="sipp writes every SIP message to <home>/sipp/*.msg.log (with --keep)")
    ap.add_argument("--json", type=Path, dest="json_path",
                    help="also write the figures to this file as JSON")
    ap.add_argument("--kill-app-at", type=float, metavar="SECONDS",
                    help="a fault under load: kill -9 the app this many seconds after the "
                         "first call (its supervisor restarts it; every call must still be "
                         "bridged and logged once)")
    args = ap.parse_args(argv)
    if args.kill_app_at is not None and args.kill_app_at < 0:
        ap.error("--kill-app-at must be 0 or more")
    rate = float(args.rate)
    if rate <= 0:
        ap.error("--rate must be more than 0")
    calls = int(args.calls) if args.calls is not None else (
        math.ceil(rate * args.seconds) if args.seconds is not None else 30)
    if calls < 1:
        ap.error("at least one call")
    hold = float(args.hold)
    desks = int(args.desks) or default_desks(calls, rate, hold, args.recording == "on")
    return Options(calls=calls, rate=rate, hold=hold, desks=desks, digits=args.digits,
                   recording=args.recording == "on", sip_port=args.sip_port,
                   ari_port=args.ari_port, rtp_ports=args.rtp_ports, drain=args.drain,
                   project=args.project, keep=args.keep, json_path=args.json_path,
                   db_url=args.db_url, trace=args.trace, kill_app_at=args.kill_app_at)


# --- prompt lengths -------------------------------------------------------------------------


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return float(w.getnframes() / w.getframerate())


def media_seconds(media: Iterable[str]) -> float:
    """Length of a playback logged as 'en/connecting+en/recorded+...' (catalogue prompts)."""
    total = 0.0
    for name in media:
        lang, _, prompt_id = name.partition("/")
        total += wav_seconds(prompts.path(lang, prompt_id))
    return total


def announce_seconds(recording: bool) -> float:
    """The longest reference read-out a caller hears after confirming (six digits)."""
    lang = prompts.DEFAULT_LANGUAGE
    longest_digit = max(wav_seconds(prompts.path(lang, f"digit_{d}")) for d in range(10))
    parts = ["connecting", *(["recorded"] if recording else []), "reference"]
    return sum(wav_seconds(prompts.path(lang, p)) for p in parts) + 6 * longest_digit


def default_desks(calls: int, rate: float, hold: float, recording: bool) -> int:
    """A desk is busy from the ring (when the caller confirms) until the caller hangs up:
    the reference read-out plus the talk; 20 % spare and a few more, never more than calls."""
    busy = announce_seconds(recording) + 1.0 + hold
    return max(1, min(calls, math.ceil(rate * busy * 1.2) + 2))


def dtmf_ms(digits: str) -> int:
    return 700 + SIPP_DTMF_MS * len(digits)


# --- processes and sampling -----------------------------------------------------------------


@dataclass
class ProcSample:
    ticks: int  # utime + stime, all threads
    rss_kb: int
    fds: int


def proc_sample(pid: int | None) -> ProcSample | None:
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()
    return ProcSample(ticks=int(rest[11]) + int(rest[12]), rss_kb=int(statm[1]) * PAGE_KB,
                      fds=fds)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class Sample:
    at: float
    procs: dict[str, ProcSample | None]
    pids: dict[str, int | None]
    machine: tuple[int, int]
    channels: int | None


class Sampler(threading.Thread):
    """Once a second: every watched process, the machine, Asterisk's channel count."""

    def __init__(self, pids: Mapping[str, Callable[[], int | None]], ari: httpx.Client
                 ) -> None:
        super().__init__(daemon=True)
        self.pid_sources = dict(pids)  # role -> callable returning the current PID
        self.ari = ari
        self.samples: list[Sample] = []
        self.stopping = threading.Event()

    def sample(self) -> Sample:
        pids: dict[str, int | None] = {role: get() for role, get in self.pid_sources.items()}
        procs = {role: proc_sample(pid) for role, pid in pids.items()}
        try:
            channels: int | None = len(self.ari.get("/channels").json())
        except (httpx.HTTPError, ValueError):
            channels = None
        return Sample(time.monotonic(), procs, pids, machine_ticks(), channels)

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            self.samples.append(self.sample())
            self.stopping.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)


@dataclass
class Usage:
    cpu_seconds: float = 0.0
    span: float = 0.0
    avg_pct: float = 0.0
    peak_pct: float = 0.0
    peak_rss_mib: float = 0.0
    end_rss_mib: float = 0.0
    peak_fds: int = 0
    pids: list[int] = field(default_factory=list)


def window_of(samples: Sequence[Sample], t0: float, t1: float, slack: float) -> list[Sample]:
    return [s for s in samples if t0 - slack <= s.at <= t1 + slack]


def usage(samples: Sequence[Sample], role: str, t0: float, t1: float, slack: float = 1.0
          ) -> Usage:
    """CPU and memory of one role between t0 and t1 (per-sample deltas, across restarts)."""
    window = window_of(samples, t0, t1, slack)
    result = Usage()
    for prev, cur in itertools.pairwise(window):
        a, b = prev.procs.get(role), cur.procs.get(role)
        if a is None or b is None or prev.pids.get(role) != cur.pids.get(role):
            continue
        seconds = (b.ticks - a.ticks) / CLK_TCK
        result.cpu_seconds += seconds
        result.peak_pct = max(result.peak_pct, 100 * seconds / max(cur.at - prev.at, 1e-3))
    result.span = (window[-1].at - window[0].at) if len(window) > 1 else 0.0
    result.avg_pct = 100 * result.cpu_seconds / result.span if result.span > 0 else 0.0
    live = [p for s in window if (p := s.procs.get(role)) is not None]
    if live:
        result.peak_rss_mib = max(p.rss_kb for p in live) / 1024
        result.end_rss_mib = live[-1].rss_kb / 1024
        result.peak_fds = max(p.fds for p in live)
    result.pids = sorted({pid for s in window if (pid := s.pids.get(role)) is not None})
    return result


def rss_by_minute(samples: Sequence[Sample], role: str, t0: float, t1: float) -> list[float]:
    """The role's largest RSS (MiB) in each whole minute from t0: flat over a soak, or not."""
    minutes: dict[int, float] = {}
    for s in window_of(samples, t0, t1, 0.0):
        p = s.procs.get(role)
        if p is not None:
            m = int((s.at - t0) // 60)
            minutes[m] = max(minutes.get(m, 0.0), p.rss_kb / 1024)
    whole = int((t1 - t0) // 60)
    return [round(minutes[m], 1) for m in sorted(minutes) if m < whole]


def machine_usage(samples: Sequence[Sample], t0: float, t1: float) -> tuple[float, float]:
    """(average, peak) CPU % of the whole machine, 100 % per core."""
    window = window_of(samples, t0, t1, 1.0)
    cores = os.cpu_count() or 1
    peaks = []
    for prev, cur in itertools.pairwise(window):
        busy = cur.machine[0] - prev.machine[0]
        total = cur.machine[1] - prev.machine[1]
        if total > 0:
            peaks.append(100 * cores * busy / total)
    if len(window) < 2:
        return 0.0, 0.0
    busy = window[-1].machine[0] - window[0].machine[0]
    total = window[-1].machine[1] - window[0].machine[1]
    return (100 * cores * busy / total if total else 0.0), max(peaks, default=0.0)


# --- sipp -----------------------------------------------------------------------------------


def kill(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a sipp process this script started (by its PID, never by name)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_desks(opts: Options, settings: Settings, work: Path, desks: Sequence[str]
                ) -> subprocess.Popen[bytes]:
    inf = work / "desks.csv"
    inf.write_text("SEQUENTIAL\n" + "".join(f"{d};{lab.desk_password(settings, d)}\n"
                                            for d in desks))
    argv = ["sipp", f"127.0.0.1:{opts.sip_port}",
            "-sf", str(SCENARIOS / "desks_register.xml"),
            "-oocsf", str(SCENARIOS / "desks_answer.xml"),
            "-inf", str(inf), "-i", "127.0.0.1", "-p", str(opts.desk_port),
            "-mi", "127.0.0.1", "-mp", str(opts.desk_media_port), "-rtp_echo",
            "-r", "100", "-m", str(len(desks)), "-l", str(len(desks)), "-nostdin",
            "-trace_err", "-error_file", str(work / "desks.errors.log"),
            # when each INVITE came and each '1' went, by caller number (compare.py)
            "-trace_logs", "-log_file", str(work / "desks.log")]
    if opts.trace:
        argv += ["-trace_msg", "-message_file", str(work / "desks.msg.log")]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, cwd=work)


def start_callers(opts: Options, settings: Settings, work: Path, call_seconds: float,
                  number: str | None = None, prefix: str = CALLER_PREFIX
                  ) -> subprocess.Popen[bytes]:
    """The callers' sipp: ``opts.calls`` calls at ``opts.rate`` to ``number`` (default the
    line's), from numbers ``prefix`` + sipp's call number."""
    timeout = math.ceil(opts.calls / opts.rate + call_seconds + 120)
    argv = ["sipp", f"127.0.0.1:{opts.sip_port}", "-sf", str(SCENARIOS / "caller.xml"),
            "-s", number or settings.line_number,
            "-i", "127.0.0.2", "-p", str(opts.caller_port),
            "-mi", "127.0.0.2", "-mp", str(opts.caller_media_port),
            "-key", "caller_prefix", prefix, "-key", "digits", opts.digits,
            "-key", "dtmf_ms", str(dtmf_ms(opts.digits)),
            "-key", "announce_ms", str(round(1000 * (announce_seconds(opts.recording) + 1.0))),
            "-key", "hold_ms", str(round(1000 * opts.hold)),
            "-r", f"{opts.rate:g}", "-m", str(opts.calls), "-l", str(opts.calls),
            "-nostdin", "-timeout", str(timeout), "-timeout_error",
            "-trace_stat", "-stf", str(work / "callers.stat.csv"), "-fd", "1",
            "-trace_rtt", "-rtt_freq", "1",
            "-trace_logs", "-log_file", str(work / "callers.log"),
            "-trace_err", "-error_file", str(work / "callers.errors.log")]
    if opts.trace:
        argv += ["-trace_msg", "-message_file", str(work / "callers.msg.log")]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, cwd=work)


@dataclass
class SippResult:
    created: int = 0
    successful: int = 0
    failed: int = 0
    ok_numbers: set[str] = field(default_factory=set)
    answer_ms: list[float] = field(default_factory=list)
    errors: str = ""


def read_sipp(work: Path, prefix: str = CALLER_PREFIX) -> SippResult:
    result = SippResult()
    stat = work / "callers.stat.csv"
    if stat.exists():
        lines = [ln for ln in stat.read_text(errors="replace").splitlines() if ln.strip()]
        if len(lines) >= 2:
            head = lines[0].rstrip(";").split(";")
            last = dict(zip(head, lines[-1].rstrip(";").split(";"), strict=False))
            result.created = int(last.get("TotalCallCreated", "0") or 0)
            result.successful = int(last.get("SuccessfulCall(C)", "0") or 0)
            result.failed = int(last.get("FailedCall(C)", "0") or 0)
    log = work / "callers.log"
    if log.exists():
        result.ok_numbers = {prefix + m for m in
                             re.findall(r"ok (\d+)", log.read_text(errors="replace"))}
    for rtt in work.glob("*_rtt.csv"):
        for line in rtt.read_text(errors="replace").splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                try:
                    result.answer_ms.append(float(parts[1]))
                except ValueError:
                    continue
    errors = work / "callers.errors.log"
    if errors.exists():
        result.errors = errors.read_text(errors="replace")
    return result


# --- the lab --------------------------------------------------------------------------------


def lab_env(opts: Options, home: Path, desks: Sequence[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("VERIFYLINE_") or k == "VERIFYLINE_CACHE"}
    env.update({
        "VERIFYLINE_HOME": str(home),
        "VERIFYLINE_SIP_PORT": str(opts.sip_port),
        "VERIFYLINE_ARI_PORT": str(opts.ari_port),
        "VERIFYLINE_CONSOLE_PORT": str(opts.console_port),
        # no /metrics: a developer's lab may hold the default port (and none is read here)
        "VERIFYLINE_METRICS_PORT": "0",
        "VERIFYLINE_RTP_PORTS": opts.rtp_ports,
        "VERIFYLINE_DESKS": ",".join(desks),
        "VERIFYLINE_WRAP_UP": "0",
        "VERIFYLINE_AUTO_PAUSE": "0",
        "VERIFYLINE_WHISPER_TIMEOUT": "2",
        "VERIFYLINE_RATE_LIMIT": "10000",
        "VERIFYLINE_QUEUE_MAX_WAIT": "600",
        "VERIFYLINE_RECORDING": "on" if opts.recording else "off",
        "VERIFYLINE_OVERFLOW_URI": f"sip:overflow@127.0.0.1:{opts.overflow_port}",
    })
    if opts.db_url:
        env["VERIFYLINE_DB_URL"] = opts.db_url
    return env


def verifyline(env: Mapping[str, str], *args: str, timeout: float = 300) -> str:
    """The real CLI, as outside tools use it."""
    result = subprocess.run([sys.executable, "-m", "ops", *args], env=dict(env),
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"verifyline {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def wait_registered(ari: httpx.Client, desks: Sequence[str], desk_proc: subprocess.Popen[bytes],
                    timeout: float) -> int:
    wanted = set(desks)
    deadline = time.monotonic() + timeout
    online = 0
    while time.monotonic() < deadline:
        if desk_proc.poll() is not None:
            raise RuntimeError(f"the desks' sipp exited with {desk_proc.returncode}")
        try:
            endpoints = ari.get("/endpoints/PJSIP").json()
            online = sum(1 for e in endpoints
                         if e.get("resource") in wanted and e.get("state") == "online")
        except (httpx.HTTPError, ValueError):
            online = 0
        if online == len(wanted):
            return online
        time.sleep(0.5)
    raise RuntimeError(f"only {online} of {len(wanted)} desks registered after {timeout:.0f} s")


def our_open_calls(store: Store, prefix: str = CALLER_PREFIX) -> int:
    with store.session() as s:
        return sum(1 for c in calllog.list_calls(s)
                   if (c["caller_number"] or "").startswith(prefix)
                   and c["ended_at"] is None)


def taskprocessor_high_water(inst: lab.Instance) -> list[tuple[str, int]]:
    """Asterisk's task processors by the deepest queue each reached (``Max Depth``)."""
    try:
        out = lab.cli(inst, "core show taskprocessors", timeout=30)
    except (lab.LabError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit() and parts[3].isdigit():
            rows.append((parts[0], int(parts[3])))
    return sorted(rows, key=lambda r: -r[1])


def reset_taskprocessors(inst: lab.Instance) -> None:
    """Registering many desks alone fills some queues (device state): start the calls from
    zero so the high-water marks printed are the calls' own."""
    for name, depth in taskprocessor_high_water(inst):
        if depth > 10:
            try:
                lab.cli(inst, f"core reset taskprocessor {name}")
            except (lab.LabError, subprocess.TimeoutExpired):
                continue


def line_count(path: Path) -> int:
    if not path.exists():
        return 0
    return len(path.read_text(errors="replace").splitlines())


def log_lines(path: Path, pattern: str, skip: int = 0) -> list[str]:
    """Lines matching ``pattern``, after the first ``skip`` lines."""
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").splitlines()[skip:]
    return [ln for ln in lines if re.search(pattern, ln)]


# --- figures --------------------------------------------------------------------------------


def parse_at(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {"n": len(ordered), "p50": rank(50), "p90": rank(90), "p99": rank(99),
            "max": ordered[-1]}


def peak_overlap(intervals: Iterable[tuple[datetime, datetime]]) -> int:
    points: list[tuple[datetime, int]] = []
    for start, end in intervals:
        points += [(start, 1), (end, -1)]
    peak = current = 0
    for _at, delta in sorted(points, key=lambda p: (p[0], p[1])):
        current += delta
        peak = max(peak, current)
    return peak


@dataclass
class CallFigures:
    rows: list[dict[str, Any]]
    bridged_numbers: set[str]
    latencies: dict[str, list[float]]
    peak_calls: int
    peak_bridged: int
    end_reasons: dict[str, int]
    results: dict[str, int]


def call_figures(rows: list[dict[str, Any]], store: Store) -> CallFigures:
    latencies: dict[str, list[float]] = {
        "queued -> desk ringing": [], "queued -> bridged": [],
        "bridge delay beyond the prompt": [], "started -> answered": [],
        "talk (bridged -> ended)": []}
    bridged: set[str] = set()
    in_progress: list[tuple[datetime, datetime]] = []
    talking: list[tuple[datetime, datetime]] = []
    end_reasons: dict[str, int] = {}
    results: dict[str, int] = {}
    with store.session() as s:
        for row in rows:
            reason = str(row["end_reason"])
            end_reasons[reason] = end_reasons.get(reason, 0) + 1
            result = str(row["roster_result"])
            results[result] = results.get(result, 0) + 1
            started, answered = parse_at(row["started_at"]), parse_at(row["answered_at"])
            ended = parse_at(row["ended_at"])
            if started and ended:
                in_progress.append((started, ended))
            if started and answered:
                latencies["started -> answered"].append((answered - started).total_seconds())
            events = calllog.timeline(s, int(row["id"]))
            queued_at = ringing_at = bridged_at = None
            announce = None
            for ev in events:
                at = parse_at(ev["at"])
                if ev["kind"] == "queued" and queued_at is None:
                    queued_at = at
                elif (ev["kind"] == "prompt" and queued_at is not None and announce is None
                      and "/connecting" in str(ev.get("prompt", ""))):
                    announce = media_seconds(str(ev["prompt"]).split("+"))
                elif ev["kind"] == "desk_ringing" and ringing_at is None:
                    ringing_at = at
                elif ev["kind"] == "bridged" and bridged_at is None:
                    bridged_at = at
            if row["path"] == "fallback" and row["supervisor"]:
                # the app was down (--kill-app-at): the dialplan's fallback put a desk through
                bridged.add(str(row["caller_number"]))
            if bridged_at is not None and row["supervisor"]:
                bridged.add(str(row["caller_number"]))
                if ended:
                    talking.append((bridged_at, ended))
                    latencies["talk (bridged -> ended)"].append(
                        (ended - bridged_at).total_seconds())
            if queued_at and ringing_at:
                latencies["queued -> desk ringing"].append(
                    (ringing_at - queued_at).total_seconds())
            if queued_at and bridged_at:
                waited = (bridged_at - queued_at).total_seconds()
                latencies["queued -> bridged"].append(waited)
                if announce is not None:
                    latencies["bridge delay beyond the prompt"].append(waited - announce)
    return CallFigures(rows, bridged, latencies, peak_overlap(in_progress),
                       peak_overlap(talking), end_reasons, results)


# --- the run --------------------------------------------------------------------------------


class SetupError(Exception):
    """The lab or its desks could not be set up (exit status 2)."""


@dataclass
class Lab:
    """A benchmark's own running lab: Asterisk, the app, the registered desks and a sampler."""

    home: Path
    work: Path
    desks: list[str]
    env: dict[str, str]
    settings: Settings
    ari: httpx.Client
    inst: lab.Instance | None = None
    store: Store | None = None
    desk_proc: subprocess.Popen[bytes] | None = None
    sampler: Sampler | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    t_idle: float = 0.0  # when the idle baseline began (it ends at the first call)

    def close(self, keep: bool, who: str) -> None:
        """Stop everything this lab started, the lab itself last."""
        if self.sampler is not None and self.sampler.is_alive():
            self.sampler.stop()
        for proc in self.procs.values():
            kill(proc)
        kill(self.desk_proc)
        self.ari.close()
        if self.store is not None:
            self.store.dispose()
        take_down(self.settings, self.home, keep, who)


def new_lab(opts: Options, who: str = "load") -> Lab:
    """A lab of its own for this run (a temporary home and this process's environment); not
    started yet (start_lab)."""
    home = Path(tempfile.mkdtemp(prefix=f"verifyline-{who}-"))
    work = home / "sipp"
    work.mkdir()
    desks = [f"load{i}" for i in range(1, opts.desks + 1)]
    env = lab_env(opts, home, desks)
    os.environ.clear()
    os.environ.update(env)  # lab.up starts the app with this process's environment
    settings = Settings.from_env(env).with_secrets()
    env["VERIFYLINE_ARI_PASSWORD"] = settings.ari_password
    ari = httpx.Client(base_url=f"{settings.ari_url}/ari",
                       auth=(settings.ari_user, settings.ari_password), timeout=10)
    return Lab(home, work, desks, env, settings, ari)


def start_lab(run: Lab, opts: Options, who: str = "load",
              configure: Callable[[Lab], None] | None = None) -> None:
    """Start the lab, import the demo roster, register the desks, start sampling and measure
    the idle baseline. ``configure`` runs once Asterisk and the app are up, before the desks
    register. Raises SetupError; the caller closes the lab in any case (Lab.close)."""
    settings, env, desks, work, ari = run.settings, run.env, run.desks, run.work, run.ari
    t = time.monotonic()
    try:
        run.inst = inst = lab.up(settings)
        verifyline(env, "roster", "import", str(DEMO_ROSTER))
        if configure is not None:
            configure(run)
    except Exception as exc:
        raise SetupError(f"cannot start the lab: {exc}") from exc
    print(f"{who}: lab up in {time.monotonic() - t:.1f} s", flush=True)
    run.store = Store(settings.db_url)

    t = time.monotonic()
    run.desk_proc = start_desks(opts, settings, work, desks)
    try:
        wait_registered(ari, desks, run.desk_proc, timeout=30 + opts.desks / 20)
    except RuntimeError as exc:
        raise SetupError(str(exc)) from exc
    print(f"{who}: {opts.desks} desks registered in {time.monotonic() - t:.1f} s", flush=True)
    run.procs["sipp desks"] = run.desk_proc

    def pid_file(path: Path) -> Callable[[], int | None]:
        return lambda: lab.read_pid(path)  # re-read: the supervisor may restart the app

    def child(role: str) -> Callable[[], int | None]:
        def pid() -> int | None:
            proc = run.procs.get(role)
            return proc.pid if proc is not None and proc.poll() is None else None
        return pid

    run.sampler = Sampler({"asterisk": pid_file(inst.asterisk_pidfile),
                           "app": pid_file(inst.app_pidfile),
                           "sipp callers": child("sipp callers"),
                           "sipp desks": child("sipp desks")}, ari)
    run.sampler.start()
    run.t_idle = time.monotonic()
    time.sleep(IDLE_BASELINE_S)  # what everything costs with no call: subtracted per call


@dataclass
class Placed:
    """One batch of calls placed: when it began, when sipp was done, when the log drained."""

    work: Path
    prefix: str
    t0: float
    t_callers: float
    t1: float
    open_calls: int
    fault: dict[str, Any] | None = None


class AppKiller(threading.Thread):
    """The fault: at ``at`` seconds after ``t0``, kill -9 the app; note when its supervisor's
    new process is connected to Asterisk again."""

    def __init__(self, inst: lab.Instance, t0: float, at: float) -> None:
        super().__init__(daemon=True)
        self.inst, self.t0, self.at = inst, t0, at
        self.report: dict[str, Any] = {"kill_at_s": at}

    def run(self) -> None:
        time.sleep(max(0.0, self.t0 + self.at - time.monotonic()))
        pid = lab.read_pid(self.inst.app_pidfile)
        if pid is None:
            self.report["error"] = "no app PID to kill"
            return
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        self.report.update(killed_pid=pid, killed_at_s=round(killed - self.t0, 2))
        deadline = killed + 30
        while time.monotonic() < deadline:
            new = lab.read_pid(self.inst.app_pidfile)
            if new not in (None, pid) and lab.app_connected(self.inst):
                self.report["connected_again_after_s"] = round(time.monotonic() - killed, 2)
                return
            time.sleep(0.05)
        self.report["error"] = "the app was not connected again within 30 s"


def place_calls(run: Lab, opts: Options, work: Path, number: str | None = None,
                prefix: str = CALLER_PREFIX, who: str = "load",
                still_open: Callable[[], int] | None = None) -> Placed:
    """Place ``opts.calls`` calls at ``opts.rate`` to ``number`` and wait until sipp is done
    and ``still_open()`` (default: this prefix's calls open in the call log) is 0, or
    ``opts.drain`` seconds have passed."""
    assert run.store is not None
    store = run.store
    waiting = still_open or (lambda: our_open_calls(store, prefix))
    work.mkdir(parents=True, exist_ok=True)
    call_seconds = 0.5 + dtmf_ms(opts.digits) / 1000 + announce_seconds(opts.recording) + 1.0 \
        + opts.hold
    t0 = time.monotonic()
    caller_proc = run.procs["sipp callers"] = start_callers(
        opts, run.settings, work, call_seconds, number, prefix)
    killer = None
    if opts.kill_app_at is not None:
        assert run.inst is not None
        killer = AppKiller(run.inst, t0, opts.kill_app_at)
        killer.start()
    print(f"{who}: calling for about {opts.calls / opts.rate + call_seconds:.0f} s ...",
          flush=True)
    deadline = t0 + opts.calls / opts.rate + call_seconds + 180
    while caller_proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    if caller_proc.poll() is None:
        print(f"{who}: the callers' sipp did not finish in time: stopping it", file=sys.stderr)
        kill(caller_proc)
    t_callers = time.monotonic()
    drain_deadline = t_callers + opts.drain
    open_calls = waiting()
    while open_calls and time.monotonic() < drain_deadline:
        time.sleep(1.0)
        open_calls = waiting()
    if killer is not None:
        killer.join(5)
    return Placed(work, prefix, t0, t_callers, time.monotonic(), open_calls,
                  killer.report if killer is not None else None)


def run(opts: Options) -> int:
    announce = announce_seconds(opts.recording)
    call_seconds = 0.5 + dtmf_ms(opts.digits) / 1000 + announce + 1.0 + opts.hold
    lab_run = new_lab(opts)
    print(f"load: {opts.calls} calls at {opts.rate:g}/s, {opts.desks} desks, talk "
          f"{opts.hold:g} s after the bridge (each call about {call_seconds:.1f} s), "
          f"recording {'on' if opts.recording else 'off'}; home {lab_run.home}", flush=True)
    try:
        try:
            start_lab(lab_run, opts)
        except SetupError as exc:
            print(f"load: {exc}", file=sys.stderr)
            return 2
        inst, settings, env = lab_run.inst, lab_run.settings, lab_run.env
        assert inst is not None and lab_run.store is not None and lab_run.sampler is not None
        reset_taskprocessors(inst)
        marks = (line_count(settings.log_dir / "app.log"), line_count(inst.asterisk_log))
        placed = place_calls(lab_run, opts, lab_run.work)
        time.sleep(1.5)
        lab_run.sampler.stop()
        high_water = taskprocessor_high_water(inst)
        kill(lab_run.desk_proc)

        sipp = read_sipp(lab_run.work)
        rows_all: list[dict[str, Any]] = json.loads(verifyline(env, "calls", "list", "--json"))
        rows = [r for r in rows_all if (r["caller_number"] or "").startswith(CALLER_PREFIX)]
        figures = call_figures(rows, lab_run.store)
        report = summarise(opts, settings, sipp, figures, lab_run.sampler.samples,
                           (lab_run.t_idle, placed.t0, placed.t_callers, placed.t1),
                           placed.open_calls, high_water, inst, marks)
        report["fault"] = placed.fault
        print_report(report)
        if opts.json_path is not None:
            opts.json_path.write_text(json.dumps(report, indent=2, default=str))
        ok = (report["attempted"] == opts.calls and report["failed"] == 0
              and report["unlogged"] == 0 and report["duplicate_rows"] == 0
              and report["bridged"] == opts.calls
              and (placed.fault is None or "error" not in placed.fault))
        if not ok and sipp.errors:
            print("\nsipp callers' errors (last 1500 characters):\n" + sipp.errors[-1500:])
        return 0 if ok else 1
    finally:
        lab_run.close(opts.keep, "load")


def take_down(settings: Settings, home: Path, keep: bool, who: str) -> None:
    """Stop a benchmark's own lab; remove its home unless asked to keep it."""
    lab.down(settings)
    if keep:
        print(f"{who}: kept {home} (Asterisk's files: {home / 'asterisk'})")
    else:
        # this run's Asterisk instance folder in the chroot (recordings, astdb) goes too
        shutil.rmtree(lab.instance(settings).outside, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


def summarise(opts: Options, settings: Settings, sipp: SippResult, figures: CallFigures,
              samples: Sequence[Sample], times: tuple[float, float, float, float],
              still_open: int, high_water: list[tuple[str, int]], inst: lab.Instance,
              marks: tuple[int, int]) -> dict[str, Any]:
    """The figures as a JSON-able dict. ``times``: idle baseline start, first call, callers
    done, every call logged as ended (time.monotonic()); ``marks``: lines in the app's and
    Asterisk's logs before the first call (only later lines are counted)."""
    t_idle, t0, t_callers, t1 = times
    numbers = [str(r["caller_number"]) for r in figures.rows]
    logged = len(set(numbers))
    attempted = sipp.created
    good = sipp.ok_numbers & figures.bridged_numbers
    roles = ("asterisk", "app", "sipp callers", "sipp desks")
    resources: dict[str, Any] = {}
    for role in roles:
        u = usage(samples, role, t0, t1)
        idle = usage(samples, role, t_idle, t0, slack=0.0)
        # the calls' own cost: what the process used minus what it uses with no call
        net = max(0.0, u.cpu_seconds - idle.avg_pct / 100 * u.span)
        per_call = 1000 * net / attempted if attempted else 0.0
        resources[role] = {
            "cpu_seconds": round(u.cpu_seconds, 2), "idle_cpu_pct": round(idle.avg_pct, 1),
            "avg_cpu_pct": round(u.avg_pct, 1), "peak_cpu_pct": round(u.peak_pct, 1),
            "cpu_ms_per_call": round(per_call, 1),
            "projected_cpu_pct": round(per_call * opts.project / 10 + idle.avg_pct, 0),
            "idle_rss_mib": round(idle.end_rss_mib, 1),
            "peak_rss_mib": round(u.peak_rss_mib, 1), "end_rss_mib": round(u.end_rss_mib, 1),
            "peak_fds": u.peak_fds, "pids": u.pids,
            "rss_mib_by_minute": rss_by_minute(samples, role, t0, t1),
        }
    avg_machine, peak_machine = machine_usage(samples, t0, t1)
    channels = [s.channels for s in samples if s.channels is not None and t0 <= s.at <= t1]
    app_log = settings.log_dir / "app.log"
    latency = {"SIP answer (INVITE -> 200 OK)":
               percentiles([ms / 1000 for ms in sipp.answer_ms])}
    latency.update({name: percentiles(v) for name, v in figures.latencies.items()})
    return {
        "calls_requested": opts.calls, "rate": opts.rate, "project_rate": opts.project,
        "hold_s": opts.hold, "desks": opts.desks, "recording": opts.recording,
        "attempted": attempted,
        "sipp_successful": sipp.successful, "sipp_failed": sipp.failed,
        "bridged": len(figures.bridged_numbers),
        "fallback": sum(1 for row in figures.rows if row["path"] == "fallback"),
        "failed": attempted - len(good),
        "logged": logged, "unlogged": max(0, attempted - logged),
        "duplicate_rows": len(numbers) - logged,
        "still_open_in_log": still_open,
        "end_reasons": figures.end_reasons, "roster_results": figures.results,
        "calling_s": round(t_callers - t0, 1), "drain_s": round(t1 - t_callers, 1),
        "latency_s": latency,
        # the caller hangs up on a fixed schedule: a late bridge leaves them little talk
        "bridged_late": sum(1 for t in figures.latencies["talk (bridged -> ended)"]
                            if t < opts.hold / 2),
        "peak_calls_in_progress": figures.peak_calls,
        "peak_conversations": figures.peak_bridged,
        "peak_asterisk_channels": max(channels, default=0),
        "resources": resources,
        "machine_cpu_pct": {"avg": round(avg_machine, 1), "peak": round(peak_machine, 1),
                            "cores": os.cpu_count()},
        "app_restarts": max(0, len(resources["app"]["pids"]) - 1),
        "app_warnings": len(log_lines(app_log, r" WARNING ", marks[0])),
        "app_errors": len(log_lines(app_log, r" (ERROR|CRITICAL) ", marks[0])),
        "app_error_examples": log_lines(app_log, r" (ERROR|CRITICAL) ", marks[0])[:5],
        "asterisk_warnings": len(log_lines(inst.asterisk_log, r"WARNING|ERROR", marks[1])),
        "asterisk_taskprocessor_alerts": len(log_lines(
            inst.asterisk_log, r"task processor queue reached", marks[1])),
        "taskprocessor_high_water": high_water[:5],
    }


def fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f} {unit}"


def print_report(r: dict[str, Any]) -> None:
    print()
    print(f"Verify Line load: {r['calls_requested']} calls at {r['rate']:g}/s, "
          f"{r['desks']} desks, talk {r['hold_s']:g} s, recording "
          f"{'on' if r['recording'] else 'off'}")
    print("-" * 78)
    rows = [
        ("calls attempted", r["attempted"]),
        ("  completed in sipp / failed in sipp", f"{r['sipp_successful']} / {r['sipp_failed']}"),
        ("calls bridged to a supervisor", r["bridged"]),
        ("  of them through the dialplan fallback", r["fallback"]),
        ("calls failed (not completed or not bridged)", r["failed"]),
        ("  bridged so late they talked < hold / 2", r["bridged_late"]),
        ("calls logged (exactly one row each)", r["logged"]),
        ("calls unlogged / duplicate rows", f"{r['unlogged']} / {r['duplicate_rows']}"),
        ("rows still open after the drain", r["still_open_in_log"]),
        ("end reasons", ", ".join(f"{k} {v}" for k, v in sorted(r["end_reasons"].items()))),
        ("placing calls took / log drained in",
         f"{r['calling_s']:.1f} s / {r['drain_s']:.1f} s"),
        ("peak calls in progress (call log)", r["peak_calls_in_progress"]),
        ("peak conversations held (call log)", r["peak_conversations"]),
        ("peak Asterisk channels (sampled)", r["peak_asterisk_channels"]),
    ]
    for label, value in rows:
        print(f"{label:<46} {value}")
    print()
    print(f"{'setup latency (and talk)':<34} {'n':>5} {'p50':>9} {'p90':>9} {'p99':>9} "
          f"{'max':>9}")
    for name, p in r["latency_s"].items():
        print(f"{name:<34} {p['n']:>5} " + " ".join(
            f"{'-' if p[k] is None else format(p[k], '.3f') + ' s':>9}"
            for k in ("p50", "p90", "p99", "max")))
    print()
    proj = f"at {r['project_rate']:g}/s"
    print(f"{'process':<13} {'idle CPU':>8} {'avg CPU':>8} {'peak CPU':>8} {'CPU s':>7} "
          f"{'ms/call':>7} {proj:>8} {'RSS idle':>9} {'RSS peak':>9} {'fds':>5}")
    for role, u in r["resources"].items():
        print(f"{role:<13} {u['idle_cpu_pct']:>7.1f}% {u['avg_cpu_pct']:>7.1f}% "
              f"{u['peak_cpu_pct']:>7.1f}% {u['cpu_seconds']:>7.1f} {u['cpu_ms_per_call']:>7.1f} "
              f"{u['projected_cpu_pct']:>7.0f}% {u['idle_rss_mib']:>5.1f} MiB "
              f"{u['peak_rss_mib']:>5.1f} MiB {u['peak_fds']:>5}")
    for role in ("app", "asterisk"):
        by_minute = r["resources"][role]["rss_mib_by_minute"]
        if len(by_minute) >= 2:  # a soak: is memory flat?
            print(f"{role} RSS by minute (MiB, largest in each): "
                  + " ".join(f"{v:.1f}" for v in by_minute)
                  + f"  (last - first {by_minute[-1] - by_minute[0]:+.1f})")
    m = r["machine_cpu_pct"]
    print(f"{'machine':<13} {'':>8} {m['avg']:>7.1f}% {m['peak']:>7.1f}%  "
          f"({m['cores']} cores: {100 * m['cores']} % is the whole machine)")
    print("CPU: 100 % = one core, from the first call until every call is logged as ended;")
    print(f"ms/call: CPU beyond the idle rate, per call placed; {proj}: idle + ms/call x "
          f"{r['project_rate']:g}/s (same call shape, linear)")
    projected = {role: u["projected_cpu_pct"] for role, u in r["resources"].items()}
    line = projected["asterisk"] + projected["app"]
    print(f"projection {proj}: Asterisk {projected['asterisk']:.0f} %, app "
          f"{projected['app']:.0f} % (one Python process: at most about 100 %), line total "
          f"{line:.0f} % + sipp {projected['sipp callers'] + projected['sipp desks']:.0f} % "
          f"of {100 * m['cores']} %")
    print()
    fault = r.get("fault")
    if fault:
        print(f"fault: app killed (kill -9) {fault.get('killed_at_s', '-')} s into the calls; "
              f"connected to Asterisk again {fault.get('connected_again_after_s', '-')} s "
              f"later{'; ' + fault['error'] if 'error' in fault else ''}")
    print(f"app restarts {r['app_restarts']}, app log warnings {r['app_warnings']}, "
          f"errors {r['app_errors']}; Asterisk warnings/errors {r['asterisk_warnings']}, "
          f"task-processor queue alerts {r['asterisk_taskprocessor_alerts']}")
    for line in r["app_error_examples"]:
        print(f"  app: {line[:160]}")
    if r["taskprocessor_high_water"]:
        print("deepest Asterisk task-processor queues: " + ", ".join(
            f"{name} {depth}" for name, depth in r["taskprocessor_high_water"][:3]))


def run_script(who: str, body: Callable[[], int]) -> int:
    """A benchmark's main: sipp must be installed (else exit 2); a SIGTERM unwinds through
    ``body``'s finally, so its lab is stopped."""
    if shutil.which("sipp") is None:
        print(f"{who}: sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2

    def terminate(signum: int, _frame: object) -> None:
        print(f"{who}: signal {signum}: stopping the lab", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    return body()


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    return run_script("load", lambda: run(opts))


if __name__ == "__main__":
    raise SystemExit(main())
