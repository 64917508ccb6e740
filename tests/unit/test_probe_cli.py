"""`verifyline probe ari|app|console`: the containers' health checks (docker-compose.yml).
Here nothing answers on the ports, so each probe must say FAIL and exit 1; the compose test
(tests/e2e/test_compose.py) sees each of them pass against the real stack."""

from __future__ import annotations

import os
import socket

import pytest

from ops import cli, probe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def nothing_answers(tmp_path, monkeypatch):
    monkeypatch.setenv("VERIFYLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VERIFYLINE_ARI_PORT", str(free_port()))
    monkeypatch.setenv("VERIFYLINE_CONSOLE_PORT", str(free_port()))
    monkeypatch.setenv("VERIFYLINE_ARI_PASSWORD", "x")
    monkeypatch.setenv("VERIFYLINE_CONSOLE_SECRET", "y")
    return tmp_path / "home"


@pytest.mark.parametrize("part", ["ari", "app", "console"])
def test_given_nothing_answering_when_probed_then_it_fails_with_exit_1(
        nothing_answers, part, capsys):
    assert cli.main(["probe", part]) == 1
    assert capsys.readouterr().out.startswith("FAIL ")


def test_given_a_live_app_ready_file_but_no_asterisk_when_the_app_is_probed_then_it_fails(
        nothing_answers, capsys):
    # this very process wrote app.ready (alive), but Asterisk does not list the application
    (nothing_answers / "run").mkdir(parents=True)
    (nothing_answers / "run" / "app.ready").write_text(f"{os.getpid()}\n")

    assert cli.main(["probe", "app"]) == 1


def test_given_nothing_answering_when_the_lean_module_probes_then_it_fails_with_exit_1(
        nothing_answers, capsys):
    # what the compose health checks run: `python -m ops.probe app`
    assert probe.main(["app"]) == 1
    assert capsys.readouterr().out.startswith("FAIL app ")
