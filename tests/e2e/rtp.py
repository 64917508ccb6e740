"""A caller's ear and keypad on the RTP level: records every packet Asterisk sends and keys
digits as RFC 4733 events from the same socket (symmetric RTP, as a real phone does).

sipp does the SIP side (tests/sipp/caller_listen.xml advertises this socket's port in its
SDP); this class is the media side, so tests can measure what the caller actually hears.
"""

from __future__ import annotations

import itertools
import random
import socket
import struct
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

FRAME_MS = 20
PT_PCMU = 0
PT_DTMF = 101
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
              "A": 12, "B": 13, "C": 14, "D": 15}


def _ulaw_table() -> list[int]:
    table = []
    for byte in range(256):
        u = ~byte & 0xFF
        sign, exponent, mantissa = u & 0x80, (u >> 4) & 0x07, u & 0x0F
        sample = ((mantissa << 3) + 0x84) << exponent
        sample -= 0x84
        table.append(-sample if sign else sample)
    return table


ULAW = _ulaw_table()


@dataclass(frozen=True)
class Packet:
    at: float  # time.monotonic() on arrival
    payload_type: int
    payload: bytes


def rms(samples: list[int]) -> float:
    return (sum(s * s for s in samples) / len(samples)) ** 0.5 if samples else 0.0


class RtpPhone:
    """Binds 127.0.0.2:<port>; call :meth:`close` when done."""

    def __init__(self, port: int, host: str = "127.0.0.2") -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.packets: list[Packet] = []
        self.remote: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._seq = random.randint(0, 5000)
        self._ssrc = random.getrandbits(32)
        self._ts = random.getrandbits(16)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # the sending side, when the test lets this phone talk like a real one (send_audio)
        self._send_lock = threading.Lock()
        self._talking = threading.Event()
        self._talker: threading.Thread | None = None
        self.last_sent = 0.0  # time.monotonic() of the last RTP packet this phone sent

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.remote = self.remote or addr
            cc = data[0] & 0x0F
            self.packets.append(Packet(time.monotonic(), data[1] & 0x7F, data[12 + 4 * cc:]))

    def wait_for_audio(self, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.packets and self.remote:
                return self.packets[0].at
            time.sleep(0.01)
        raise AssertionError("no RTP from Asterisk: the caller hears nothing")

    def send_digits(self, digits: str, gap: float = 0.25) -> list[float]:
        """Key digits as RFC 4733 events; return when each key went down (monotonic)."""
        assert self.remote is not None, "no remote RTP address yet"
        sent = []
        for digit in digits:
            sent.append(time.monotonic())
            self._event(DTMF_CODES[digit])
            time.sleep(gap)
        return sent

    def _event(self, code: int, steps: int = 5) -> None:
        with self._send_lock:  # a real phone sends the event instead of audio, not beside it
            self._ts += 1600
            for i in range(steps):
                self._packet(code, (i + 1) * 160, end=False, marker=i == 0)
                time.sleep(FRAME_MS / 1000)
            for _ in range(3):  # the end packet, sent three times as RFC 4733 advises
                self._packet(code, steps * 160, end=True, marker=False)

    def _packet(self, code: int, duration: int, end: bool, marker: bool) -> None:
        body = struct.pack("!BBH", code, (0x80 if end else 0) | 10, duration)
        self._send(PT_DTMF, marker, body)

    def _send(self, payload_type: int, marker: bool, body: bytes) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, self._seq,
                             self._ts & 0xFFFFFFFF, self._ssrc)
        assert self.remote is not None
        self.sock.sendto(header + body, self.remote)
        self.last_sent = time.monotonic()

    def send_audio(self) -> None:
        """Send a 20 ms PCMU frame (silence) every 20 ms until :meth:`stop_audio`, as a real
        phone does even while its user only listens: Asterisk's RTP timeout sees it alive."""
        assert self.remote is not None, "no remote RTP address yet"
        self._talking.set()
        self._talker = threading.Thread(target=self._talk, daemon=True)
        self._talker.start()

    def _talk(self) -> None:
        frame = bytes([0xFF]) * (8 * FRAME_MS)  # PCMU silence
        next_at = time.monotonic()
        while self._talking.is_set() and not self._stop.is_set():
            with self._send_lock:
                self._ts += len(frame)
                try:
                    self._send(PT_PCMU, False, frame)
                except OSError:
                    return
            next_at += FRAME_MS / 1000
            time.sleep(max(0.0, next_at - time.monotonic()))

    def stop_audio(self) -> float:
        """Stop sending (the phone is gone); return when its last RTP packet left."""
        self._talking.clear()
        if self._talker is not None:
            self._talker.join(timeout=2)
        return self.last_sent

    def frames(self, start: float, end: float) -> list[tuple[float, float]]:
        """(arrival time, RMS level) of each audio packet received in [start, end)."""
        return [(p.at, rms([ULAW[b] for b in p.payload])) for p in self.packets
                if p.payload_type == PT_PCMU and start <= p.at < end]

    def longest_silence(self, start: float, end: float, level: float = 150.0) -> float:
        """The longest stretch in [start, end) with no packet louder than ``level``: missing
        packets are silence too."""
        loud = [t for t, r in self.frames(start, end) if r >= level]
        edges = [start, *loud, end]
        return max(b - a for a, b in itertools.pairwise(edges))

    def envelope(self, start: float, seconds: float) -> list[float]:
        """RMS per 20 ms slot from ``start``: the shape of what the caller heard."""
        slots = [0.0] * int(seconds * 1000 / FRAME_MS)
        for t, r in self.frames(start, start + seconds):
            i = int((t - start) * 1000 / FRAME_MS)
            if 0 <= i < len(slots):
                slots[i] = max(slots[i], r)
        return slots

    def save_wav(self, path: Path) -> None:
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            for p in self.packets:
                if p.payload_type == PT_PCMU:
                    w.writeframes(struct.pack(f"<{len(p.payload)}h", *(ULAW[b] for b in p.payload)))

    def close(self) -> None:
        self._talking.clear()
        self._stop.set()
        if self._talker is not None:
            self._talker.join(timeout=2)
        self.sock.close()
        self._reader.join(timeout=2)


def wav_envelope(path: Path, seconds: float) -> list[float]:
    """RMS per 20 ms of a prompt file (8 kHz 16-bit mono), to compare with what was heard."""
    with wave.open(str(path)) as w:
        raw = w.readframes(w.getnframes())
    samples = struct.unpack(f"<{len(raw) // 2}h", raw)
    per = 8000 * FRAME_MS // 1000
    n = min(len(samples) // per, int(seconds * 1000 / FRAME_MS))
    return [rms(list(samples[i * per:(i + 1) * per])) for i in range(n)]


def similarity(heard: list[float], reference: list[float], max_lag: int = 25) -> float:
    """Best normalised correlation of two envelopes within +-max_lag slots (0.5 s)."""
    def corr(a: list[float], b: list[float]) -> float:
        n = min(len(a), len(b))
        if n < 10:
            return 0.0
        a, b = a[:n], b[:n]
        ma, mb = sum(a) / n, sum(b) / n
        num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
        den = (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
        return num / den if den else 0.0
    return max(corr(heard[lag:], reference) if lag >= 0 else corr(heard, reference[-lag:])
               for lag in range(-max_lag, max_lag + 1))
