"""A desk phone over TLS for the tests: Debian's sipp (sip-tester 3.6.1) is built without
OpenSSL ("To use a TLS transport you must compile SIPp with OpenSSL"), so this is a small real
SIP user agent on Python's ``ssl``: it registers with digest authentication (RFC 3261 22.4,
RFC 2617 ``qop=auth``) over one TLS connection, and reads the requests Asterisk sends back on it.

    TlsDeskPhone                      Asterisk (transport-tls)
        | REGISTER (no credentials)     |
        |------------------------------>|
        |          401 WWW-Authenticate |
        |<------------------------------|
        | REGISTER (Authorization)      |
        |------------------------------>|
        |                        200 OK |
        |<------------------------------|
        |                        INVITE |   (a call to the desk: SDP with a=crypto)
        |<------------------------------|
        | 603 Decline                   |
        |------------------------------>|
        |                           ACK |
        |<------------------------------|
"""

from __future__ import annotations

import hashlib
import re
import secrets
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class SipMessage:
    """One SIP request or response: its first line, headers (lower-case names) and body."""

    first_line: str
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name.lower():
                return value
        raise KeyError(name)

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    @property
    def status(self) -> int:
        return int(self.first_line.split()[1])

    @property
    def method(self) -> str:
        return self.first_line.split()[0]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # SIP digest (RFC 2617) is MD5


def _digest_params(challenge: str) -> dict[str, str]:
    return {k.lower(): v1 or v2 for k, v1, v2 in
            re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', challenge.removeprefix("Digest "))}


@dataclass
class TlsDeskPhone:
    """A desk phone registered over TLS to ``host:port`` as ``user`` with ``password``."""

    host: str
    port: int
    user: str
    password: str
    ca_file: Path
    cert: tuple[Path, Path] | None = None  # a client certificate and key, for mutual TLS
    max_version: ssl.TLSVersion | None = None  # a phone that speaks no newer TLS than this
    _tls: ssl.SSLSocket | None = None
    _buffer: bytes = b""
    _call_id: str = field(default_factory=lambda: secrets.token_hex(8))
    _tag: str = field(default_factory=lambda: secrets.token_hex(4))
    _cseq: int = 0

    def connect(self, timeout: float = 5.0) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert is not None:
            context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        if self.max_version is not None:
            context.maximum_version = self.max_version
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        self._tls = context.wrap_socket(raw, server_hostname=self.host)

    @property
    def tls_version(self) -> str | None:
        return self._tls.version() if self._tls else None

    @property
    def local(self) -> tuple[str, int]:
        assert self._tls is not None
        host, port = self._tls.getsockname()[:2]
        return host, port

    def close(self) -> None:
        if self._tls is not None:
            self._tls.close()
            self._tls = None

    def send(self, text: str) -> None:
        assert self._tls is not None
        self._tls.sendall(text.encode())

    def receive(self, timeout: float = 5.0) -> SipMessage:
        """The next SIP message on the connection (keep-alive CRLFs skipped)."""
        assert self._tls is not None
        deadline = time.monotonic() + timeout
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if sep:
                lines = head.decode().split("\r\n")
                headers = [(k.strip().lower(), v.strip()) for k, v in
                           (line.split(":", 1) for line in lines[1:])]
                length = int(dict(headers).get("content-length", "0"))
                if len(rest) >= length:
                    self._buffer = rest[length:]
                    return SipMessage(lines[0], headers, rest[:length].decode())
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.user}: no SIP message within {timeout} s")
            self._tls.settimeout(left)
            chunk = self._tls.recv(65536)
            if not chunk:
                raise ConnectionError(f"{self.user}: Asterisk closed the TLS connection")
            self._buffer += chunk

    def _register_request(self, authorization: str | None, expires: int) -> str:
        self._cseq += 1
        host, port = self.local
        uri = f"sip:{self.host}:{self.port};transport=tls"
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (f"REGISTER {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/TLS {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
                "Max-Forwards: 70\r\n"
                f"From: <sip:{self.user}@{self.host}>;tag={self._tag}\r\n"
                f"To: <sip:{self.user}@{self.host}>\r\n"
                f"Call-ID: {self._call_id}\r\n"
                f"CSeq: {self._cseq} REGISTER\r\n"
                f"Contact: <sip:{self.user}@{host}:{port};transport=tls>\r\n"
                f"Expires: {expires}\r\n"
                f"{auth}"
                "User-Agent: verifyline-tests-tls\r\n"
                "Content-Length: 0\r\n\r\n")

    def register(self, expires: int = 300) -> SipMessage:
        """REGISTER, answer the digest challenge; return the final response."""
        self.send(self._register_request(None, expires))
        challenge = self.receive()
        if challenge.status != 401:
            return challenge
        offers = [_digest_params(c) for c in challenge.all("www-authenticate")]
        p = next(o for o in offers if o.get("algorithm", "MD5").upper() == "MD5")
        uri = f"sip:{self.host}:{self.port};transport=tls"
        ha1 = _md5(f"{self.user}:{p['realm']}:{self.password}")
        ha2 = _md5(f"REGISTER:{uri}")
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{p['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        opaque = f', opaque="{p["opaque"]}"' if "opaque" in p else ""
        authorization = (f'Digest username="{self.user}", realm="{p["realm"]}", '
                         f'nonce="{p["nonce"]}", uri="{uri}", response="{response}", '
                         f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"{opaque}')
        self.send(self._register_request(authorization, expires))
        return self.receive()

    def reply(self, request: SipMessage, status: int, reason: str) -> None:
        """Answer a request Asterisk sent with a final response (no body)."""
        to = request.header("to")
        if ";tag=" not in to:
            to += f";tag={secrets.token_hex(4)}"
        vias = "".join(f"Via: {v}\r\n" for v in request.all("via"))
        self.send(f"SIP/2.0 {status} {reason}\r\n{vias}"
                  f"From: {request.header('from')}\r\nTo: {to}\r\n"
                  f"Call-ID: {request.header('call-id')}\r\nCSeq: {request.header('cseq')}\r\n"
                  "Content-Length: 0\r\n\r\n")
