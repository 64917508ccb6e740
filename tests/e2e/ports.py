"""Ports of one end-to-end lab and its phones, so several labs run side by side.

Each lab has a slot: the pytest-xdist worker number (``gw0`` -> 0, ``gw1`` -> 1, ...) or
``VERIFYLINE_TEST_SLOT`` (a developer running two suites at once). A slot owns the Asterisk
ports (SIP, ARI, the control room's static contact, the RTP range), the console's HTTP port,
the app's metrics port and a block of 5000 ports
for the sipp phones it starts, so two slots never meet. The load benchmark's own lab
(benchmarks/load.py: 61000-65088) is above every block, and so is the comparison's in
tests/e2e/test_load.py (benchmarks/compare.py: SIP 60060-60260, ARI 60088, RTP 4000-7999, below
every slot's RTP range).

    slot k:  SIP 25060+100k  control room 25099+100k  ARI 28088+100k  RTP 10000+1000k..+999
             console 18080+100k  app metrics 19464+100k
             phones 30000+5000k .. +4999 (desk SIP, desk media, caller SIP, caller media,
             RTP-level callers, fixed helpers: +4900.. incl. the desk-TLS test's own
             Asterisk at +4950..+4999)
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable

MAX_SLOTS = 6


def slot() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    raw = worker.removeprefix("gw") if worker else os.environ.get("VERIFYLINE_TEST_SLOT", "0")
    k = int(raw or 0)
    if not 0 <= k < MAX_SLOTS:
        raise RuntimeError(f"test slot {k} out of range 0..{MAX_SLOTS - 1}")
    return k


SLOT = slot()
SIP_PORT = 25060 + 100 * SLOT
OVERFLOW_PORT = 25099 + 100 * SLOT
ARI_PORT = 28088 + 100 * SLOT
CONSOLE_PORT = 18080 + 100 * SLOT
METRICS_PORT = 19464 + 100 * SLOT  # the app's /metrics (VERIFYLINE_METRICS_PORT)
RTP_PORTS = f"{10000 + 1000 * SLOT}-{10999 + 1000 * SLOT}"

_BLOCK = 30000 + 5000 * SLOT
# fixed ports inside the block for helpers that need a known one (the control room's media,
# a desk dialling feature codes)
CONTROL_ROOM_MEDIA = _BLOCK + 4900
FEATURE_DIALLER_SIP = _BLOCK + 4910
FEATURE_DIALLER_MEDIA = _BLOCK + 4920
# the number a callback from a desk dials: a sipp phone on 127.0.0.2 behind the trunk
CALLBACK_NUMBER_SIP = _BLOCK + 4930
CALLBACK_NUMBER_MEDIA = _BLOCK + 4940
# the desk-TLS test's own Asterisk (tests/e2e/test_desk_tls.py): SIP (UDP), ARI, TLS, RTP
TLS_LAB_SIP = _BLOCK + 4950
TLS_LAB_ARI = _BLOCK + 4951
TLS_LAB_TLS = _BLOCK + 4952
TLS_LAB_RTP = f"{_BLOCK + 4960}-{_BLOCK + 4999}"

_runs = itertools.count(0)


def next_run() -> int:
    """A fresh index per sipp run (a stale retransmission from an earlier run is never eaten);
    the ranges below wrap after 300 runs, long after an earlier run's packets are gone."""
    return next(_runs) % 300


def _bindable(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


def free_run(pick: Callable[[int], tuple[int, int]], ip: str) -> tuple[int, int]:
    """The (SIP, media) ports of the next run whose ports are free on ``ip`` now: the blocks
    lie inside the kernel's ephemeral range (32768-60999), so any process's UDP socket may
    hold one (CI: a caller's sipp once failed 'Unable to bind main socket, errno = 98')."""
    for _ in range(300):
        sip, media = pick(next_run())
        if _bindable(ip, sip) and all(_bindable(ip, media + k) for k in range(4)):
            return sip, media
    raise RuntimeError(f"no free sipp ports on {ip} in 300 runs")


def desk_ports(n: int) -> tuple[int, int]:
    return _BLOCK + n, _BLOCK + 300 + 4 * n


def caller_ports(n: int) -> tuple[int, int]:
    return _BLOCK + 1500 + n, _BLOCK + 1800 + 4 * n


def listener_rtp_port(n: int) -> int:
    return _BLOCK + 3000 + 2 * n
