"""How the supervisors' console (ivr.web) is served: gunicorn's command line, and its health.

The console is its own process, apart from the ARI app: they share only the database.
``verifyline console`` execs gunicorn in the foreground (systemd in production); ``verifyline
lab up`` starts that command in the background (``run/console.pid``, ``logs/console.log``).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

from gunicorn.glogging import Logger

from ivr.config import Settings
from ivr.logs import CallIdFilter, JsonFormatter

WSGI_APP = "ivr.web.wsgi:app"
# each open live stream (SSE) holds a worker thread for as long as the page is open, so the
# threads are many and cheap (gthread); two processes so one crash does not take the console
WORKERS = 2
THREADS = 16
# on TERM, a worker finishes its requests for this long; the live streams never finish, and
# the browser reconnects them by itself, so there is nothing to wait for
GRACEFUL_TIMEOUT = 2


def url(settings: Settings, port: int | None = None) -> str:
    """Where the console answers (loopback)."""
    return f"http://{settings.bind_address}:{port or settings.console_port}"


def _has_control_socket() -> bool:
    """gunicorn 25.1 added a control socket, by default one path per user
    (~/.gunicorn/gunicorn.ctl): two consoles on one machine would fight over it."""
    try:
        major, minor = (int(x) for x in metadata.version("gunicorn").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (25, 1)


def gunicorn_argv(settings: Settings, port: int | None = None) -> list[str]:
    """The gunicorn command that serves the console on loopback, logging to stdout/stderr.

    No ``--preload``: the app starts threads (the live-update hub) and database pools, which
    must be made in each worker, after the fork, not in the master."""
    argv = [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gthread", "--workers", str(WORKERS), "--threads", str(THREADS),
        "--bind", f"{settings.bind_address}:{port or settings.console_port}",
        "--graceful-timeout", str(GRACEFUL_TIMEOUT),
        "--access-logfile", "-", "--error-logfile", "-",
        "--log-level", settings.log_level.lower(),
    ]
    if settings.log_format == "json":
        argv += ["--logger-class", f"{__name__}.JsonLogger"]
    if Path("/dev/shm").is_dir():
        # the workers' heartbeat files: in memory, so a slow disk does not get workers killed
        argv += ["--worker-tmp-dir", "/dev/shm"]
    if _has_control_socket():
        argv.append("--no-control-socket")
    return [*argv, WSGI_APP]


class JsonLogger(Logger):  # type: ignore[misc]
    """gunicorn's own lines (its error log and access log) as JSON lines, like the app's
    (VERIFYLINE_LOG_FORMAT=json; ivr.logs)."""

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in logger.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(CallIdFilter())


def probe(settings: Settings, timeout: float = 2.0) -> int | None:
    """The HTTP status of the console's ``GET /healthz`` (200: up with its database, 503:
    up without it), or None when nothing answers on the port."""
    # no proxy: a proxy set in the environment must not answer for loopback
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url(settings)}/healthz", timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
    except (OSError, ValueError):
        return None
