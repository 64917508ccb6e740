"""The Asterisk lab: render the instance config, start and stop Asterisk, the ARI app and the
console.

Asterisk runs from a cached Debian sid chroot (see asterisk/provision.sh) with plain ``chroot``,
bound to loopback. Each ``VERIFYLINE_HOME`` gets its own instance folder inside the chroot, so
two labs with different ports run side by side. Processes are tracked by PID files under
``VERIFYLINE_HOME/run``; a defunct (zombie) process counts as stopped, since process 1 here
does not reap orphans.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ivr
from ari_app.client import AriClient
from ivr import prompts
from ivr.config import Settings, desk_password_variable
from ivr.exceptions import VerifyLineError
from ops import console

REPO = Path(__file__).resolve().parents[1]
PROVISION = REPO / "asterisk" / "provision.sh"
DIALPLANS = Path(ivr.__file__).resolve().parent / "dialplans"
# the wheel installs asterisk/conf/*.conf here (pyproject [tool.setuptools.data-files]), so an
# installed line renders its production configuration without a source checkout
INSTALLED_CONF = Path("share") / "verifyline" / "asterisk-conf"


def conf_templates(prefix: Path | None = None) -> Path:
    """Where the Asterisk configuration templates are: the checkout's asterisk/conf/, else the
    installed copy under the environment's prefix."""
    checkout = REPO / "asterisk" / "conf"
    if checkout.is_dir():
        return checkout
    installed = Path(prefix or sys.prefix) / INSTALLED_CONF
    if installed.is_dir():
        return installed
    raise LabError(f"no Asterisk configuration templates in {checkout} or {installed}")
MODULES_DIR = "/usr/lib/x86_64-linux-gnu/asterisk/modules"


class LabError(VerifyLineError):
    """The lab could not be started, stopped or inspected; the message says how to fix it."""


def cache_root(settings: Settings) -> Path:
    """The cached Asterisk chroot (under ``VERIFYLINE_CACHE``)."""
    return settings.cache_dir / "asterisk-sid"


def chroot_ready(root: Path) -> bool:
    return (root / ".verifyline-ready").exists()


def provision(settings: Settings) -> Path:
    """Build the cached chroot unless it is there already."""
    # provision.sh reads VERIFYLINE_CACHE itself: hand it the folder the settings chose
    env = {**os.environ, "VERIFYLINE_CACHE": str(settings.cache_dir)}
    result = subprocess.run(["bash", str(PROVISION)], stdout=subprocess.PIPE, text=True,
                            env=env)
    if result.returncode != 0:
        raise LabError("provisioning the Asterisk chroot failed (see the messages above); "
                       "it needs root, debootstrap and access to Debian's package mirror")
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Instance:
    """Where one lab's Asterisk lives, inside and outside the chroot."""

    settings: Settings
    root: Path

    @property
    def name(self) -> str:
        return hashlib.sha256(str(self.settings.home).encode()).hexdigest()[:12]

    @property
    def inside(self) -> str:
        """The instance folder as Asterisk sees it (inside the chroot)."""
        return f"/srv/verifyline/{self.name}"

    @property
    def outside(self) -> Path:
        return self.root / self.inside.lstrip("/")

    @property
    def conf_inside(self) -> str:
        return f"{self.inside}/etc/asterisk.conf"

    @property
    def run_dir(self) -> Path:
        return self.settings.run_dir

    @property
    def asterisk_pidfile(self) -> Path:
        return self.run_dir / "asterisk.pid"

    @property
    def app_pidfile(self) -> Path:
        """The ARI app itself (written by its supervisor at every start)."""
        return self.run_dir / "app.pid"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.run_dir / "supervisor.pid"

    @property
    def console_pidfile(self) -> Path:
        """The console's gunicorn master (``verifyline console`` execs it)."""
        return self.run_dir / "console.pid"

    @property
    def console_log(self) -> Path:
        """gunicorn's access and error log."""
        return self.settings.log_dir / "console.log"

    @property
    def asterisk_log(self) -> Path:
        return self.outside / "log" / "messages.log"

    def cli_command(self, command: str) -> list[str]:
        return ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", self.conf_inside,
                "-rx", command]


