"""`verifyline calls list --since / --limit` and `calls show` (docs/lab.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ivr.clock import now
from ivr.models import Call, CallPath, Encounter, EncounterKind
from ivr.store import Store
from ops import cli

AGES_MINUTES = (3000, 120, 50, 20, 5)  # five calls, the oldest two days ago


@pytest.fixture
def log(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A call log of five calls (their ids, oldest first), started AGES_MINUTES ago."""
    monkeypatch.setenv("VERIFYLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VERIFYLINE_DB_URL", db_url)
    store, ids = Store(db_url), []
    with store.session() as s:
        for i, minutes in enumerate(AGES_MINUTES):
            at = now() - timedelta(minutes=minutes)
            enc = Encounter(reference=f"5{i:07d}", opened_at=at, kind=EncounterKind.CALL.value)
            s.add(enc)
            s.flush()
            call = Call(channel_id=f"c-{i}", reference=enc.reference, encounter_id=enc.id,
                        caller_number="07700900123", started_at=at, path=CallPath.ARI,
                        state="ended")
            s.add(call)
            s.flush()
            ids.append(call.id)
    store.dispose()
    return ids


def listed(capsys: pytest.CaptureFixture[str], *args: str) -> list[int]:
    assert cli.main(["calls", "list", "--json", *args]) == 0
    return [c["id"] for c in json.loads(capsys.readouterr().out)]


def test_given_calls_over_two_days_when_listed_since_an_hour_ago_then_that_hour_oldest_first(
        log: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert listed(capsys, "--since", "1h") == log[2:]
    assert listed(capsys, "--since", "150m") == log[1:]
    assert listed(capsys, "--since", (now() - timedelta(minutes=30)).isoformat()) == log[3:]
    assert listed(capsys) == log


def test_given_a_limit_when_listed_then_the_newest_of_them_oldest_first(
        log: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert listed(capsys, "--limit", "2") == log[3:]
    assert listed(capsys, "--limit", "2", "--since", "3h") == log[3:]
    assert listed(capsys, "--limit", "9", "--since", "3h") == log[1:]


@pytest.mark.parametrize("when", ["2026-11-24T09:00:00", "yesterday", "1w", "h"])
def test_given_a_time_without_offset_or_unknown_when_listed_since_then_refused(
        log: list[int], when: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["calls", "list", "--since", when])

    assert refused.value.code == 2
    assert when in capsys.readouterr().err


def test_given_a_call_when_shown_then_that_call_with_its_timeline(
        log: list[int], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["calls", "show", str(log[1])]) == 0

    shown = json.loads(capsys.readouterr().out)
    assert (shown["id"], shown["channel_id"], shown["timeline"]) == (log[1], "c-1", [])
    assert cli.main(["calls", "show", "999999"]) == 1
