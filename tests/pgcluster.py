"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temporary data
directory, loopback TCP on a free port and a Unix socket inside the same directory.

Why not the system cluster: the tests must not depend on (or disturb) whatever runs on 5432,
and an outage test needs a server it may stop and start at will. PostgreSQL refuses to run as
root, so as root every server command runs as the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
# durability is worthless for a throwaway cluster; speed is not. The server's time zone is
# deliberately not UTC (nor an hour off it): code must not rely on what the server speaks.
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off",
            "max_connections=200", "timezone=America/St_Johns")
# in memory when possible: CREATE DATABASE takes ~10 ms there, ~240 ms on this VM's disk
RAM_DIR = Path("/dev/shm")


def bindir() -> Path:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = [p.parent for p in PG_ROOT.glob("*/bin/pg_ctl") if p.parent.parent.name.isdigit()]
    if not found:
        raise RuntimeError(f"no PostgreSQL server under {PG_ROOT}: run 'make postgres'")
    return max(found, key=lambda p: int(p.parent.name))


def free_port() -> int:
    """A TCP port nobody listens on right now on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgCluster:
    """One server: ``root`` holds ``data/`` (PGDATA), the socket and ``server.log``."""

    root: Path
    port: int
    bin: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @classmethod
    def create(cls) -> PgCluster:
        """initdb into a fresh temporary directory and start the server."""
        # not under pytest's tmp_path: its parents are private to root, and the server user
        # must be able to reach its data directory
        parent = RAM_DIR if RAM_DIR.is_dir() and os.access(RAM_DIR, os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix="verifyline-pg-", dir=parent))
        cluster = cls(root, free_port(), bindir())
        try:
            if os.geteuid() == 0:
                user = pwd.getpwnam(SUPERUSER)
                os.chown(root, user.pw_uid, user.pw_gid)
            cluster._run("initdb", "-D", str(cluster.data), "-U", SUPERUSER, "-A", "trust",
                         "-E", "UTF8", "--locale=C", "--no-sync")
            cluster.start()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        as_server_user = ["runuser", "-u", SUPERUSER, "--"] if os.geteuid() == 0 else []
        result = subprocess.run([*as_server_user, str(self.bin / tool), *args],
                                capture_output=True, text=True, timeout=120, cwd=self.root)
        if result.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}"
                               f"\n{log}")

    def start(self) -> None:
        """Start the server on its port and data directory (again, after ``stop``); returns
        once it accepts connections."""
        options = [f"-h 127.0.0.1 -p {self.port} -k {self.root}",
                   *(f"-c {s}" for s in SETTINGS)]
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                  "-l", str(self.log), "-o", " ".join(options))

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """Stop the server (``immediate`` is a crash, as far as clients can tell); the data
        directory and the port are kept for ``start``."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    @contextmanager
    def outage(self, mode: Literal["fast", "immediate"] = "immediate") -> Iterator[None]:
        """The database is down inside the block (an ``immediate`` stop looks like a crash) and
        back, on the same port and data, after it."""
        self.stop(mode)
        try:
            yield
        finally:
            self.start()

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        """Stop the server if it runs and delete everything."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # --- databases ---------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database (trust authentication on loopback)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the maintenance database (CREATE/DROP DATABASE)."""
        return psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                               dbname="postgres", autocommit=True)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (a copy of ``template`` if given) and return its URL."""
        _check_name(name)
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            _check_name(template)
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template))
        with self.admin() as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever still uses it."""
        _check_name(name)
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _check_name(name: str) -> None:
    """Database names come from test code; keep them boring (lower case, digits, _)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise ValueError(f"bad database name {name!r}")