def instance(settings: Settings) -> Instance:
    return Instance(settings, cache_root(settings))


# --- configuration ---------------------------------------------------------------------------


def lab_desk_password(desk: str) -> str:
    """The password a lab desk phone gets when none is set (the lab's sipp desks use it)."""
    return f"lab-{desk}"


def desk_password(settings: Settings, desk: str) -> str:
    """A desk phone's password in the lab: the one set, else ``lab-<desk>``."""
    return settings.desk_password(desk) or lab_desk_password(desk)


def desk_passwords(settings: Settings, lab_passwords: bool) -> dict[str, str]:
    """Each desk's password; without ``lab_passwords`` every desk must have one set."""
    if not lab_passwords:
        missing = [desk_password_variable(d) for d in settings.desks
                   if settings.desk_password(d) is None]
        if missing:
            raise LabError(
                f"no desk-phone password set for {', '.join(missing)}: production files get no "
                "default password; set each variable (or render the lab's lab-<desk> "
                "passwords with --lab-passwords)")
    return {d: desk_password(settings, d) for d in settings.desks}


def render_desks(settings: Settings, lab_passwords: bool = False) -> str:
    passwords = desk_passwords(settings, lab_passwords)
    parts = ["; desk phones (generated from VERIFYLINE_DESKS)\n"]
    for desk in settings.desks:
        parts.append(
            f"\n[{desk}](desk-phone)\nauth = {desk}\naors = {desk}\n"
            f"\n[{desk}](desk-aor)\n"
            f"\n[{desk}](desk-auth)\nusername = {desk}\npassword = {passwords[desk]}\n"
        )
    return "".join(parts)


# A caller's phone that put the line on hold (sendonly/inactive) may rightly send no RTP at
# all, so a held caller is given several times the normal timeout before being called gone.
RTP_HOLD_FACTOR = 5


def rtp_timeout(settings: Settings) -> int:
    """Whole seconds for pjsip's ``rtp_timeout`` (0: off); a fraction rounds up, never to 0."""
    return math.ceil(settings.rtp_timeout)


# --- tls: desk phones over TLS with SRTP (VERIFYLINE_DESK_TLS_PORT; docs/operations.md) ------

# the names the lab gives its copies of the TLS files (Asterisk in the chroot sees only those)
TLS_FILES = {"cert": "desk-tls.crt", "key": "desk-tls.key", "ca": "desk-tls-ca.crt"}


def tls_files(settings: Settings) -> dict[str, Path]:
    """The desk TLS files set (cert, key and perhaps ca), each checked: readable PEM, the key
    that of the certificate, the CA file a list of certificates. LabError says which is not."""
    if not settings.desk_tls:
        return {}
    assert settings.tls_cert_file is not None and settings.tls_key_file is not None
    files = {"cert": settings.tls_cert_file, "key": settings.tls_key_file}
    if settings.tls_ca_file is not None:
        files["ca"] = settings.tls_ca_file
    variables = {"cert": "VERIFYLINE_TLS_CERT_FILE", "key": "VERIFYLINE_TLS_KEY_FILE",
                 "ca": "VERIFYLINE_TLS_CA_FILE"}
    for role, path in files.items():
        try:
            with path.open("rb") as f:
                f.read(1)
        except OSError as e:
            raise LabError(f"{variables[role]}={path}: cannot be read ({e.strerror}); desk "
                           "phones over TLS need it") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(files["cert"], files["key"])
    except ssl.SSLError as e:
        raise LabError(f"VERIFYLINE_TLS_CERT_FILE={files['cert']} and VERIFYLINE_TLS_KEY_FILE="
                       f"{files['key']} are not a PEM certificate and its private key "
                       f"({e.reason or e})") from None
    if "ca" in files:
        try:
            context.load_verify_locations(cafile=files["ca"])
        except ssl.SSLError as e:
            raise LabError(f"VERIFYLINE_TLS_CA_FILE={files['ca']} is not a PEM list of "
                           f"CA certificates ({e.reason or e})") from None
    return files


