"""The product against the native anchor: the same verification call through the ARI app and
through plain dialplan, in ONE lab, one after the other, and one table of both.

    .venv/bin/python benchmarks/compare.py [--calls N] [--rate R] [--product-rate R] [--hold H]
                                           [--recording on|off] [--flows product,native]
                                           [--find-rate R1,R2,...] [--held N1,N2,...]
                                           [--sip-port P --ari-port P --rtp-ports A-B]

Short run (what `make test` runs, through tests/e2e/test_load.py: the anchor at 10/s, the
product at 3/s, the rate load.py's small run shows it sustains on a shared 2-core machine):

    .venv/bin/python benchmarks/compare.py --calls 60 --rate 10 --product-rate 3

The lab is benchmarks/load.py's (its own home and ports, its desks ``load1``... registered by
one sipp process that answers and presses 1, its callers on 127.0.0.2 with RTP and RFC 4733
keys). On top of it this script writes ``benchmarks/native/*.conf`` into that lab's Asterisk
config only (never the product's): the dialplan ``verifyline-native`` reached by its own number
on the same trunk (``--native-number``), a queue of the same desks for app_queue, the demo
roster in AstDB (family ``verifyline-roster``, the result the product's roster gives now), and
channel event logging of bridge entries and exits (``log/cel-custom/bridges.csv``), with the
modules the product does not load (app_queue, app_read, func_db, ...) loaded at run time.

Each flow then gets the same calls (``123456#1``: on duty, confirmed; the callers' sipp waits
for the reference read-out, talks ``--hold`` s and hangs up). How each figure is measured, the
same way for both flows:

- completed: the callers' sipp completed the call (INVITE .. BYE's 200 OK) and the caller and a
  desk were in one bridge (Asterisk's BRIDGE_ENTER events); failed: placed minus completed;
- logged once: product, exactly one call-log row for the caller's number; native, exactly one
  line in ``spool/native.log`` (the dialplan's hang-up handler) naming a desk; unlogged: placed
  minus logged once;
- CPU-s per completed call: CPU time of Asterisk and of the app from /proc (sampled once a
  second) over the flow's window (first call until every call is logged), minus what the
  process used idle over the same span, divided by the completed calls;
- '#' -> desk INVITE: when Asterisk received the caller's '#' (the RFC 4733 begin, in its DTMF
  log; the caller's channel is named to its number by the bridge events) to when the desks'
  sipp logged the first INVITE for that caller's number (wall clocks, same machine; sipp's own
  log of its play_dtmf runs about 0.8 s ahead of the packets, so it is not used). The native flow
  reads the reference out before Queue() rings (dialplan is sequential; the product rings while
  it reads), so a second row subtracts that read-out (from the prompt files and the reference
  in native.log) from the native figure;
- desk '1' -> bridged: the desks' sipp logs when it sends '1' (SIP INFO); bridged is the later
  BRIDGE_ENTER of the caller and that desk into one bridge (Asterisk's event time);
- held: calls whose caller and desk were both in their bridge at once (from the entries and
  exits), at the peak;
- memory: the peak RSS of Asterisk and the app during the flow's window.

``--find-rate 5,10,15``: for each flow, rates in that order, ``--find-seconds`` (60) each,
until one has a failed or unlogged call; prints the highest that had none. ``--held 50,100``:
for each flow, that many calls at ``--rate`` that all talk at once (hold long enough), until
one fails; prints the most held with none failed.

Exit status 0 only if no call failed and (product) every call was logged exactly once, native
every call logged once; 1 otherwise; 2 if the lab could not be set up. The machine may be shared:
CPU figures are noisy (the table prints the machine's CPU over each window). The heading says
how fast the machine was before the first flow and after the last (``python3 -c 'sum(i*i for i
in range(20_000_000))'``, CPU seconds; docs/benchmarks.md quotes it): compare milliseconds only
at like speeds, ratios within one run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import load  # noqa: E402
from ivr import prompts, roster  # noqa: E402
from ivr.clock import now  # noqa: E402
from ivr.store import Store  # noqa: E402
from ops import lab  # noqa: E402

NATIVE = Path(__file__).resolve().parent / "native"
NATIVE_FILES = ("verifyline_native.conf", "queues.conf", "cel.conf", "cel_custom.conf")
# what the native flow uses that the product's modules.conf does not load (autoload = no)
NATIVE_MODULES = ("app_read.so", "app_exec.so", "func_db.so", "func_rand.so",
                  "app_mixmonitor.so", "app_queue.so", "res_cdrel_custom.so",
                  "cel_custom.so")
ROSTER_FAMILY = "verifyline-roster"
NATIVE_LOG = "native.log"
FLOWS = ("product", "native")


# --- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    base: load.Options  # calls, rate, hold, desks, ports, recording, db ... (load.py's)
    flows: tuple[str, ...]
    native_number: str
    find_rates: tuple[float, ...]
    find_seconds: float
    held: tuple[int, ...]
    product_rate: float
    json_path: Path | None = None
    profile: Path | None = None
    profile_gil: bool = False


def numbers(text: str | None, kind: Callable[[str], Any]) -> tuple[Any, ...]:
    return tuple(kind(x) for x in text.split(",") if x.strip()) if text else ()


def parse_args(argv: Sequence[str] | None = None) -> Options:
    ap = argparse.ArgumentParser(description="The product's call flow against the same flow "
                                 "in native dialplan, in one lab (see the module docstring).")
    ap.add_argument("--calls", type=int, default=60, help="calls per flow (default 60)")
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second (default 10)")
    ap.add_argument("--product-rate", type=float,
                    help="the product flow's rate, if not --rate (the app sustains less than "
                         "the anchor: make test runs it at 3/s, as load.py's small run)")
    ap.add_argument("--hold", type=float, default=5.0, help="seconds each caller talks")
    ap.add_argument("--desks", type=int, default=0, help="desk phones (default: enough)")
    ap.add_argument("--recording", choices=("on", "off"), default="on")
    ap.add_argument("--flows", default="product,native",
                    help="which flows, in this order (default product,native)")
    ap.add_argument("--native-number", default="0800999000",
                    help="the number the native flow answers on the trunk")
    ap.add_argument("--find-rate", help="comma-separated rates to step through, per flow")
    ap.add_argument("--find-seconds", type=float, default=60.0,
                    help="seconds of calls at each --find-rate step (default 60)")
    ap.add_argument("--held", help="comma-separated numbers of calls to hold at once, per flow")
    ap.add_argument("--sip-port", type=int, default=65060)
    ap.add_argument("--ari-port", type=int, default=65088)
    ap.add_argument("--rtp-ports", default="61000-64999")
    ap.add_argument("--drain", type=float, default=60.0)
    ap.add_argument("--db-url", help="VERIFYLINE_DB_URL (default: SQLite in the temp home)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    ap.add_argument("--json", type=Path, dest="json_path", help="also write the figures here")
    ap.add_argument("--profile", type=Path,
                    help="sample the app with py-spy during the product flow (pip install "
                         "py-spy) and write its stacks here; prints where the app spends its "
                         "time (the sampling costs the app CPU: take figures from another run)")
    ap.add_argument("--profile-gil", action="store_true",
                    help="with --profile: sample only the thread holding the GIL (py-spy "
                         "--gil), so a thread waiting for the GIL is not counted as busy")
    args = ap.parse_args(argv)
    if args.profile_gil and args.profile is None:
        ap.error("--profile-gil needs --profile FILE")
    flows = tuple(f.strip() for f in args.flows.split(",") if f.strip())
    if not flows or any(f not in FLOWS for f in flows):
        ap.error(f"--flows: any of {', '.join(FLOWS)}")
    if args.rate <= 0 or args.calls < 1:
        ap.error("--rate must be more than 0 and --calls at least 1")
    find_rates = numbers(args.find_rate, float)
    held = numbers(args.held, int)
    recording = args.recording == "on"
    # enough desks for the largest load asked for (held calls each keep one)
    biggest = [load.default_desks(args.calls, args.rate, args.hold, recording)]
    biggest += [load.default_desks(math.ceil(r * args.find_seconds), r, args.hold, recording)
                for r in find_rates]
    biggest += [n + 2 for n in held]
    base = load.Options(
        calls=args.calls, rate=args.rate, hold=args.hold, desks=args.desks or max(biggest),
        digits="123456#1", recording=recording, sip_port=args.sip_port,
        ari_port=args.ari_port, rtp_ports=args.rtp_ports, drain=args.drain, project=35.0,
        keep=args.keep, json_path=None, db_url=args.db_url)
    product_rate = float(args.product_rate or args.rate)
    if product_rate <= 0:
        ap.error("--product-rate must be more than 0")
    return Options(base, flows, args.native_number, find_rates, args.find_seconds, held,
                   product_rate, args.json_path, args.profile, args.profile_gil)


# --- the native anchor in the lab ------------------------------------------------------------


def install_native(run: load.Lab, opts: Options) -> None:
    """Write the anchor's config into this lab's Asterisk, load its modules, put the roster in
    AstDB (as the product's roster classifies each officer now)."""
    inst = run.inst
    assert inst is not None
    etc = inst.outside / "etc"
    values = {
        "NATIVE_NUMBER": opts.native_number,
        "RECORD": "1" if opts.base.recording else "0",
        "RECORDING_DIR": f"{inst.inside}/astspool/recording",
        "RING_TIMEOUT": str(int(run.settings.ring_timeout)),
        "MEMBERS": "".join(f"member => PJSIP/{desk}\n" for desk in run.desks),
    }
    for name in NATIVE_FILES:
        template = NATIVE / name
        (etc / name).write_text(lab.render(template.read_text(), values, str(template)))
    extensions = etc / "extensions.conf"
    extensions.write_text(extensions.read_text() + "\n#include verifyline_native.conf\n")
    (inst.outside / "spool" / NATIVE_LOG).touch()  # FILE()'s line mode appends to a file
    (inst.outside / "log" / "cel-custom").mkdir(exist_ok=True)  # cel_custom makes no folder
    for module in NATIVE_MODULES:
        lab.cli(inst, f"module load {module}")
    lab.cli(inst, "module reload cel")  # enable = yes, from the cel.conf just written
    lab.cli(inst, "dialplan reload")
    store = Store(run.settings.db_url)
    try:
        with store.session() as s:
            for line in load.DEMO_ROSTER.read_text().splitlines()[1:]:
                digits = line.split(",", 1)[0]
                result = roster.lookup(s, digits, now()).result.value
                lab.cli(inst, f"database put {ROSTER_FAMILY} {digits} {result}")
    finally:
        store.dispose()
    shown = lab.cli(inst, "dialplan show verifyline-native")
    if "Queue(verifyline-native" not in shown:
        raise RuntimeError(f"the native dialplan did not load:\n{shown[-500:]}")


# --- reading what each side logged -----------------------------------------------------------


def epoch(seconds: str, micros: str) -> float:
    return float(seconds) + float(micros) / 1e6


def sipp_times(path: Path, kind: str, prefix: str) -> dict[str, float]:
    """First '<kind> <caller number> <s> <us>' line per caller in the desks' sipp log."""
    out: dict[str, float] = {}
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] != kind:
            continue
        who = parts[1]
        if who.startswith(prefix) and who not in out:
            try:
                out[who] = epoch(parts[2], parts[3])
            except ValueError:
                continue
    return out


