"""Desk phones over TLS with SRTP (issue 13, item 8), through a real Asterisk 22.

The session lab's desks are on UDP (the lab's contract) and its sipp desks cannot speak TLS
(Debian's sip-tester is built without OpenSSL), so each test here starts an Asterisk of its
own from the same chroot, rendered by ``ops.lab`` with ``VERIFYLINE_DESK_TLS_PORT`` set, on
fixed ports of this slot (tests/e2e/ports.py, TLS_LAB_*): it boots in under a second. No app
runs beside it: a registration and a call offered to a desk are Asterisk's alone. The desk
phone is ``tests/e2e/tlsphone.py``, a real SIP user agent over Python's ``ssl``.

    TlsDeskPhone (desk1)             Asterisk (transport-tls, self-signed certificate)
        | TLS handshake (verifies the server's certificate against it)
        |===================================|
        | REGISTER / 401 / REGISTER / 200   |  -> ARI /endpoints/PJSIP/desk1: online
        |<=================================>|
        |                  INVITE (SRTP SDP)|  <- ARI originate to PJSIP/desk1
        |<==================================|
        | 603 Decline / ACK                 |
        |<=================================>|
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ivr.config import Settings
from ops import lab
from tests.certs import KeyPair, self_signed, signed_by
from tests.e2e import ports
from tests.e2e.conftest import poll
from tests.e2e.tlsphone import TlsDeskPhone

HOST = "127.0.0.1"


def tls_env(home: Path, server: KeyPair, **more: str) -> dict[str, str]:
    return {**os.environ, "VERIFYLINE_HOME": str(home),
            "VERIFYLINE_SIP_PORT": str(ports.TLS_LAB_SIP),
            "VERIFYLINE_ARI_PORT": str(ports.TLS_LAB_ARI),
            "VERIFYLINE_RTP_PORTS": ports.TLS_LAB_RTP,
            "VERIFYLINE_DESKS": "desk1",
            "VERIFYLINE_DESK_TLS_PORT": str(ports.TLS_LAB_TLS),
            "VERIFYLINE_TLS_CERT_FILE": str(server.cert),
            "VERIFYLINE_TLS_KEY_FILE": str(server.key), **more}


@dataclass
class TlsAsterisk:
    settings: Settings
    ari: httpx.Client

    def phone(self, ca_file: Path, cert: KeyPair | None = None,
              max_version: ssl.TLSVersion | None = None) -> TlsDeskPhone:
        return TlsDeskPhone(HOST, self.settings.desk_tls_port, "desk1", "lab-desk1", ca_file,
                            (cert.cert, cert.key) if cert else None, max_version)

    def endpoint(self) -> dict[str, Any]:
        result: dict[str, Any] = self.ari.get("/endpoints/PJSIP/desk1").json()
        return result


@contextmanager
def tls_asterisk(env: dict[str, str]) -> Iterator[TlsAsterisk]:
    """An Asterisk of its own with desk TLS on; stopped (and its instance folder removed)
    afterwards, whatever happened."""
    settings = Settings.from_env(env).with_secrets()
    inst = lab.instance(settings)
    t0 = time.monotonic()
    try:
        lab.start_asterisk(inst)
        print(f"\n[tls] Asterisk with desk TLS ready in {time.monotonic() - t0:.2f} s")
        with httpx.Client(base_url=f"{settings.ari_url}/ari", timeout=5,
                          auth=(settings.ari_user, settings.ari_password)) as ari:
            yield TlsAsterisk(settings, ari)
            assert ari.get("/channels").json() == [], "a channel was left in Asterisk"
    finally:
        lab.stop_asterisk(inst)
        subprocess.run(["rm", "-rf", "--one-file-system", str(inst.outside)], check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> KeyPair:
    return self_signed(tmp_path_factory.mktemp("server"))


def test_given_desk_tls_on_when_a_desk_registers_over_tls_then_it_is_online_and_its_calls_offer_srtp(  # noqa: E501
        tmp_path, server):
    with tls_asterisk(tls_env(tmp_path / "home", server)) as asterisk:
        desk = asterisk.phone(server.cert)
        desk.connect()
        try:
            assert desk.tls_version in ("TLSv1.2", "TLSv1.3")
            assert desk.register().status == 200
            assert poll("desk1 online", lambda: asterisk.endpoint()["state"] == "online",
                        timeout=5)

            # when a call is offered to the desk, it comes over the same TLS connection
            # with SRTP required: RTP/SAVP and an SDES key
            offered = asterisk.ari.post("/channels", params={
                "endpoint": "PJSIP/desk1", "extension": "s", "context": "verifyline-desks",
                "timeout": 5})
            assert offered.status_code == 200, offered.text
            invite = desk.receive()
            assert invite.method == "INVITE"
            assert ";transport=tls" in invite.first_line.lower()
            assert "m=audio" in invite.body and "RTP/SAVP" in invite.body
            assert "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" in invite.body
            desk.reply(invite, 603, "Decline")
            assert desk.receive().method == "ACK"
            poll("the declined call gone",
                 lambda: asterisk.ari.get("/channels").json() == [], timeout=5)
        finally:
            desk.close()

        # a desk phone that speaks no newer TLS than 1.2 (many do) registers too
        older = asterisk.phone(server.cert, max_version=ssl.TLSVersion.TLSv1_2)
        older.connect()
        try:
            assert older.tls_version == "TLSv1.2"
            assert older.register().status == 200
        finally:
            older.close()


def test_given_a_ca_file_when_a_desk_connects_then_only_one_with_a_certificate_it_signed_registers(
        tmp_path, server):
    ca = self_signed(tmp_path / "ca", name="ca", ca=True)
    desk_cert = signed_by(ca, tmp_path / "ca", "desk1")
    env = tls_env(tmp_path / "home", server, VERIFYLINE_TLS_CA_FILE=str(ca.cert))
    with tls_asterisk(env) as asterisk:
        stranger = asterisk.phone(server.cert)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            stranger.connect()
            stranger.register()
        stranger.close()

        desk = asterisk.phone(server.cert, cert=desk_cert)
        desk.connect()
        try:
            assert desk.register().status == 200
            assert poll("desk1 online", lambda: asterisk.endpoint()["state"] == "online",
                        timeout=5)
        finally:
            desk.close()


def test_given_desk_tls_port_without_certificate_files_when_lab_up_then_refused_and_nothing_started(
        tmp_path, server):
    home = tmp_path / "home"
    for broken, named in (
            ({"VERIFYLINE_TLS_CERT_FILE": "", "VERIFYLINE_TLS_KEY_FILE": ""},
             "VERIFYLINE_TLS_CERT_FILE and VERIFYLINE_TLS_KEY_FILE"),
            ({"VERIFYLINE_TLS_CERT_FILE": str(tmp_path / "gone.crt")},
             "VERIFYLINE_TLS_CERT_FILE="),
    ):
        result = subprocess.run([sys.executable, "-m", "ops", "lab", "up"],
                                env={**tls_env(home, server), **broken},
                                capture_output=True, text=True, timeout=60)

        assert result.returncode == 1
        assert named in result.stderr
        settings = Settings.from_env(tls_env(home, server))
        inst = lab.instance(settings)
        assert lab.read_pid(inst.asterisk_pidfile) is None
        assert not lab.port_answers(settings)
        subprocess.run(["rm", "-rf", "--one-file-system", str(inst.outside)], check=False)
