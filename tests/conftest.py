"""The database backend the whole suite runs on: ``VERIFYLINE_TEST_DB=sqlite`` (the default) or
``postgresql`` (a throwaway cluster, started once per session, see tests/pgcluster.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import PgCluster

BACKEND_ENV = "VERIFYLINE_TEST_DB"
BACKENDS = ("sqlite", "postgresql")


def selected_backend() -> str:
    return os.environ.get(BACKEND_ENV, "").strip().lower() or "sqlite"


def pytest_configure(config: pytest.Config) -> None:
    """A typo must not quietly run everything on SQLite."""
    if selected_backend() not in BACKENDS:
        raise pytest.UsageError(f"{BACKEND_ENV}={os.environ[BACKEND_ENV]!r}: use one of "
                                f"{', '.join(BACKENDS)}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"database backend: {selected_backend()} ({BACKEND_ENV})"


@pytest.fixture(scope="session")
def db_backend() -> str:
    return selected_backend()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL server; started only by the tests that ask for it."""
    cluster = PgCluster.create()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def lab_db_env(db_backend: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """What the end-to-end lab adds to its environment: on PostgreSQL, a fresh empty database
    (the app migrates it, as in production); on SQLite nothing (the lab's own file)."""
    if db_backend != "postgresql":
        return {}
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return {"VERIFYLINE_DB_URL": cluster.create_database("lab")}


# --- durations: every test's, to a file CI keeps -------------------------------------------

_durations: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write var/test-durations-<backend>-<suite>.txt, slowest first (setup, call, teardown)."""
    if not _durations or hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller writes the file
    suite = "e2e" if all("tests/e2e/" in n for n in _durations) else (
        "unit" if all("tests/unit/" in n for n in _durations) else "all")
    out = Path(session.config.rootpath) / "var" / f"test-durations-{selected_backend()}-{suite}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(_durations.items(), key=lambda kv: -kv[1])
    out.write_text("".join(f"{seconds:9.2f} s  {node}\n" for node, seconds in rows) +
                   f"{sum(_durations.values()):9.2f} s  total ({len(rows)} tests)\n")
