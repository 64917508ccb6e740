"""Throwaway certificates for the desk-TLS tests, made with the openssl command (a host tool
of `make install`): an EC P-256 key is made in milliseconds, where RSA takes far longer."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=20)


def self_signed(folder: Path, name: str = "server", host: str = "127.0.0.1",
                ca: bool = False) -> KeyPair:
    """A self-signed certificate for ``host`` (IP address subject alternative name)."""
    folder.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    extensions = ["-addext", "basicConstraints=critical,CA:TRUE"] if ca else []
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "2",
             "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}", *extensions)
    return pair


def signed_by(ca: KeyPair, folder: Path, name: str) -> KeyPair:
    """A client certificate (CN ``name``) signed by ``ca``."""
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    csr = folder / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={name}")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-CAcreateserial", "-out", str(pair.cert), "-days", "2")
    return pair