def cel_rows(path: Path) -> Iterable[tuple[str, float, str, str, str]]:
    """cel_custom's lines: (event type, epoch, caller number, channel, bridge id)."""
    if not path.exists():
        return
    with path.open(newline="", errors="replace") as f:
        for row in csv.reader(f):
            if len(row) < 5:
                continue
            try:
                yield row[0], float(row[1]), row[2], row[3], str(
                    json.loads(row[4]).get("bridge_id", ""))
            except (ValueError, AttributeError):
                continue


def channel_callers(path: Path) -> dict[str, str]:
    """Trunk channel name -> caller number, from every bridge entry (channel names are unique
    in one Asterisk run: PJSIP/trunk-0000002a)."""
    return {channel: cid for kind, _at, cid, channel, _b in cel_rows(path)
            if kind == "BRIDGE_ENTER" and channel.startswith("PJSIP/trunk-")}


DTMF_HASH = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\] DTMF.* DTMF begin '#' "
                       r"received on (PJSIP/trunk-[0-9a-f]+)")


def hash_times(messages: Path, callers: dict[str, str], prefix: str) -> dict[str, float]:
    """When Asterisk received each caller's first '#' (RFC 4733 begin), from its DTMF log
    (logger.conf logs dtmf; the lab's clock is UTC, as Asterisk's log times)."""
    out: dict[str, float] = {}
    if not messages.exists():
        return out
    for line in messages.read_text(errors="replace").splitlines():
        if "DTMF begin '#'" not in line:
            continue
        m = DTMF_HASH.match(line)
        cid = callers.get(m.group(2), "") if m else ""
        if m and cid.startswith(prefix) and cid not in out:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
            out[cid] = at.timestamp()
    return out