def tls_transport(settings: Settings, paths: Mapping[str, str]) -> str:
    """The ``transport-tls`` section for desk phones (empty when TLS is off)."""
    if not settings.desk_tls:
        return ""
    lines = [
        "",
        "; desk phones over TLS (VERIFYLINE_DESK_TLS_PORT)",
        "[transport-tls]",
        "type = transport",
        "protocol = tls",
        f"bind = {settings.bind_address}:{settings.desk_tls_port}",
        f"cert_file = {paths['cert']}",
        f"priv_key_file = {paths['key']}",
        # pjproject's default is TLS 1.0 alone; sslv23 negotiates the best both ends support
        "method = sslv23",
        # desks are clients: Asterisk never connects out to verify a server here
        "verify_server = no",
    ]
    if "ca" in paths:
        lines += [f"ca_list_file = {paths['ca']}",
                  "; a desk phone must present a certificate signed by that CA",
                  "verify_client = yes", "require_client_cert = yes"]
    else:
        lines += ["verify_client = no"]
    return "\n".join(lines) + "\n"


def desk_media_encryption(settings: Settings) -> str:
    """The desk endpoints' SRTP lines: none over UDP; SDES over TLS, required or optimistic."""
    if not settings.desk_tls:
        return "media_encryption = no\n"
    optimistic = "yes" if settings.desk_srtp == "optimistic" else "no"
    return ("; SRTP keys (SDES) travel in the SDP, which TLS protects\n"
            "media_encryption = sdes\n"
            f"media_encryption_optimistic = {optimistic}\n")


def template_values(settings: Settings, spool_dir: str,
                    tls_paths: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "DESK_TRANSPORT": "transport-tls" if settings.desk_tls else "transport-udp",
        "DESK_TLS_TRANSPORT": tls_transport(settings, tls_paths or {}),
        "DESK_MEDIA_ENCRYPTION": desk_media_encryption(settings),
        "BIND": settings.bind_address,
        "SIP_PORT": str(settings.sip_port),
        "ARI_PORT": str(settings.ari_port),
        "ARI_USER": settings.ari_user,
        "ARI_PASSWORD": settings.ari_password,
        "RTP_START": str(settings.rtp_ports[0]),
        "RTP_END": str(settings.rtp_ports[1]),
        "TRUNK_MATCH": ",".join(settings.trunk_match),
        "LINE_NUMBER": settings.line_number,
        "APP": settings.app_name,
        "DESK_DIAL": "&".join(f"PJSIP/{d}" for d in settings.desks),
        "SPOOL_DIR": spool_dir,
        "FALLBACK_RING": str(int(settings.ring_timeout)),
        "OVERFLOW_URI": settings.overflow_uri,
        "RTP_TIMEOUT": str(rtp_timeout(settings)),
        "RTP_TIMEOUT_HOLD": str(rtp_timeout(settings) * RTP_HOLD_FACTOR),
    }


