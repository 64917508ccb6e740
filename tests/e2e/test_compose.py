"""The production stack as containers, for real: deploy/images/build.sh builds the images with
no registry, docker-compose.yml brings up PostgreSQL, Asterisk, the ARI app and the console on
this slot's ports, and a sipp caller on the trunk reaches a sipp desk through the containerised
Asterisk; the call is then read from the containers' PostgreSQL, through the console (HTTP
sign-in) and the CLI, and `down` leaves nothing running.

Needs a Docker engine (DOCKER_HOST, else the default socket) and Debian's docker-compose (or
the compose v2 plugin): `make test-compose` installs docker.io, starts a dockerd of its own when
none runs, and runs this file. Marked ``compose``: `make test` leaves it out (addopts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import ports
from tests.e2e.conftest import poll
from tests.e2e.phones import ANNOUNCE_MS, Caller, DeskPhone, dtmf_ms

pytestmark = [pytest.mark.e2e, pytest.mark.compose]

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
BUILD = REPO / "deploy" / "images" / "build.sh"
DEMO_ROSTER = REPO / "ivr" / "demo_roster.csv"
PROJECT = f"verifyline-slot{ports.SLOT}"
# PostgreSQL's port: 18055 + 100k, in the slot's console block (18080 + 100k), which no other
# slot and nothing else uses
PG_PORT = ports.CONSOLE_PORT - 25
LINE = "0800123456"
AUDITOR = "auditor1"
SERVICES = ("postgres", "asterisk", "ari-app", "console")
SECRETS = {
    "VERIFYLINE_ARI_PASSWORD": "compose-ari-secret",
    "VERIFYLINE_CONSOLE_SECRET": "compose-console-secret",
    "VERIFYLINE_DB_PASSWORD": "compose-db-secret",
}
ENV = {
    **SECRETS,
    "VERIFYLINE_PG_PORT": str(PG_PORT),
    "VERIFYLINE_SIP_PORT": str(ports.SIP_PORT),
    "VERIFYLINE_ARI_PORT": str(ports.ARI_PORT),
    "VERIFYLINE_CONSOLE_PORT": str(ports.CONSOLE_PORT),
    "VERIFYLINE_RTP_PORTS": ports.RTP_PORTS,
    "VERIFYLINE_OVERFLOW_URI": f"sip:overflow@127.0.0.1:{ports.OVERFLOW_PORT}",
    "VERIFYLINE_TRUNK_URI": f"sip:127.0.0.2:{ports.CALLBACK_NUMBER_SIP}",
    "VERIFYLINE_DESKS": "desk1",
    # tests/e2e/phones.py's desk phones sign in with the lab's password
    "VERIFYLINE_DESK_PASSWORD_DESK1": "lab-desk1",
    "VERIFYLINE_RTP_TIMEOUT": "0",  # sipp callers send no audio
}


def compose_command() -> list[str]:
    """Debian 12's docker-compose (1.29), else the compose v2 plugin."""
    return ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]