@dataclass
class Bridged:
    at: float  # the later of the caller's and the desk's entry
    left: float | None  # the first of them to leave


def bridges(path: Path, prefix: str) -> dict[str, Bridged]:
    """Per caller number: when they and a desk were first in one bridge (CEL BRIDGE_ENTER /
    BRIDGE_EXIT lines of cel_custom: type, time, caller number, channel, extra JSON)."""
    entered: dict[str, dict[str, tuple[str, float]]] = {}  # bridge -> channel -> (cid, at)
    left: dict[tuple[str, str], float] = {}
    for kind, when, cid, channel, bridge in cel_rows(path):
        if kind == "BRIDGE_ENTER":
            entered.setdefault(bridge, {}).setdefault(channel, (cid, when))
        elif kind == "BRIDGE_EXIT":
            left.setdefault((bridge, channel), when)
    out: dict[str, Bridged] = {}
    for bridge, channels in entered.items():
        callers = [(ch, cid, t) for ch, (cid, t) in channels.items()
                   if ch.startswith("PJSIP/trunk-") and cid.startswith(prefix)]
        desks = [(ch, t) for ch, (_cid, t) in channels.items() if ch.startswith("PJSIP/load")]
        if not callers or not desks:
            continue
        ch, cid, t_caller = callers[0]
        desk, t_desk = min(desks, key=lambda d: d[1])
        exits = [x for x in (left.get((bridge, ch)), left.get((bridge, desk))) if x is not None]
        b = Bridged(max(t_caller, t_desk), min(exits) if exits else None)
        if cid not in out or b.at < out[cid].at:
            out[cid] = b
    return out


