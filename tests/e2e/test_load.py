"""The small load run: benchmarks/load.py places 30 calls at 3 calls/s through a lab of its own
(its own home and ports, not the session lab) and every one must be bridged and logged once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOAD = REPO / "benchmarks" / "load.py"
CALLS = 30
RATE = 3


def database_args(request: pytest.FixtureRequest) -> list[str]:
    """On the PostgreSQL backend (tests/conftest.py), a fresh database of the run's own; else
    the script's default (SQLite in its temporary home)."""
    try:
        backend = request.getfixturevalue("db_backend")
    except pytest.FixtureLookupError:
        return []
    if backend != "postgresql":
        return []
    cluster = request.getfixturevalue("pg_cluster")
    return ["--db-url", cluster.create_database("load")]


def test_thirty_concurrent_calls_are_all_bridged_and_logged(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    out = tmp_path / "load.json"
    proc = subprocess.Popen(
        [sys.executable, str(LOAD), "--calls", str(CALLS), "--rate", str(RATE),
         "--json", str(out), *database_args(request)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        stdout, stderr = proc.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script stops its lab on the way out
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"the load run took more than 10 minutes:\n{stdout[-3000:]}")
    print(stdout)
    assert proc.returncode == 0, f"{stdout[-3000:]}\n{stderr[-3000:]}"
    figures = json.loads(out.read_text())
    assert figures["attempted"] == CALLS
    assert figures["bridged"] == CALLS
    assert figures["failed"] == 0
    assert figures["logged"] == CALLS
    assert figures["unlogged"] == 0
    assert figures["duplicate_rows"] == 0
    assert figures["end_reasons"] == {"caller_hangup": CALLS}
    assert figures["bridged_late"] == 0, "callers waited for a free desk: not enough desks?"
    assert figures["peak_conversations"] >= 10, "the calls did not overlap: not a load test"
