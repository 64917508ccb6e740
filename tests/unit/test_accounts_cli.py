"""verifyline users ... and tokens ...: accounts and device tokens from the command line."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr import accounts, roster, services
from ivr.models import AuditEntry, DeviceToken
from ivr.store import Store
from ops import cli

DEMO = (Path(__file__).resolve().parents[2] / "ivr" / "demo_roster.csv").read_text()


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("VERIFYLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VERIFYLINE_DB_URL", db_url)
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**10)
    store = Store(db_url)
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
    return store


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def _audit(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as s:
        return [(e.actor, e.action, e.target)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_given_a_password_on_stdin_when_adding_a_user_then_listed_and_audited_as_cli(
        env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, "a good long password\nignored\n")
    assert cli.main(["users", "add", "sam", "--role", "supervisor",
                     "--display-name", "Sgt Sam"]) == 0
    capsys.readouterr()
    assert cli.main(["users", "list", "--json"]) == 0
    (user,) = json.loads(capsys.readouterr().out)
    assert user == {"id": user["id"], "username": "sam", "display_name": "Sgt Sam",
                    "role": "supervisor", "disabled": False}
    with env.session() as s:
        signed_in = accounts.authenticate(s, "sam", "a good long password", "::1")
    assert isinstance(signed_in, accounts.UserView) and signed_in.username == "sam"
    assert _audit(env)[-1] == ("cli", "user_add", "user:sam")


def test_given_a_tty_when_adding_then_asked_twice_and_a_mismatch_changes_nothing(
        env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    monkeypatch.setattr("sys.stdin", Tty())
    answers = iter(["first password!", "second password"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert cli.main(["users", "add", "sam", "--role", "admin"]) == 1
    assert "differ" in capsys.readouterr().err
    answers = iter(["same password!!", "same password!!"])
    assert cli.main(["users", "add", "sam", "--role", "admin"]) == 0


@pytest.mark.parametrize(("argv", "password", "message"), [
    (["users", "add", "sam", "--role", "supervisor"], "short\n", "at least 10"),
    (["users", "add", "sam", "--role", "boss"], "a good long password\n", "must be one of"),
])
def test_given_bad_input_when_adding_then_exit_1_with_why_and_nothing_written(
        env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], password: str, message: str) -> None:
    _stdin(monkeypatch, password)
    assert cli.main(argv) == 1
    assert message in capsys.readouterr().err
    assert _audit(env) == [] and services.users(env) == []


def test_given_an_existing_user_when_added_again_then_exit_1(
        env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, "a good long password\n")
    cli.main(["users", "add", "sam", "--role", "supervisor"])
    _stdin(monkeypatch, "a good long password\n")
    assert cli.main(["users", "add", "sam", "--role", "admin"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_given_a_user_when_disabled_then_listed_disabled_and_audited(
        env: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _stdin(monkeypatch, "a good long password\n")
    cli.main(["users", "add", "sam", "--role", "supervisor"])
    assert cli.main(["users", "disable", "sam"]) == 0
    assert cli.main(["users", "disable", "sam"]) == 1
    assert cli.main(["users", "disable", "nobody"]) == 1
    capsys.readouterr()
    cli.main(["users", "list"])
    assert "disabled" in capsys.readouterr().out
    assert _audit(env)[-1] == ("cli", "user_disable", "user:sam")


def test_given_an_officer_when_a_token_is_added_then_printed_once_and_only_hashed(
        env: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tokens", "add", "--officer", "123456", "--label", "phone"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with env.session() as s:
        row = s.scalars(select(DeviceToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.prefix == token[:8] and row.created_by == "cli"
    assert cli.main(["tokens", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert token not in listed
    (entry,) = json.loads(listed)
    assert entry["warrant_number"] == "123456" and entry["revoked_at"] is None
    assert cli.main(["tokens", "revoke", str(entry["id"])]) == 0
    assert cli.main(["tokens", "revoke", str(entry["id"])]) == 1
    assert [a for a in _audit(env) if a[1].startswith("token")] == [
        ("cli", "token_add", f"token:{entry['id']}"),
        ("cli", "token_revoke", f"token:{entry['id']}")]


def test_given_an_unknown_officer_when_a_token_is_added_then_exit_1_and_none_made(
        env: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tokens", "add", "--officer", "999999"]) == 1
    assert "no officer" in capsys.readouterr().err
    with env.session() as s:
        assert s.scalars(select(DeviceToken)).first() is None


def test_given_the_cli_or_the_line_when_it_starts_then_no_password_hash_is_made() -> None:
    # one scrypt at import was part of every start of the CLI and the line (0.1-0.4 s)
    started = subprocess.run(
        [sys.executable, "-c", "import ops.cli, ivr.accounts as a; "
                               "print(a.dummy_hash.cache_info().currsize)"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])

    assert started.stdout.strip() == "0"