@dataclass
class NativeRow:
    caller: str
    started: float
    ended: float
    reference: str
    desk: str


def native_rows(path: Path, prefix: str) -> list[NativeRow]:
    """spool/native.log: v1|uniqueid|start|end|caller|digits|result|reference|desk|status."""
    rows = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("|")
            if len(parts) >= 10 and parts[0] == "v1" and parts[4].startswith(prefix):
                try:
                    rows.append(NativeRow(parts[4], float(parts[2]), float(parts[3]),
                                          parts[7], parts[8]))
                except ValueError:
                    continue
    return rows


def readout_seconds(reference: str, recording: bool) -> float:
    """How long the native flow's reference read-out lasts (the prompt files)."""
    lang = prompts.DEFAULT_LANGUAGE
    parts = ["connecting", *(["recorded"] if recording else []), "reference",
             *(f"digit_{d}" for d in reference if d.isdigit())]
    return sum(load.wav_seconds(prompts.path(lang, p)) for p in parts)


def peak_held(spans: Iterable[tuple[float, float]]) -> int:
    points = sorted(p for a, b in spans for p in ((a, 1), (b, -1)))
    peak = current = 0
    for _at, delta in points:
        current += delta
        peak = max(peak, current)
    return peak


# --- one flow's calls ------------------------------------------------------------------------


@dataclass
class FlowResult:
    flow: str
    calls: int
    rate: float
    hold: float
    placed: int = 0
    completed: int = 0
    failed: int = 0
    logged_once: int = 0
    unlogged: int = 0
    duplicates: int = 0
    held: int = 0
    cpu_s_per_call: dict[str, float | None] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    machine_cpu_pct: float = 0.0
    latency_s: dict[str, dict[str, float | None]] = field(default_factory=dict)
    window_s: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.placed == self.calls and self.failed == 0 and self.unlogged == 0
                and self.duplicates == 0)


_batches = itertools.count(1)


def new_prefix(flow: str) -> str:
    """A caller-number prefix of its own for each batch (sipp numbers calls from 1 each time)."""
    return f"07{FLOWS.index(flow) + 1}{next(_batches) % 100:02d}{random.randrange(1000):03d}"