@dataclass
class Stack:
    project_dir: Path
    build_seconds: float
    up_seconds: float
    ids: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*compose_command(), "-f", str(COMPOSE_FILE), "--project-directory",
             str(self.project_dir), "-p", PROJECT, *args],
            input=stdin, capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"compose {' '.join(args)}: {result.stderr}"
        return result

    def exec(self, service: str, *argv: str, stdin: str | None = None) -> str:
        """Run a command in the service's container (``docker exec``: what ``compose exec``
        does, without compose's own start-up time)."""
        result = subprocess.run(["docker", "exec", "-i", self.container(service), *argv],
                                input=stdin, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{service}: {' '.join(argv)}: {result.stderr}"
        return result.stdout

    def container(self, service: str) -> str:
        """The service's container (Docker restarts that same container, so it is kept)."""
        if service not in self.ids:
            found = self.compose("ps", "-q", service).stdout.split()
            assert len(found) == 1, f"{service}: containers {found}"
            self.ids[service] = found[0]
        return self.ids[service]

    def sql(self, query: str) -> list[list[str]]:
        """Rows from the containers' PostgreSQL (psql in the postgres container)."""
        out = self.exec("postgres", "psql", "-h", "/run/postgresql", "-p", str(PG_PORT),
                        "-U", "postgres", "-d", "verifyline", "-tA", "-F", "|", "-c", query)
        return [line.split("|") for line in out.splitlines() if line]

    def containers(self, *, all_states: bool) -> list[str]:
        """The project's containers (running only, or in any state), from Docker itself."""
        out = subprocess.run(
            ["docker", "ps", "-q", *(["-a"] if all_states else []),
             "--filter", f"label=com.docker.compose.project={PROJECT}"],
            capture_output=True, text=True, check=True, timeout=30).stdout
        return out.split()

    def health(self) -> dict[str, str]:
        states = {}
        for cid in self.containers(all_states=False):
            info = _inspect(cid)
            service = info["Config"]["Labels"]["com.docker.compose.service"]
            states[service] = (info["State"].get("Health") or {}).get("Status", "none")
        return states


def write_env(folder: Path, env: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    (folder / ".env").chmod(0o600)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, timeout=30)
    assert docker.returncode == 0, (
        f"no Docker engine answers ({docker.stderr.strip()}): run `make test-compose`, which "
        "installs docker.io and starts dockerd")
    t0 = time.monotonic()
    build = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stderr[-3000:]
    built = time.monotonic() - t0
    project_dir = tmp_path_factory.mktemp("compose")
    write_env(project_dir, ENV)
    s = Stack(project_dir, built, 0.0)
    s.compose("down", "-v", "--remove-orphans")  # a previous run killed half-way
    t1 = time.monotonic()
    try:
        s.compose("up", "-d")
        poll("every service healthy", lambda: all(
            s.health().get(name) == "healthy" for name in SERVICES), timeout=120, every=0.5)
        s.up_seconds = time.monotonic() - t1
        print(f"\n[figure] images built in {built:.1f} s; stack up and healthy in "
              f"{s.up_seconds:.1f} s")
        yield s
    finally:
        if s.containers(all_states=True):
            logs = s.compose("logs", "--no-color", "--tail", "40", check=False).stdout
            print(logs[-6000:])
        s.compose("down", "-v", "--remove-orphans", check=False)


def test_given_no_secrets_when_compose_is_asked_to_start_then_it_refuses(tmp_path):
    for missing in SECRETS:
        write_env(tmp_path, {k: v for k, v in ENV.items() if k != missing})
        result = subprocess.run(
            [*compose_command(), "-f", str(COMPOSE_FILE), "--project-directory", str(tmp_path),
             "-p", "verifyline-refused", "config"], capture_output=True, text=True, timeout=60)
        assert result.returncode != 0, f"compose accepted a stack without {missing}"
        assert f"set {missing} in .env" in result.stderr


def test_given_the_stack_when_a_caller_keys_an_on_duty_number_then_the_containerised_line_bridges_a_desk_and_logs_the_call(  # noqa: E501
        stack, tmp_path):
    assert "imported 4 officer" in stack.exec(
        "ari-app", "verifyline", "roster", "import", "/dev/stdin",
        stdin=DEMO_ROSTER.read_text())
    desk = DeskPhone("desk1", ports.SIP_PORT, tmp_path)
    ari = httpx.Client(base_url=f"http://127.0.0.1:{ports.ARI_PORT}/ari",
                       auth=("verifyline", SECRETS["VERIFYLINE_ARI_PASSWORD"]), timeout=5)
    desk.start()
    try:
        poll("desk1 registered with the containerised Asterisk",
             lambda: ari.get("/endpoints/PJSIP/desk1").json().get("state") == "online")
        t0 = time.monotonic()
        caller = Caller(ports.SIP_PORT, LINE, tmp_path, "07700900471", digits="123456#1",
                        wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 1500).start()
        assert caller.wait() == 0, caller.failure()
        print(f"\n[figure] a call through the containers, dial to hang-up: "
              f"{time.monotonic() - t0:.2f} s")
        assert desk.received()[:2] == ["INVITE", "ACK"]

        rows = poll("the call's row, ended, in the containers' PostgreSQL", lambda: stack.sql(
            "select c.id, c.digits_entered, c.roster_result, s.desk, c.path, c.end_reason, "
            "c.recording from call c left join supervisor s on s.id = c.supervisor_id "
            "where c.caller_number = '07700900471' and c.ended_at is not null"))
        assert len(rows) == 1
        call_id, digits, result, desk_name, path, end_reason, recording = rows[0]
        assert (digits, result, desk_name, path, end_reason) == (
            "123456", "on_duty", "desk1", "ari", "caller_hangup")

        # the CLI in the console's container reads the same database
        listed = json.loads(stack.exec("console", "verifyline", "calls", "list", "--json"))
        assert [c["warrant_number"] for c in listed if c["id"] == int(call_id)] == ["123456"]

        # the console over HTTP: an auditor signs in and finds the call and its recording,
        # which Asterisk wrote into the recordings volume the console reads
        stack.exec("console", "verifyline", "users", "add", AUDITOR, "--role", "auditor",
                   stdin="auditor-password-1\n")
        with httpx.Client(base_url=f"http://127.0.0.1:{ports.CONSOLE_PORT}",
                          timeout=10) as web:
            form = web.get("/login").text
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
            assert token is not None, form[:500]
            signed_in = web.post("/login", data={"username": AUDITOR,
                                                 "password": "auditor-password-1",
                                                 "csrf_token": token.group(1)})
            assert signed_in.status_code == 302, signed_in.text[:500]
            found = web.get("/encounters", headers={"Accept": "application/json"}).json()["rows"]
            row = next(r for r in found if r["call_id"] == int(call_id))
            assert (row["warrant_number"], row["desk"], row["recording"]) == (
                "123456", "desk1", True)
            assert recording
            audio = web.get(f"/calls/{call_id}/recording")
            assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
            assert audio.content[:4] == b"RIFF"
    finally:
        desk.stop()
        ari.close()


def test_given_the_stack_then_asterisk_runs_the_rendered_configuration_and_no_lab_state_came_along(
        stack):
    # the chroot's lab instances (their configs hold secrets) were left out of the image
    assert stack.exec("asterisk", "sh", "-c", "test -e /srv/verifyline || echo absent"
                      ).strip() == "absent"
    endpoints = stack.exec("asterisk", "asterisk", "-C", "/etc/verifyline-asterisk/asterisk.conf",
                           "-rx", "pjsip show endpoints")
    assert "desk1" in endpoints and "desk2" not in endpoints  # VERIFYLINE_DESKS=desk1
    assert "ok ari" in stack.exec("ari-app", "verifyline", "probe", "ari").lower()


def test_given_the_stack_then_no_service_runs_as_root(stack):
    for service in SERVICES:
        pid = _inspect(stack.container(service))["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uid = re.search(r"^Uid:\s+(\d+)", status, re.M)  # the process's real uid
        assert uid is not None and int(uid.group(1)) != 0, f"{service} runs as root"


def test_given_the_stack_when_the_app_process_is_killed_then_docker_restarts_it_and_it_reconnects(
        stack):
    cid = stack.container("ari-app")
    before = _inspect(cid)
    t0 = time.monotonic()

    os.kill(before["State"]["Pid"], signal.SIGKILL)  # from the host, as the OOM killer would

    poll("Docker to restart the app", lambda: _inspect(cid)["RestartCount"]
         > before["RestartCount"], timeout=30, every=0.2)
    poll("the restarted app healthy (connected, listed by Asterisk)",
         lambda: stack.health().get("ari-app") == "healthy", timeout=60, every=0.5)
    print(f"\n[figure] app killed -> restarted and healthy: {time.monotonic() - t0:.1f} s")
    assert _inspect(cid)["State"]["Pid"] != before["State"]["Pid"]


def test_given_the_app_container_stopped_when_called_then_the_fallback_reaches_a_desk_and_the_restarted_app_logs_it(  # noqa: E501
        stack, tmp_path):
    # the dialplan's fallback spools the call in the spool volume (Asterisk's uid), and the app
    # (the same uid, its own container) ingests it when it is back
    cid = stack.container("ari-app")
    ari = httpx.Client(base_url=f"http://127.0.0.1:{ports.ARI_PORT}/ari",
                       auth=("verifyline", SECRETS["VERIFYLINE_ARI_PASSWORD"]), timeout=5)
    desk = DeskPhone("desk1", ports.SIP_PORT, tmp_path)
    subprocess.run(["docker", "stop", cid], check=True, capture_output=True, timeout=60)
    try:
        poll("Asterisk to drop the app", lambda: ari.get("/applications/verifyline").status_code
             == 404, timeout=15)
        desk.start()
        poll("desk1 registered", lambda: ari.get("/endpoints/PJSIP/desk1").json().get("state")
             == "online")
        caller = Caller(ports.SIP_PORT, LINE, tmp_path, "07700900472", digits="123456#",
                        wait_ms=6000).start()
        assert caller.wait() == 0, caller.failure()
        assert desk.received()[:2] == ["INVITE", "ACK"]
    finally:
        desk.stop()
        subprocess.run(["docker", "start", cid], check=True, capture_output=True, timeout=60)
        ari.close()

    rows = poll("the fallback call logged from the spool", lambda: stack.sql(
        "select c.path, s.desk, c.end_reason from call c left join supervisor s "
        "on s.id = c.supervisor_id where c.caller_number = '07700900472' "
        "and c.ended_at is not null"), timeout=60, every=0.5)
    assert rows == [["fallback", "desk1", "caller_hangup"]]
    poll("the app healthy again", lambda: stack.health().get("ari-app") == "healthy",
         timeout=60, every=0.5)


def test_given_the_stack_when_compose_down_then_nothing_is_left_running(stack):
    assert len(stack.containers(all_states=False)) == len(SERVICES)

    t0 = time.monotonic()
    stack.compose("down")
    print(f"\n[figure] compose down in {time.monotonic() - t0:.1f} s")

    assert stack.containers(all_states=True) == []
    for port in (ports.ARI_PORT, ports.CONSOLE_PORT, PG_PORT):
        assert not _tcp_answers(port), f"something still listens on 127.0.0.1:{port}"
    assert _udp_free(ports.SIP_PORT), f"something still holds SIP's UDP port {ports.SIP_PORT}"
    volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                              f"label=com.docker.compose.project={PROJECT}"],
                             capture_output=True, text=True, check=True, timeout=30).stdout
    # the data outlives the containers (down without -v): database, recordings, spool, journal
    assert {f"{PROJECT}_{v}" for v in ("database", "recordings", "spool", "journal")} <= set(
        volumes.split())


def _inspect(container: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(subprocess.run(
        ["docker", "inspect", container], capture_output=True, text=True, check=True,
        timeout=30).stdout)[0]
    return found


def _tcp_answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