def render(text: str, values: Mapping[str, str], source: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    if "@@" in text:
        start = text.index("@@")
        raise LabError(f"{source}: unknown placeholder {text[start:start + 30]!r}")
    return text


def render_config(settings: Settings, etc: Path, spool_dir: str, *,
                  lab_passwords: bool = False, etc_inside: str | None = None) -> list[Path]:
    """Write the Asterisk configuration for these settings into ``etc``; return the files.

    Refuses (LabError, nothing written) unless every desk has a password set, or
    ``lab_passwords`` lets the unset ones be ``lab-<desk>`` (the lab only), and while desk TLS
    is on with files that are not a readable certificate and its key. The TLS files are named
    where they are, unless ``etc_inside`` (where Asterisk, in a chroot, sees ``etc``) is given:
    then they are copied into ``etc`` and named there."""
    if not settings.ari_password:
        raise LabError("no ARI password: call Settings.with_secrets() first")
    desks_conf = render_desks(settings, lab_passwords)
    tls = tls_files(settings)
    if etc_inside is None:
        tls_paths = {role: str(path) for role, path in tls.items()}
    else:
        tls_paths = {role: f"{etc_inside}/{TLS_FILES[role]}" for role in tls}
    etc.mkdir(parents=True, exist_ok=True)
    values = template_values(settings, spool_dir, tls_paths)
    written = []
    if etc_inside is not None:
        for role, path in tls.items():
            out = etc / TLS_FILES[role]
            shutil.copyfile(path, out)
            written.append(out)
    for template in sorted(conf_templates().glob("*.conf")):
        out = etc / template.name
        out.write_text(render(template.read_text(), values, str(template)))
        written.append(out)
    for dialplan in sorted(DIALPLANS.glob("*.conf")):
        out = etc / dialplan.name
        shutil.copyfile(dialplan, out)
        written.append(out)
    desks = etc / "pjsip_desks.conf"
    desks.write_text(desks_conf)
    written.append(desks)
    for path in written:
        path.chmod(0o600)
    return written


def asterisk_conf(inside: str) -> str:
    return f"""[directories]
astetcdir => {inside}/etc
astmoddir => {MODULES_DIR}
astvarlibdir => /var/lib/asterisk
astdbdir => {inside}/lib
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {inside}/astspool
astrundir => {inside}/run
astlogdir => {inside}/log
astcachedir => {inside}/cache
astsbindir => /usr/sbin

[options]
verbose = 0
debug = 0
"""


def prepare(inst: Instance) -> None:
    """Create the instance folders, render the config and install the prompts."""
    out = inst.outside
    for sub in ("etc", "run", "log", "lib", "astspool", "astspool/recording", "cache", "spool"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    render_config(inst.settings, out / "etc", f"{inst.inside}/spool", lab_passwords=True,
                  etc_inside=f"{inst.inside}/etc")
    (out / "etc" / "asterisk.conf").write_text(asterisk_conf(inst.inside))
    sounds = _resolve_inside(inst.root, "/usr/share/asterisk/sounds/en") / prompts.SOUND_FOLDER
    for lang in prompts.LANGUAGES:
        (sounds / lang).mkdir(parents=True, exist_ok=True)
        for wav in sorted((prompts.HERE / lang).glob("*.wav")):
            shutil.copyfile(wav, sounds / lang / wav.name)
    home = inst.settings.home
    for sub in ("run", "logs"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    _link(home / "spool", out / "spool")
    _link(home / "asterisk", out)


def _resolve_inside(root: Path, path: str) -> Path:
    """Follow symlinks as the chroot sees them (sounds/en -> /etc/alternatives/... is absolute)."""
    for _ in range(20):
        here = root / path.lstrip("/")
        if not here.is_symlink():
            return here
        target = os.readlink(here)
        path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
    raise LabError(f"too many symlinks under {root} at {path}")


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and link.resolve() == target.resolve():
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        # an old real folder: keep whatever a previous run spooled there
        for item in link.iterdir():
            shutil.move(str(item), target / item.name)
        link.rmdir()
    link.symlink_to(target)


# --- processes -----------------------------------------------------------------------------


def running(pid: int) -> bool:
    """Alive and not a zombie (a defunct process counts as stopped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if running(pid) else None


def stop_pid(pidfile: Path, timeout: float = 10.0) -> bool:
    """Stop the process in ``pidfile`` (TERM, then KILL); return True if one was running."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return False
    if not running(pid):
        _reap(pid)  # it died on its own (perhaps killed): collect it if it is our child
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running(pid):
        os.kill(pid, signal.SIGKILL)
        while running(pid):
            time.sleep(0.05)
    _reap(pid)
    pidfile.unlink(missing_ok=True)
    return True


# Processes this Python process started: kept so they are reaped here (no zombie, no
# ResourceWarning) when stopped from the same process; a CLI that exits just orphans them.
_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap(pid: int) -> None:
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _spawn(argv: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(env) if env is not None else None)
    _children[proc.pid] = proc
    return proc.pid


def ari_ready(settings: Settings) -> bool:
    """ARI answers our credentials."""
    return AriClient.from_settings(settings).probe_info().ok


def port_answers(settings: Settings) -> bool:
    """Does anything answer HTTP on the ARI port (whatever its credentials)?"""
    return AriClient.from_settings(settings).port_answers()


def app_connected(inst: Instance) -> bool:
    """True when the app process in the PID file says its websocket is connected and Asterisk
    lists the application. (Asterisk keeps listing an app whose socket is gone while it still
    holds channels, so the listing alone proves nothing.)"""
    pid = read_pid(inst.app_pidfile)
    try:
        ready = int((inst.run_dir / "app.ready").read_text().strip())
    except (OSError, ValueError):
        return False
    return pid is not None and ready == pid and app_registered(inst.settings)


def app_serving(settings: Settings) -> bool:
    """The app process that wrote ``run/app.ready`` is alive and Asterisk lists the
    application: the app's health where no PID file is kept (a container, a systemd unit)."""
    try:
        ready = int((settings.run_dir / "app.ready").read_text().strip())
    except (OSError, ValueError):
        return False
    return running(ready) and app_registered(settings)


def app_registered(settings: Settings) -> bool:
    """True when Asterisk lists the application."""
    return AriClient.from_settings(settings).app_registered()


def cli(inst: Instance, command: str, timeout: float = 10.0) -> str:
    result = subprocess.run(inst.cli_command(command), capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise LabError(f"asterisk -rx {command!r} failed: {result.stderr.strip() or result.stdout}")
    return result.stdout


def _wait(what: str, check: object, timeout: float, alive: tuple[Path, str] | None = None
          ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        if alive is not None and read_pid(alive[0]) is None:
            raise LabError(f"{what}: the process died; see {alive[1]}")
        time.sleep(0.05)
    raise LabError(f"{what}: not ready after {timeout:.0f} s")


def start_asterisk(inst: Instance) -> bool:
    """Start Asterisk unless it runs; wait until fully booted and ARI answers."""
    settings = inst.settings
    if read_pid(inst.asterisk_pidfile) is not None:
        # ours is running (perhaps still booting): wait for it rather than start a second one
        _wait("Asterisk HTTP/ARI", lambda: ari_ready(settings), 30,
              (inst.asterisk_pidfile, str(settings.log_dir / "asterisk.out")))
        return False
    if port_answers(settings):
        raise LabError(f"something else already answers on {settings.ari_url} (another lab "
                       "or Asterisk?); stop it or choose another VERIFYLINE_ARI_PORT")
    prepare(inst)
    stdout_log = settings.log_dir / "asterisk.out"
    # chroot execs asterisk, so the PID we get is Asterisk's own
    pid = _spawn(["chroot", str(inst.root), "/usr/sbin/asterisk", "-f", "-n", "-C",
                  inst.conf_inside], stdout_log, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    inst.asterisk_pidfile.write_text(f"{pid}\n")
    _wait("Asterisk HTTP/ARI", lambda: ari_ready(settings), 30,
          (inst.asterisk_pidfile, str(stdout_log)))
    cli(inst, "core waitfullybooted", timeout=30)
    return True


def start_app(inst: Instance) -> bool:
    """Start the ARI app under its supervisor unless that runs; wait until Asterisk lists the
    app (calls get answered). A running supervisor is only waited for: it restarts the app."""
    settings = inst.settings
    if app_connected(inst):
        return False
    log_path = settings.log_dir / "app.log"
    if read_pid(inst.supervisor_pidfile) is not None:
        _wait("ARI app (restarted by its supervisor)", lambda: app_connected(inst), 30,
              (inst.supervisor_pidfile, str(log_path)))
        return False
    stop_pid(inst.app_pidfile)
    (inst.run_dir / "app.ready").unlink(missing_ok=True)
    env = dict(os.environ)
    env["VERIFYLINE_HOME"] = str(settings.home)
    env["VERIFYLINE_ARI_PASSWORD"] = settings.ari_password
    pid = _spawn([sys.executable, "-m", "ops", "supervise"], log_path, env)
    inst.supervisor_pidfile.write_text(f"{pid}\n")
    _wait("ARI app", lambda: app_connected(inst), 30, (inst.supervisor_pidfile, str(log_path)))
    return True


def stop_app(inst: Instance) -> bool:
    """Stop the supervisor (which stops the app), then make sure the app is gone too."""
    supervisor = stop_pid(inst.supervisor_pidfile)
    app = stop_pid(inst.app_pidfile)
    (inst.run_dir / "app.ready").unlink(missing_ok=True)
    return supervisor or app


def console_answers(settings: Settings) -> bool:
    """The console answers ``GET /healthz`` with 200 (it serves pages and reads the store)."""
    return console.probe(settings) == 200


def start_console(inst: Instance) -> bool:
    """Start the console (gunicorn, ``verifyline console``) unless it runs; wait until
    ``GET /healthz`` answers 200."""
    settings = inst.settings
    log_path = inst.console_log
    what = f"console {console.url(settings)}/healthz"
    if read_pid(inst.console_pidfile) is not None:
        _wait(what, lambda: console_answers(settings), 30, (inst.console_pidfile, str(log_path)))
        return False
    if console.probe(settings) is not None:
        raise LabError(f"something else already answers on {console.url(settings)} (another "
                       "lab's console?); stop it or choose another VERIFYLINE_CONSOLE_PORT")
    env = dict(os.environ)
    env["VERIFYLINE_HOME"] = str(settings.home)
    env["VERIFYLINE_ARI_PASSWORD"] = settings.ari_password
    env["VERIFYLINE_CONSOLE_PORT"] = str(settings.console_port)
    # `verifyline console` execs gunicorn: the PID is the gunicorn master's
    pid = _spawn([sys.executable, "-m", "ops", "console"], log_path, env)
    inst.console_pidfile.write_text(f"{pid}\n")
    _wait(what, lambda: console_answers(settings), 30, (inst.console_pidfile, str(log_path)))
    return True


def stop_console(inst: Instance) -> bool:
    """TERM the gunicorn master (its workers finish within its graceful timeout), then KILL."""
    return stop_pid(inst.console_pidfile)


def stop_asterisk(inst: Instance) -> bool:
    return stop_pid(inst.asterisk_pidfile, timeout=15)


def up(settings: Settings) -> Instance:
    """Start Asterisk, the app and the console (idempotent); return once a call would be
    answered and the console answers."""
    inst = instance(settings)
    if not chroot_ready(inst.root):
        provision(settings)
    start_asterisk(inst)
    start_app(inst)
    # after the app, which migrates the store; the console migrates too, but need not race it
    start_console(inst)
    return inst


def down(settings: Settings) -> list[str]:
    """Stop exactly what ``up`` started, by PID; return what was stopped."""
    inst = instance(settings)
    stopped = []
    if stop_console(inst):
        stopped.append("console")
    if stop_app(inst):
        stopped.append("app")
    if stop_asterisk(inst):
        stopped.append("asterisk")
    return stopped