def run_flow(run: load.Lab, opts: Options, flow: str, base: load.Options, tag: str
             ) -> FlowResult:
    inst, store, sampler = run.inst, run.store, run.sampler
    assert inst is not None and store is not None and sampler is not None
    prefix = new_prefix(flow)
    work = run.work / tag
    spool_log = inst.outside / "spool" / NATIVE_LOG

    def native_open() -> int:
        placed = load.read_sipp(work, prefix).created
        return max(0, placed - len(native_rows(spool_log, prefix)))

    number = opts.native_number if flow == "native" else None
    print(f"compare: {tag}: {base.calls} calls at {base.rate:g}/s, talk {base.hold:g} s",
          flush=True)
    spy = (start_profile(run, opts.profile, opts.profile_gil)
           if flow == "product" and opts.profile else None)
    placed = load.place_calls(run, base, work, number, prefix, "compare",
                              native_open if flow == "native" else None)
    if spy is not None:
        stop_profile(spy)
    time.sleep(1.0)  # the last samples and CEL lines
    sipp = load.read_sipp(work, prefix)
    cel_path = inst.outside / "log" / "cel-custom" / "bridges.csv"
    cel = bridges(cel_path, prefix)
    hashes = hash_times(inst.asterisk_log, channel_callers(cel_path), prefix)
    desks_log = run.work / "desks.log"
    invites = sipp_times(desks_log, "invite", prefix)
    ones = sipp_times(desks_log, "one", prefix)

    res = FlowResult(flow, base.calls, base.rate, base.hold, placed=sipp.created)
    done = sipp.ok_numbers & set(cel)
    res.completed = len(done)
    res.failed = res.placed - res.completed
    if flow == "product":
        rows: list[dict[str, Any]] = json.loads(load.verifyline(run.env, "calls", "list",
                                                                "--json"))
        logged = [str(r["caller_number"]) for r in rows
                  if str(r["caller_number"] or "").startswith(prefix)]
        readout: dict[str, float] = {}
    else:
        nrows = native_rows(spool_log, prefix)
        logged = [r.caller for r in nrows if r.desk]
        readout = {r.caller: readout_seconds(r.reference, base.recording) for r in nrows}
    counts: dict[str, int] = {}
    for n in logged:
        counts[n] = counts.get(n, 0) + 1
    res.logged_once = sum(1 for c in counts.values() if c == 1)
    res.duplicates = sum(c - 1 for c in counts.values() if c > 1)
    res.unlogged = max(0, res.placed - res.logged_once)
    res.held = peak_held((b.at, b.left) for b in cel.values() if b.left is not None)

    hash_invite = [invites[n] - hashes[n] for n in hashes if n in invites]
    beyond = [invites[n] - hashes[n] - readout.get(n, 0.0) for n in hashes if n in invites]
    one_bridged = [cel[n].at - ones[n] for n in ones if n in cel]
    res.latency_s = {"'#' -> desk INVITE": load.percentiles(hash_invite),
                     "'#' -> desk INVITE, less the read-out before ringing":
                         load.percentiles(beyond),
                     "desk '1' -> bridged": load.percentiles(one_bridged)}

    samples = sampler.samples
    idle_end = run.t_idle + load.IDLE_BASELINE_S
    for role in ("asterisk", "app"):
        used = load.usage(samples, role, placed.t0, placed.t1)
        idle = load.usage(samples, role, run.t_idle, idle_end, slack=0.0)
        net = max(0.0, used.cpu_seconds - idle.avg_pct / 100 * used.span)
        res.cpu_s_per_call[role] = net / res.completed if res.completed else None
        res.peak_rss_mib[role] = round(used.peak_rss_mib, 1)
        res.window_s = used.span
    res.machine_cpu_pct = load.machine_usage(samples, placed.t0, placed.t1)[0]
    return res


# --- where the app spends its time ----------------------------------------------------------


def start_profile(run: load.Lab, out: Path,
                  gil_only: bool = False) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the app (100 Hz, without pausing it), collapsed stacks to ``out``;
    ``gil_only``: only the thread holding the GIL at each sample."""
    inst = run.inst
    assert inst is not None
    pid = lab.read_pid(inst.app_pidfile)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if pid is None or not Path(spy).exists():
        print("compare: --profile needs py-spy (pip install py-spy) and a running app",
              file=sys.stderr)
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "100",
                             "--nonblocking", "--format", "raw", "--output", str(out),
                             *(["--gil"] if gil_only else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes]) -> None:
    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait()


def frame_name(frame: str) -> str:
    """'handle (ari_app/stasis.py:120)' -> 'ari_app/stasis.py:handle' (no line number)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{Path(path).as_posix().replace(str(REPO) + '/', '')}:{name}"


