"""Benchmark: how long the lab takes to start and one verification call takes, end to end.

    .venv/bin/python benchmarks/lab_start.py [--calls N]

Starts a throwaway lab (own home and ports), times `lab up` with the chroot cached, places N
calls (sipp caller keys 123456#, a sipp desk phone answers, 3 s of audio, caller hangs up) and
prints the figures, then stops the lab. The cold figure (building the chroot) is printed by
asterisk/provision.sh itself ("built ... in N s").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ivr.config import Settings
from ops import lab
from tests.e2e.phones import Caller, DeskPhone, dtmf_ms

ENV = {"VERIFYLINE_SIP_PORT": "45060", "VERIFYLINE_ARI_PORT": "48088",
       "VERIFYLINE_RTP_PORTS": "46000-46999", "VERIFYLINE_METRICS_PORT": "0"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.update(ENV, VERIFYLINE_HOME=home)
        settings = Settings.from_env().with_secrets()
        if not lab.chroot_ready(lab.cache_root(settings)):
            t = time.monotonic()
            lab.provision(settings)
            print(f"chroot build (cold):        {time.monotonic() - t:6.2f} s")
        t = time.monotonic()
        inst = lab.up(settings)
        print(f"lab up (chroot cached):     {time.monotonic() - t:6.2f} s")
        try:
            lab.cli(inst, "core show version")
            rss = Path(f"/proc/{lab.read_pid(inst.asterisk_pidfile)}/status").read_text()
            rss_kb = next(line.split()[1] for line in rss.splitlines()
                          if line.startswith("VmRSS"))
            print(f"Asterisk RSS idle:          {int(rss_kb) / 1024:6.1f} MiB")
            work = Path(home) / "sipp"
            work.mkdir()
            desk = DeskPhone("desk1", settings.sip_port, work)
            desk.start()
            time.sleep(1)
            durations = []
            for i in range(args.calls):
                caller = Caller(settings.sip_port, settings.line_number, work,
                                f"0770090{i:04d}", "caller", "123456#",
                                dtmf_ms("123456#") + 1500)
                t = time.monotonic()
                caller.start()
                if caller.wait() != 0:
                    print(f"call {i} failed: {caller.failure()}")
                    return 1
                durations.append(time.monotonic() - t)
            desk.stop()
            print(f"one call, dial to hang-up:  {statistics.median(durations):6.2f} s median "
                  f"of {len(durations)} (keys 123456#, ~3 s of talk)")
        finally:
            t = time.monotonic()
            lab.down(settings)
            print(f"lab down:                   {time.monotonic() - t:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
