"""Real SIP phones for the end-to-end tests: sipp desk phones and sipp callers."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.e2e import ports

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
SIPP_RTP_DTMF_MS = 400  # sipp's play_dtmf: one digit about every 400 ms
# after the caller confirms, the line reads out the reference and asks them to hold before a
# desk phone that answered is bridged (en: about 8 s with the recording notice)
ANNOUNCE_MS = 9500



def sip_requests(message_log: Path) -> list[str]:
    """The SIP requests a sipp instance received, in order ('INVITE', 'ACK', 'BYE', ...)."""
    if not message_log.exists():
        return []
    text = message_log.read_text(errors="replace")
    seen = []
    for block in re.split(r"\n-{20,}[^\n]*\n", text):
        m = re.search(r"message received \[\d+\] bytes :\s*\n\s*\n(\S+) (\S+)", block)
        if m:
            first, _second = m.groups()
            if not first.startswith("SIP/"):
                seen.append(first)
    return seen


def received_invites(message_log: Path) -> list[tuple[datetime, str]]:
    """When each INVITE reached a sipp instance (sipp's own clock) and its From header (the
    desk's display shows the caller's reference there)."""
    if not message_log.exists():
        return []
    found = []
    text = message_log.read_text(errors="replace")
    for block in re.split(r"\n(?=-{20,} \d{4}-)", "\n" + text):
        m = re.match(r"\s*-{20,} (\S+ \S+)\s*\n.*?message received \[\d+\] bytes :\s*\n\s*\n"
                     r"INVITE .*?\nFrom: ([^\n]*)", block, re.S)
        if m:
            found.append((datetime.fromisoformat(m.group(1)), m.group(2)))
    return found


@dataclass
class DeskPhone:
    """A registered desk phone (sipp: registration scenario + out-of-call answering scenario)."""

    name: str
    sip_port: int
    workdir: Path
    behaviour: str = "desk_answer"
    talk_ms: int = 3000  # desk_answer_hangup: how long the supervisor talks before hanging up
    port: int = 0
    media_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.port, self.media_port = ports.free_run(ports.desk_ports, "127.0.0.1")
        self.log = self.workdir / f"{self.name}-{self.port}.msg.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["sipp", f"127.0.0.1:{self.sip_port}",
             "-sf", str(SCENARIOS / "desk_register.xml"),
             "-oocsf", str(SCENARIOS / f"{self.behaviour}.xml"),
             "-s", self.name, "-au", self.name, "-ap", f"lab-{self.name}",
             "-i", "127.0.0.1", "-p", str(self.port),
             "-mi", "127.0.0.1", "-mp", str(self.media_port), "-rtp_echo",
             "-d", str(self.talk_ms),
             "-m", "1", "-nostdin", "-trace_msg", "-message_file", str(self.log),
             "-trace_err", "-error_file", str(self.workdir / f"{self.name}-{self.port}.err.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir,
        )

    def received(self) -> list[str]:
        return sip_requests(self.log)

    def invites(self) -> list[tuple[datetime, str]]:
        return received_invites(self.log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        # take the registration away so later tests never ring a dead port
        subprocess.run(
            ["sipp", f"127.0.0.1:{self.sip_port}", "-sf", str(SCENARIOS / "desk_unregister.xml"),
             "-s", self.name, "-au", self.name, "-ap", f"lab-{self.name}",
             "-i", "127.0.0.1", "-p", str(self.port), "-m", "1", "-nostdin",
             "-timeout", "10", "-timeout_error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.workdir, timeout=20,
        )


@dataclass
class Caller:
    """A member of the public calling the line from the public trunk (127.0.0.2)."""

    sip_port: int
    line_number: str
    workdir: Path
    number: str
    scenario: str = "caller"
    digits: str = ""
    wait_ms: int = 3000
    extra: tuple[str, ...] = ()
    timeout_s: int = 150  # sipp gives up (and fails) after this long
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.port, self.media_port = ports.free_run(ports.caller_ports, "127.0.0.2")
        self.log = self.workdir / f"caller-{self.port}.msg.log"
        self.errors = self.workdir / f"caller-{self.port}.err.log"

    def start(self) -> Caller:
        scenario = SCENARIOS / f"{self.scenario}.xml"
        argv = ["sipp", f"127.0.0.1:{self.sip_port}", "-sf", str(scenario),
                "-s", self.line_number, "-key", "caller", self.number,
                "-i", "127.0.0.2", "-p", str(self.port),
                "-mi", "127.0.0.2", "-mp", str(self.media_port),
                "-d", str(self.wait_ms), "-m", "1", "-nostdin",
                "-timeout", str(self.timeout_s), "-timeout_error",
                "-trace_msg", "-message_file", str(self.log),
                "-trace_err", "-error_file", str(self.errors)]
        if self.digits:
            argv[argv.index("-key"):argv.index("-key")] = ["-key", "digits", self.digits]
        argv += list(self.extra)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.workdir)
        return self

    def wait(self, timeout: float = 160) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def failure(self) -> str:
        return self.errors.read_text(errors="replace")[-2000:] if self.errors.exists() else ""

    def received(self) -> list[str]:
        return sip_requests(self.log)


def dtmf_ms(digits: str) -> int:
    """How long sipp takes to send these digits as RFC 4733 events."""
    return 700 + SIPP_RTP_DTMF_MS * len(digits)


@contextlib.contextmanager
def control_room(port: int, media_port: int, timeout_s: int = 120
                 ) -> Iterator[subprocess.Popen[bytes]]:
    """The overflow destination (the force's control room): a sipp UAS that answers one call;
    stopped on the way out if the test did not see it finish."""
    proc = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "desk_answer.xml"), "-i", "127.0.0.1",
         "-p", str(port), "-mi", "127.0.0.1", "-mp", str(media_port), "-rtp_echo",
         "-m", "1", "-nostdin", "-timeout", str(timeout_s)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def busy_control_room(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A control room that answers every call 486 Busy, for a test whose callers may overflow
    (an emergency rings it first, a long wait rings it) but that is not about it. With nobody
    on the port, Asterisk retransmits each unanswered INVITE for 32 s (timer B), after the
    app gave up on it: the next test's control room then answered a stale INVITE first, and
    the call it was there for found it gone."""
    proc = subprocess.Popen(
        ["sipp", "-sf", str(SCENARIOS / "desk_busy.xml"), "-i", "127.0.0.1", "-p", str(port),
         "-m", "1000", "-nostdin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()