def profile_summary(path: Path, top: int = 15, gil_only: bool = False) -> str:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n
    if not total:
        return "no samples"
    ours = {f: n for f, n in incl_n.items()
            if f.startswith(("ivr/", "ari_app/", "ops/"))}
    sampled = ("the thread holding the GIL" if gil_only
               else "every thread; py-spy leaves out idle threads")
    out = [f"{total} samples (100 Hz, {sampled})", "",
           "| self % | function |", "|---:|---|"]
    out += [f"| {100 * n / total:.1f} | `{f}` |"
            for f, n in sorted(self_n.items(), key=lambda x: -x[1])[:top]]
    out += ["", "| inclusive % | our function |", "|---:|---|"]
    out += [f"| {100 * n / total:.1f} | `{f}` |"
            for f, n in sorted(ours.items(), key=lambda x: -x[1])[:top]]
    return "\n".join(out)


# --- the table -------------------------------------------------------------------------------


SPEED_SQUARES = 20_000_000  # docs/benchmarks.md's speed anchor since 2 December


def machine_speed(squares: int = SPEED_SQUARES) -> float:
    """CPU seconds this process takes to sum the first ``squares`` squares: the machine's speed
    now, in the unit of the table's CPU figures (lower is faster), with nothing of the lab busy."""
    started = time.process_time()
    sum(i * i for i in range(squares))
    return time.process_time() - started


