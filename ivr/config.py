"""Typed settings: defaults bound to loopback, overridden by ``VERIFYLINE_*`` environment variables.

The dataclasses below are the one defaults table: ``from_env`` reads every ``VERIFYLINE_*``
variable there is (no other module reads the environment for a setting) and falls back to the
field defaults, each written once.

Secrets have no default: the ARI password is generated on first use and kept under
``VERIFYLINE_HOME`` (mode 0600) when ``VERIFYLINE_ARI_PASSWORD`` is unset; a desk phone's
password is only what ``VERIFYLINE_DESK_PASSWORD_<DESK>`` says (the lab's ``lab-<desk>`` is
the lab's business, never a production default).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeGuard, get_args

from ivr.exceptions import ConfigError

APP_NAME = "verifyline"
# purge: retention periods are whole days up to ten years; the hash key is long enough that
# guessing it is out of reach (a generated one is 43 characters)
MAX_RETAIN_DAYS = 3650
MIN_RETENTION_KEY = 32


def _int(env: Mapping[str, str], name: str, default: int, lo: int = 0, hi: int = 65535) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} is outside {lo}..{hi}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float,
             allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not (value >= 0 if allow_zero else value > 0) or value > 3600:
        low = "0 (off)" if allow_zero else "more than 0"
        raise ConfigError(f"{name}={value} must be {low} and at most 3600 seconds")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "yes", "on", "true"):
        return True
    if raw in ("0", "no", "off", "false"):
        return False
    raise ConfigError(f"{name}={raw!r} must be on or off")


def _port_range(env: Mapping[str, str], name: str, default: tuple[int, int]) -> tuple[int, int]:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        lo_s, hi_s = raw.split("-", 1)
        lo, hi = int(lo_s), int(hi_s)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} must look like 20000-20999") from None
    if not 1024 <= lo < hi <= 65535:
        raise ConfigError(f"{name}={raw!r}: need 1024 <= start < end <= 65535")
    return lo, hi


# how free desk phones are rung: the one idle longest, then the next; or all of them at once
Strategy = Literal["longest_idle", "ring_all"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)


def _is_strategy(value: str) -> TypeGuard[Strategy]:
    return value in STRATEGIES


# how a TLS desk's media is protected (VERIFYLINE_DESK_SRTP)
DeskSrtp = Literal["required", "optimistic"]
DESK_SRTP: tuple[DeskSrtp, ...] = get_args(DeskSrtp)


def _is_desk_srtp(value: str) -> TypeGuard[DeskSrtp]:
    return value in DESK_SRTP


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).resolve() if raw else None


def desk_password_variable(desk: str) -> str:
    """The variable that holds this desk phone's digest password."""
    return f"VERIFYLINE_DESK_PASSWORD_{desk.upper()}"


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """Where the Asterisk chroot is cached when ``VERIFYLINE_CACHE`` is unset (XDG)."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / APP_NAME


LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _is_log_format(value: str) -> TypeGuard[LogFormat]:
    return value in LOG_FORMATS


@dataclass(frozen=True)
class EntrySettings:
    """How the caller keys the warrant number."""

    min_digits: int = 4
    max_digits: int = 10
    # seconds of silence heard while the line waits for the first key: the promise is at
    # most 5 s of dead air, and 4 keeps it with a margin (issue 9, item 7)
    first_digit_timeout: float = 4.0
    inter_digit_timeout: float = 4.0
    max_attempts: int = 3
    confirm_timeout: float = 3.0


@dataclass(frozen=True)
class Settings:
    """Everything the line needs to run; see docs/lab.md for each variable."""

    home: Path
    sip_port: int = 5060
    ari_port: int = 8088
    ari_user: str = APP_NAME
    ari_password: str = ""
    db_url: str = ""
    line_number: str = "0800123456"
    rtp_ports: tuple[int, int] = (20000, 20999)
    desks: tuple[str, ...] = ("desk1", "desk2", "desk3", "desk4")
    ring_timeout: float = 20.0
    strategy: Strategy = "longest_idle"
    hold_interval: float = 8.0
    wrap_up: float = 30.0
    auto_pause_after: int = 3
    queue_max_wait: float = 120.0
    whisper_timeout: float = 3.0
    sweep_grace: float = 10.0
    # a trunk caller with no RTP for this long is hung up by Asterisk (0: off); see docs/lab.md
    rtp_timeout: float = 60.0
    recording: bool = True
    rate_limit: int = 5
    rate_window: float = 600.0
    emergency_endpoint: str = "overflow"
    overflow_uri: str = "sip:overflow@127.0.0.1:5099"
    # a desk held on the console stays in wrap-up until the call's outcome is recorded
    outcome_required: bool = True
    # where a callback from a desk is sent: the number as the user part of this URI's host
    trunk_uri: str = "sip:127.0.0.2:5060"
    entry: EntrySettings = field(default_factory=EntrySettings)
    app_name: str = APP_NAME
    bind_address: str = "127.0.0.1"
    # the desk passwords set through VERIFYLINE_DESK_PASSWORD_<DESK>, as (desk, password)
    # pairs (a tuple keeps the settings hashable); a desk without one has none
    desk_passwords: tuple[tuple[str, str], ...] = ()
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(os.environ))
    # the supervisors' console (docs/console.md)
    console_port: int = 8080
    console_secret: str = ""  # generated and kept under home when unset (with_secrets)
    idle_timeout: float = 900.0  # a console session idle this long must sign in again
    # VERIFYLINE_RECORDINGS_DIR: where the console finds <call.recording>.wav (recordings_dir)
    recordings_override: Path | None = None
    # --- tls (issue 13, item 8): desk phones over TLS with SRTP; docs/operations.md --------
    # VERIFYLINE_DESK_TLS_PORT: 0 is off (the lab's desks stay on UDP); else desk phones
    # register over TLS on this TCP port and their calls offer SRTP (SDES keys)
    desk_tls_port: int = 0
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # when set, a desk phone must present a certificate signed by one of these CAs
    tls_ca_file: Path | None = None
    # required: a desk call is SRTP or fails; optimistic: SRTP offered, plain RTP accepted
    desk_srtp: DeskSrtp = "required"
    # VERIFYLINE_TRUNK_MATCH: the ITSP's signalling addresses (IP or CIDR, comma-separated);
    # a call from there is the public trunk's (pjsip identify by IP, no authentication)
    trunk_match: tuple[str, ...] = ("127.0.0.2",)
    # --- metrics (issue 13: metrics and logs) ---
    # the ARI app's Prometheus /metrics on bind_address (0: off); the console serves its own
    # /metrics on console_port
    metrics_port: int = 9464
    log_format: LogFormat = "text"  # text: the human lines of the lab; json: one object a line
    log_level: str = "INFO"
    # --- end metrics ---
    # --- purge (issue 13, retention): see docs/operations.md "Retention and privacy" -------
    # a caller's number is replaced by its keyed hash this many days after the call
    retain_caller_number_days: int = 90
    # a conversation's recording is deleted this many days after the call
    retain_recordings_days: int = 31
    # the HMAC key of those hashes; generated and kept under home when unset (with_secrets)
    retention_key: str = ""
    # --- end purge ---------------------------------------------------------------------------

    @property
    def desk_tls(self) -> bool:
        """Do desk phones use the TLS transport (and SRTP)?"""
        return self.desk_tls_port != 0

    def desk_password(self, desk: str) -> str | None:
        """The password set for this desk phone, or None (there is no default)."""
        return dict(self.desk_passwords).get(desk)

    @property
    def ari_url(self) -> str:
        return f"http://{self.bind_address}:{self.ari_port}"

    @property
    def recordings_dir(self) -> Path:
        """Where Asterisk writes the conversations' recordings (the lab's place by default)."""
        return self.recordings_override or self.home / "asterisk" / "astspool" / "recording"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``VERIFYLINE_*`` variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        home = Path(env.get("VERIFYLINE_HOME") or "var").resolve()
        # the field defaults above, read back rather than written a second time here
        base, de = cls(home=home), EntrySettings()
        line = env.get("VERIFYLINE_LINE_NUMBER") or base.line_number
        if not line.isdigit() or not 3 <= len(line) <= 20:
            raise ConfigError(f"VERIFYLINE_LINE_NUMBER={line!r} must be 3 to 20 digits")
        raw_desks = env.get("VERIFYLINE_DESKS")
        desks = tuple(d.strip() for d in raw_desks.split(",")) if raw_desks else base.desks
        if not desks or not all(d.isalnum() for d in desks):
            raise ConfigError("VERIFYLINE_DESKS must be a comma-separated list of endpoint names")
        entry = EntrySettings(
            min_digits=_int(env, "VERIFYLINE_MIN_DIGITS", de.min_digits, 1, 30),
            max_digits=_int(env, "VERIFYLINE_MAX_DIGITS", de.max_digits, 1, 30),
            first_digit_timeout=_seconds(env, "VERIFYLINE_FIRST_DIGIT_TIMEOUT",
                                         de.first_digit_timeout),
            inter_digit_timeout=_seconds(env, "VERIFYLINE_INTER_DIGIT_TIMEOUT",
                                         de.inter_digit_timeout),
            max_attempts=_int(env, "VERIFYLINE_MAX_ATTEMPTS", de.max_attempts, 1, 10),
            confirm_timeout=_seconds(env, "VERIFYLINE_CONFIRM_TIMEOUT", de.confirm_timeout),
        )
        if entry.min_digits > entry.max_digits:
            raise ConfigError("VERIFYLINE_MIN_DIGITS is larger than VERIFYLINE_MAX_DIGITS")
        strategy = env.get("VERIFYLINE_STRATEGY") or base.strategy
        if not _is_strategy(strategy):
            raise ConfigError(f"VERIFYLINE_STRATEGY={strategy!r} must be one of "
                              f"{', '.join(STRATEGIES)}")
        settings = replace(
            base,
            sip_port=_int(env, "VERIFYLINE_SIP_PORT", base.sip_port, 1, 65535),
            ari_port=_int(env, "VERIFYLINE_ARI_PORT", base.ari_port, 1, 65535),
            ari_user=env.get("VERIFYLINE_ARI_USER") or base.ari_user,
            ari_password=env.get("VERIFYLINE_ARI_PASSWORD") or base.ari_password,
            db_url=env.get("VERIFYLINE_DB_URL") or f"sqlite:///{home / 'verifyline.db'}",
            line_number=line,
            rtp_ports=_port_range(env, "VERIFYLINE_RTP_PORTS", base.rtp_ports),
            desks=desks,
            ring_timeout=_seconds(env, "VERIFYLINE_RING_TIMEOUT", base.ring_timeout),
            strategy=strategy,
            hold_interval=_seconds(env, "VERIFYLINE_HOLD_INTERVAL", base.hold_interval),
            wrap_up=_seconds(env, "VERIFYLINE_WRAP_UP", base.wrap_up, allow_zero=True),
            auto_pause_after=_int(env, "VERIFYLINE_AUTO_PAUSE", base.auto_pause_after, 0, 100),
            queue_max_wait=_seconds(env, "VERIFYLINE_QUEUE_MAX_WAIT", base.queue_max_wait),
            whisper_timeout=_seconds(env, "VERIFYLINE_WHISPER_TIMEOUT", base.whisper_timeout),
            sweep_grace=_seconds(env, "VERIFYLINE_SWEEP_GRACE", base.sweep_grace),
            rtp_timeout=_seconds(env, "VERIFYLINE_RTP_TIMEOUT", base.rtp_timeout,
                                 allow_zero=True),
            recording=_flag(env, "VERIFYLINE_RECORDING", base.recording),
            rate_limit=_int(env, "VERIFYLINE_RATE_LIMIT", base.rate_limit, 1, 10000),
            rate_window=_seconds(env, "VERIFYLINE_RATE_WINDOW", base.rate_window),
            overflow_uri=env.get("VERIFYLINE_OVERFLOW_URI") or base.overflow_uri,
            outcome_required=_flag(env, "VERIFYLINE_OUTCOME_REQUIRED", base.outcome_required),
            trunk_uri=env.get("VERIFYLINE_TRUNK_URI") or base.trunk_uri,
            entry=entry,
            desk_passwords=tuple((desk, env[desk_password_variable(desk)]) for desk in desks
                                 if env.get(desk_password_variable(desk))),
            cache_dir=Path(env.get("VERIFYLINE_CACHE") or default_cache_dir(env)),
            console_port=_int(env, "VERIFYLINE_CONSOLE_PORT", base.console_port, 1, 65535),
            console_secret=env.get("VERIFYLINE_CONSOLE_SECRET") or base.console_secret,
            idle_timeout=_seconds(env, "VERIFYLINE_IDLE_TIMEOUT", base.idle_timeout),
            recordings_override=(Path(env["VERIFYLINE_RECORDINGS_DIR"]).resolve()
                                 if env.get("VERIFYLINE_RECORDINGS_DIR") else None),
        )
        settings = _with_tls(env, settings)
        settings = _with_metrics_and_logs(settings, env)
        # purge: the retention periods and the key of the numbers' hashes
        key = env.get("VERIFYLINE_RETENTION_KEY") or base.retention_key
        if key and len(key) < MIN_RETENTION_KEY:
            raise ConfigError(f"VERIFYLINE_RETENTION_KEY must be at least {MIN_RETENTION_KEY} "
                              "characters (e.g. python3 -c 'import secrets; "
                              "print(secrets.token_urlsafe(32))')")
        settings = replace(
            settings,
            retain_caller_number_days=_int(env, "VERIFYLINE_RETAIN_CALLER_NUMBER_DAYS",
                                           base.retain_caller_number_days, 1, MAX_RETAIN_DAYS),
            retain_recordings_days=_int(env, "VERIFYLINE_RETAIN_RECORDINGS_DAYS",
                                        base.retain_recordings_days, 1, MAX_RETAIN_DAYS),
            retention_key=key,
        )
        if not settings.overflow_uri.startswith("sip:"):
            raise ConfigError("VERIFYLINE_OVERFLOW_URI must be a sip: URI")
        if not settings.trunk_uri.startswith("sip:") or "@" in settings.trunk_uri:
            raise ConfigError("VERIFYLINE_TRUNK_URI must be a sip: URI of a host (and port), "
                              "without a user part: the number called back becomes it")
        if not settings.ari_user.isalnum():
            raise ConfigError("VERIFYLINE_ARI_USER must be letters and digits only")
        return settings

    def with_secrets(self) -> Settings:
        """Return these settings with the ARI password, the console's session secret and the
        retention key filled in, generating and keeping each (mode 0600) the first time it is
        needed."""
        return replace(self,
                       ari_password=self.ari_password or self._kept_secret("ari-password"),
                       console_secret=(self.console_secret
                                       or self._kept_secret("console-secret")),
                       retention_key=self.retention_key or self._kept_secret("retention-key"))

    def _kept_secret(self, name: str) -> str:
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            # written aside, then linked in place: a process reading it at the same moment
            # sees the whole secret or none (and a second writer loses the link, not the race)
            tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32) + "\n")
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        value = path.read_text().strip()
        if not value:
            raise ConfigError(f"{path} is empty: delete it and a new secret will be generated")
        return value


# --- tls -------------------------------------------------------------------------------------


def _with_tls(env: Mapping[str, str], base: Settings) -> Settings:
    """The desk-TLS settings, refused when they cannot describe a working TLS transport (the
    files themselves are checked where the configuration is rendered: ops.lab)."""
    port = _int(env, "VERIFYLINE_DESK_TLS_PORT", base.desk_tls_port, 0, 65535)
    cert = _file(env, "VERIFYLINE_TLS_CERT_FILE")
    key = _file(env, "VERIFYLINE_TLS_KEY_FILE")
    ca = _file(env, "VERIFYLINE_TLS_CA_FILE")
    srtp = env.get("VERIFYLINE_DESK_SRTP") or base.desk_srtp
    if not _is_desk_srtp(srtp):
        raise ConfigError(f"VERIFYLINE_DESK_SRTP={srtp!r} must be one of {', '.join(DESK_SRTP)}")
    if port:
        missing = [name for name, value in (("VERIFYLINE_TLS_CERT_FILE", cert),
                                            ("VERIFYLINE_TLS_KEY_FILE", key)) if value is None]
        if missing:
            raise ConfigError(f"VERIFYLINE_DESK_TLS_PORT={port} needs {' and '.join(missing)} "
                              "(the server certificate and its private key, PEM files)")
    else:
        stray = [name for name, value in (("VERIFYLINE_TLS_CERT_FILE", cert),
                                          ("VERIFYLINE_TLS_KEY_FILE", key),
                                          ("VERIFYLINE_TLS_CA_FILE", ca)) if value is not None]
        if stray:
            # a certificate with no port would leave the desks on plain UDP unnoticed
            raise ConfigError(f"{', '.join(stray)} set but VERIFYLINE_DESK_TLS_PORT is not: "
                              "set the port to put desk phones on TLS, or unset the files")
    return replace(base, desk_tls_port=port, tls_cert_file=cert, tls_key_file=key,
                   tls_ca_file=ca, desk_srtp=srtp, trunk_match=_trunk_match(env, base))


def _trunk_match(env: Mapping[str, str], base: Settings) -> tuple[str, ...]:
    raw = env.get("VERIFYLINE_TRUNK_MATCH")
    if not raw:
        return base.trunk_match
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(f"VERIFYLINE_TRUNK_MATCH: {item!r} is not an IP address or "
                              "network (e.g. 192.0.2.10 or 192.0.2.0/28); host names are "
                              "not accepted (DNS would decide who the trunk is)") from None
    return tuple(networks)


# --- metrics (issue 13: metrics and logs) ---
def _with_metrics_and_logs(settings: Settings, env: Mapping[str, str]) -> Settings:
    """VERIFYLINE_METRICS_PORT, VERIFYLINE_LOG_FORMAT and VERIFYLINE_LOG_LEVEL applied."""
    fmt = (env.get("VERIFYLINE_LOG_FORMAT") or settings.log_format).strip().lower()
    if not _is_log_format(fmt):
        raise ConfigError(f"VERIFYLINE_LOG_FORMAT={fmt!r} must be one of "
                          f"{', '.join(LOG_FORMATS)}")
    level = (env.get("VERIFYLINE_LOG_LEVEL") or settings.log_level).strip().upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"VERIFYLINE_LOG_LEVEL={level!r} must be one of "
                          f"{', '.join(LOG_LEVELS)}")
    return replace(settings,
                   metrics_port=_int(env, "VERIFYLINE_METRICS_PORT", settings.metrics_port,
                                     0, 65535),
                   log_format=fmt, log_level=level)
# --- end metrics ---