def speed_note(before: float, after: float) -> str:
    return (f"machine speed anchor {before:.2f} s before the first flow, {after:.2f} s after "
            f"the last (sum of {SPEED_SQUARES:,} squares; lower is faster)")


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def table(results: dict[str, FlowResult], extra: dict[str, dict[str, str]]) -> str:
    """One markdown table: a row per figure, a column per flow, and product / native."""
    flows = list(results)
    both = "product" in results and "native" in results
    head = ["figure", *flows, *(["product ÷ native"] if both else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def row(label: str, values: dict[str, float | None], fmt: str, divide: bool = True
            ) -> None:
        cells = ["-" if values.get(f) is None else format(values[f], fmt) for f in flows]
        if both:
            cells.append(ratio(values.get("product"), values.get("native")) if divide else "")
        lines.append("| " + " | ".join([label, *cells]) + " |")

    r = results
    row("calls per second", {f: r[f].rate for f in flows}, "g", divide=False)
    row("calls placed", {f: float(r[f].placed) for f in flows}, ".0f", divide=False)
    row("calls completed", {f: float(r[f].completed) for f in flows}, ".0f", divide=False)
    row("calls failed", {f: float(r[f].failed) for f in flows}, ".0f", divide=False)
    row("calls logged exactly once", {f: float(r[f].logged_once) for f in flows}, ".0f",
        divide=False)
    row("calls unlogged / duplicate", {f: float(r[f].unlogged + r[f].duplicates)
                                       for f in flows}, ".0f", divide=False)
    for role in ("asterisk", "app"):
        row(f"CPU-s per completed call, {'Asterisk' if role == 'asterisk' else 'app'}",
            {f: r[f].cpu_s_per_call.get(role) for f in flows}, ".4f")
    total = {f: (sum(v for v in r[f].cpu_s_per_call.values() if v is not None)
                 if r[f].completed else None) for f in flows}
    row("CPU-s per completed call, line (both)", total, ".4f")
    placed = {f: (sum(v for v in r[f].cpu_s_per_call.values() if v is not None)
                  * r[f].completed / r[f].placed if r[f].placed else None) for f in flows}
    row("CPU-s per call placed, line (both)", placed, ".4f")
    for name in ("'#' -> desk INVITE", "'#' -> desk INVITE, less the read-out before ringing",
                 "desk '1' -> bridged"):
        for p in ("p50", "p99"):
            row(f"{name} {p} (s)", {f: r[f].latency_s[name][p] for f in flows}, ".3f")
    row("calls held at once (peak)", {f: float(r[f].held) for f in flows}, ".0f")
    for role in ("asterisk", "app"):
        row(f"peak RSS, {'Asterisk' if role == 'asterisk' else 'app'} (MiB)",
            {f: r[f].peak_rss_mib.get(role) for f in flows}, ".1f")
    row("machine CPU over the window (%, 100 = one core)",
        {f: r[f].machine_cpu_pct for f in flows}, ".0f", divide=False)
    for label, cells in extra.items():
        values = [cells.get(f, "-") for f in flows]
        lines.append("| " + " | ".join([label, *values, *([""] if both else [])]) + " |")
    return "\n".join(lines)


# --- the run ---------------------------------------------------------------------------------


def find_rate(run: load.Lab, opts: Options, flow: str) -> tuple[float | None, list[str]]:
    """The highest of opts.find_rates (in order, stopping at the first that fails) with no
    failed or unlogged call for find_seconds."""
    best: float | None = None
    notes = []
    for rate in opts.find_rates:
        base = dataclasses.replace(opts.base, rate=rate, calls=math.ceil(rate * opts.find_seconds))
        res = run_flow(run, opts, flow, base, f"{flow}-rate-{rate:g}")
        notes.append(f"{rate:g}/s: {res.failed} failed, {res.unlogged} unlogged")
        print(f"compare: {flow} at {rate:g}/s for {opts.find_seconds:g} s: {notes[-1]}",
              flush=True)
        if not res.ok:
            break
        best = rate
    return best, notes


def most_held(run: load.Lab, opts: Options, flow: str) -> tuple[int | None, list[str]]:
    """The largest of opts.held (in order, stopping at the first that fails) all held at once
    with no failed call: N calls at --rate, each talking long enough to overlap the others."""
    best: int | None = None
    notes = []
    for n in opts.held:
        hold = n / opts.base.rate + 5.0
        base = dataclasses.replace(opts.base, calls=n, hold=hold)
        res = run_flow(run, opts, flow, base, f"{flow}-held-{n}")
        notes.append(f"{n}: {res.failed} failed, {res.held} held at the peak")
        print(f"compare: {flow}, {n} calls held: {notes[-1]}", flush=True)
        if not res.ok:
            break
        best = res.held
    return best, notes


def run(opts: Options) -> int:
    base = opts.base
    speed_before = machine_speed()
    lab_run = load.new_lab(base, "compare")
    print(f"compare: {', '.join(opts.flows)}; {base.calls} calls each at {base.rate:g}/s "
          f"(product {opts.product_rate:g}/s), "
          f"{base.desks} desks, talk {base.hold:g} s, recording "
          f"{'on' if base.recording else 'off'}; home {lab_run.home}", flush=True)
    try:
        try:
            load.start_lab(lab_run, base, "compare", lambda r: install_native(r, opts))
        except load.SetupError as exc:
            print(f"compare: {exc}", file=sys.stderr)
            return 2
        results = {flow: run_flow(lab_run, opts, flow, dataclasses.replace(
            base, rate=opts.product_rate) if flow == "product" else base, flow)
            for flow in opts.flows}
        extra: dict[str, dict[str, str]] = {}
        report: dict[str, Any] = {"results": {f: dataclasses.asdict(r)
                                              for f, r in results.items()}}
        if opts.find_rates:
            found = {flow: find_rate(lab_run, opts, flow) for flow in opts.flows}
            extra[f"highest rate, {opts.find_seconds:g} s, 0 failed/unlogged (calls/s)"] = {
                f: "-" if best is None else f"{best:g}" for f, (best, _n) in found.items()}
            report["find_rate"] = {f: {"best": b, "steps": n} for f, (b, n) in found.items()}
        if opts.held:
            held = {flow: most_held(lab_run, opts, flow) for flow in opts.flows}
            extra["most calls held at once, 0 failed"] = {
                f: "-" if best is None else str(best) for f, (best, _n) in held.items()}
            report["held"] = {f: {"best": b, "steps": n} for f, (b, n) in held.items()}
        speed_after = machine_speed()
        report["machine_speed_s"] = {"before": speed_before, "after": speed_after}
        print()
        print(f"Verify Line, product and native anchor: {base.calls} calls per flow, talk "
              f"{base.hold:g} s, {base.desks} desks, recording "
              f"{'on' if base.recording else 'off'}, {datetime.now().astimezone():%Y-%m-%d}; "
              f"{speed_note(speed_before, speed_after)}")
        print()
        print(table(results, extra))
        if opts.json_path is not None:
            opts.json_path.write_text(json.dumps(report, indent=2, default=str))
        if opts.profile is not None and opts.profile.exists():
            print()
            print(f"Where the app spends its time in the product flow ({opts.profile}):")
            print(profile_summary(opts.profile, gil_only=opts.profile_gil))
        return 0 if all(r.ok for r in results.values()) else 1
    finally:
        lab_run.close(base.keep, "compare")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    return load.run_script("compare", lambda: run(opts))


if __name__ == "__main__":
    raise SystemExit(main())
