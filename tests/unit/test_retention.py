"""Retention (issue 13, item 7): ``verifyline purge`` hashes callers' numbers and deletes
recordings once their periods are over, everywhere the line keeps them; a dry run changes
nothing, a second run changes nothing more, and every run is audited."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivr import callers, calllog, retention, search, services
from ivr.config import Settings
from ivr.exceptions import ConfigError, ConsoleError
from ivr.journal import Journal
from ivr.models import AuditEntry, Call, Callback, CallEvent, Encounter, Supervisor
from ivr.store import Store
from ops import cli

KEY = "k" * 40
IST = timezone(timedelta(hours=5, minutes=30))
EDT = timezone(timedelta(hours=-4))
BST = timezone(timedelta(hours=1))
# "now" for the purge, written in +05:30; the calls around the cutoffs in -04:00 and +01:00
AT = datetime(2026, 12, 1, 9, 0, tzinfo=IST)
NUMBER = "07700900123"
OTHER = "07700900456"


def settings_for(tmp_path: Path, db_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db_url=db_url, retention_key=KEY,
                    recordings_override=tmp_path / "recordings")


def a_call(store: Store, channel: str, number: str | None, started: datetime,
           recording: bool = False, settings: Settings | None = None) -> int:
    """Log a call as the line does (its encounter and its ``started`` event)."""
    with store.session() as s:
        calllog.open_call(s, channel, number, started)
        call = s.scalars(select(Call).where(Call.channel_id == channel)).one()
        if recording:
            assert settings is not None
            call.recording = f"verifyline-{call.reference}-{channel}"
            settings.recordings_dir.mkdir(parents=True, exist_ok=True)
            (settings.recordings_dir / f"{call.recording}.wav").write_bytes(b"RIFF")
        return call.id


def a_callback(store: Store, call_id: int, number: str | None, at: datetime) -> int:
    with store.session() as s:
        cb = Callback(call_id=call_id, caller_number=number, reference="412345",
                      created_at=at)
        s.add(cb)
        s.flush()
        return cb.id


def an_export(store: Store, at: datetime, caller: str) -> None:
    """The audit entry a console export by number leaves (ivr/web/encounters.py)."""
    with store.session() as s:
        s.add(AuditEntry(at=at, actor="ann", action="export_encounters", target="",
                         detail={"caller": caller, "from": "2026-08-01"}))


def snapshot(store: Store, settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Everything a purge may change."""
    with store.session() as s:
        return {
            "calls": sorted((c.id, c.caller_number, c.recording) for c in s.scalars(select(Call))),
            "encounters": sorted((e.id, e.caller_number) for e in s.scalars(select(Encounter))),
            "callbacks": sorted((c.id, c.caller_number) for c in s.scalars(select(Callback))),
            "events": sorted((e.id, e.kind, json.dumps(e.detail, sort_keys=True))
                             for e in s.scalars(select(CallEvent))),
            "audit": sorted((a.id, json.dumps(a.detail, sort_keys=True))
                            for a in s.scalars(select(AuditEntry))),
            "files": sorted((p.name,) for p in settings.recordings_dir.glob("*")),
        }


@pytest.fixture
def line(store: Store, db_url: str, tmp_path: Path) -> tuple[Store, Settings]:
    return store, settings_for(tmp_path, db_url)


def old_and_new_calls(store: Store, settings: Settings) -> dict[str, int]:
    """Calls a minute either side of each cutoff (90 days for numbers, 31 for recordings),
    written in other offsets than the purge's "now"."""
    numbers_cut, recordings_cut = AT - timedelta(days=90), AT - timedelta(days=31)
    ids = {
        "old": a_call(store, "old", NUMBER, (numbers_cut - timedelta(minutes=1)).astimezone(EDT),
                      recording=True, settings=settings),
        "old_same_number": a_call(store, "old2", NUMBER,
                                  (numbers_cut - timedelta(days=3)).astimezone(BST)),
        "old_other": a_call(store, "old3", OTHER,
                            (numbers_cut - timedelta(days=1)).astimezone(BST)),
        "new": a_call(store, "new", NUMBER, (numbers_cut + timedelta(minutes=1)).astimezone(BST)),
        "recording_old": a_call(store, "rec-old", OTHER,
                                (recordings_cut - timedelta(minutes=1)).astimezone(BST),
                                recording=True, settings=settings),
        "recording_new": a_call(store, "rec-new", OTHER,
                                (recordings_cut + timedelta(minutes=1)).astimezone(EDT),
                                recording=True, settings=settings),
        "withheld": a_call(store, "anon", None, (numbers_cut - timedelta(days=5)).astimezone(EDT)),
    }
    return ids


def test_given_calls_either_side_of_the_periods_in_other_offsets_when_purged_then_only_the_old_are_hashed_or_deleted(  # noqa: E501
        line):
    store, settings = line
    ids = old_and_new_calls(store, settings)

    report = services.purge(store, settings, AT, run_by="test")

    token = retention.caller_hash(KEY, NUMBER)
    with store.session() as s:
        calls = {name: s.get_one(Call, call_id) for name, call_id in ids.items()}
        assert calls["old"].caller_number == token
        assert calls["old_same_number"].caller_number == token  # still linked to each other
        assert calls["old_other"].caller_number == retention.caller_hash(KEY, OTHER)
        assert calls["new"].caller_number == NUMBER  # a minute inside the period
        assert calls["withheld"].caller_number is None
        assert calls["recording_old"].recording is None
        assert calls["recording_new"].recording is not None
        assert calls["old"].recording is None
    assert report.calls_hashed == 3 and report.encounters_hashed == 3
    assert report.recordings_deleted == 2 and report.recording_files_deleted == 2
    assert [p.name.split("-", 2)[-1] for p in settings.recordings_dir.glob("*.wav")] == [
        "rec-new.wav"]


def test_given_an_old_number_when_purged_then_it_is_hashed_everywhere_the_line_kept_it(line):
    store, settings = line
    old = AT - timedelta(days=100)
    call_id = a_call(store, "c1", NUMBER, old)
    cb_id = a_callback(store, call_id, NUMBER, old)
    an_export(store, old, NUMBER)
    an_export(store, AT - timedelta(days=1), NUMBER)  # a recent search: kept as it was

    report = services.purge(store, settings, AT)

    token = retention.caller_hash(KEY, NUMBER)
    with store.session() as s:
        call = s.get_one(Call, call_id)
        assert call.encounter.caller_number == token
        assert s.get_one(Callback, cb_id).caller_number == token
        started = s.scalars(select(CallEvent).where(CallEvent.call_id == call_id,
                                                    CallEvent.kind == "started")).one()
        assert started.detail["caller_number"] == token
        exports = [a.detail for a in s.scalars(select(AuditEntry).where(
            AuditEntry.action == "export_encounters").order_by(AuditEntry.at))]
        assert exports == [{"caller": token, "from": "2026-08-01"},
                           {"caller": NUMBER, "from": "2026-08-01"}]
    kept = snapshot(store, settings)
    assert NUMBER not in json.dumps([kept[k] for k in ("calls", "encounters", "callbacks",
                                                       "events")])
    assert sum(NUMBER in str(detail) for _, detail in kept["audit"]) == 1  # the recent one
    assert (report.callbacks_hashed, report.events_hashed, report.audit_entries_hashed) == (
        1, 1, 1)
    assert token.startswith("hmac-sha256:") and len(token) == len("hmac-sha256:") + 64
    assert callers.shown(token) == "hashed:" + token[len("hmac-sha256:"):][:12]
    assert callers.dialable(token) is None


def test_given_a_dry_run_when_purging_then_it_writes_nothing_and_counts_what_a_run_changes(
        line):
    store, settings = line
    old_and_new_calls(store, settings)
    a_callback(store, 1, NUMBER, AT - timedelta(days=100))
    an_export(store, AT - timedelta(days=100), NUMBER)
    before = snapshot(store, settings)

    dry = services.purge(store, settings, AT, dry_run=True)

    assert snapshot(store, settings) == before
    assert not (settings.run_dir / "purge.lock").exists()
    real = services.purge(store, settings, AT)
    assert dry.counts() == real.counts() and dry.changes == real.changes > 0
    assert dry.recordings == real.recordings
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == retention.AUDIT_ACTION)) == 1  # the real run's only


def test_given_a_purged_store_when_purged_again_then_nothing_changes_and_the_run_is_audited(
        line):
    store, settings = line
    old_and_new_calls(store, settings)
    first = services.purge(store, settings, AT, run_by="root@host (systemd)")
    after_first = snapshot(store, settings)

    second = services.purge(store, settings, AT + timedelta(seconds=30), run_by="cron")

    assert first.changes > 0 and second.changes == 0
    assert snapshot(store, settings)["calls"] == after_first["calls"]  # never re-hashed
    assert snapshot(store, settings)["events"] == after_first["events"]
    with store.session() as s:
        runs = list(s.scalars(select(AuditEntry).where(
            AuditEntry.action == retention.AUDIT_ACTION).order_by(AuditEntry.id)))
    assert [(r.actor, r.target) for r in runs] == [("system:purge", "retention")] * 2
    assert runs[0].detail["run_by"] == "root@host (systemd)"
    assert runs[0].detail["caller_number_days"] == 90
    assert runs[0].detail["recordings_days"] == 31
    assert runs[0].detail["calls_hashed"] == 3 and runs[0].detail["recordings_deleted"] == 2
    assert runs[0].detail["numbers_before"] == "2026-09-02T03:30:00.000+00:00"
    assert runs[1].detail["calls_hashed"] == 0 and runs[1].detail["recordings_deleted"] == 0


def test_given_old_recordings_when_purged_then_files_go_rows_say_so_and_other_files_stay(line):
    store, settings = line
    old = AT - timedelta(days=40)
    gone = a_call(store, "gone", NUMBER, old, recording=True, settings=settings)
    missing = a_call(store, "missing", NUMBER, old, recording=True, settings=settings)
    with store.session() as s:
        name = s.get_one(Call, missing).recording
    (settings.recordings_dir / f"{name}.wav").unlink()  # deleted by hand already
    orphan = settings.recordings_dir / "verifyline-999999-lost.wav"
    foreign = settings.recordings_dir / "someone-elses.wav"
    for path in (orphan, foreign):
        path.write_bytes(b"RIFF")
        os.utime(path, (old.timestamp(), old.timestamp()))
    fresh_orphan = settings.recordings_dir / "verifyline-888888-fresh.wav"
    fresh_orphan.write_bytes(b"RIFF")

    report = services.purge(store, settings, AT)

    assert sorted(p.name for p in settings.recordings_dir.iterdir()) == [
        "someone-elses.wav", "verifyline-888888-fresh.wav"]
    assert (report.recordings_deleted, report.recording_files_deleted,
            report.orphan_files_deleted) == (2, 1, 1)
    with store.session() as s:
        for call_id, file in ((gone, "deleted"), (missing, "missing")):
            assert s.get_one(Call, call_id).recording is None
            [event] = s.scalars(select(CallEvent).where(
                CallEvent.call_id == call_id, CallEvent.kind == "recording_deleted"))
            assert event.detail["by"] == "retention" and event.detail["file"] == file
            assert event.detail["after_days"] == 31
        # the numbers' period (90 days) is not over: the calls keep them
        assert s.get_one(Call, gone).caller_number == NUMBER


def test_given_hashed_calls_when_the_console_searches_by_the_number_then_it_finds_them_too(
        line):
    store, settings = line
    a_call(store, "old", NUMBER, AT - timedelta(days=100))
    a_call(store, "new", NUMBER, AT - timedelta(days=1))
    a_call(store, "other", OTHER, AT - timedelta(days=100))
    services.purge(store, settings, AT)

    found = services.encounter_search(store, search.parse_filters({"caller": NUMBER}, KEY))
    without_key = services.encounter_search(store, search.parse_filters({"caller": NUMBER}))

    shown = sorted(r["caller_number"] for r in found["rows"])
    assert shown == sorted([NUMBER, callers.shown(retention.caller_hash(KEY, NUMBER))])
    assert [r["caller_number"] for r in without_key["rows"]] == [NUMBER]


def test_given_a_hashed_callback_when_a_desk_asks_to_call_back_then_it_is_refused_clearly(
        line):
    store, settings = line
    call_id = a_call(store, "old", NUMBER, AT - timedelta(days=100))
    cb = a_callback(store, call_id, NUMBER, AT - timedelta(days=100))
    with store.session() as s:
        s.add(Supervisor(desk="desk1", display_name="desk1"))
    services.purge(store, settings, AT)

    with pytest.raises(ConsoleError) as refused:
        services.request_callback(store, cb, "desk1", "ann")

    assert refused.value.error_id == "callback_number_purged"
    assert refused.value.status == 422


def test_given_a_purge_running_when_another_starts_then_it_stops_without_touching_anything(
        line):
    store, settings = line
    old_and_new_calls(store, settings)
    before = snapshot(store, settings)

    with retention.one_at_a_time(store, settings.run_dir / "purge.lock"), \
            pytest.raises(retention.PurgeBusy, match="another purge is running"):
        services.purge(store, settings, AT)

    assert snapshot(store, settings) == before
    assert services.purge(store, settings, AT).changes > 0  # the lock was let go


def test_given_a_purge_on_another_host_when_one_starts_here_then_postgresql_refuses_it(
        line, db_backend, tmp_path):
    store, settings = line
    other_host = Store(settings.db_url)
    try:
        with retention.one_at_a_time(other_host, tmp_path / "other-host.lock"):
            if db_backend == "postgresql":  # the database-wide advisory lock
                with pytest.raises(retention.PurgeBusy, match="on this database"):
                    services.purge(store, settings, AT)
            else:  # an SQLite database is one host's file: the lock file is the lock
                services.purge(store, settings, AT)
    finally:
        other_host.dispose()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("VERIFYLINE_RETAIN_CALLER_NUMBER_DAYS", "0", "outside 1..3650"),
    ("VERIFYLINE_RETAIN_CALLER_NUMBER_DAYS", "ninety", "not a whole number"),
    ("VERIFYLINE_RETAIN_RECORDINGS_DAYS", "4000", "outside 1..3650"),
    ("VERIFYLINE_RETENTION_KEY", "short", "at least 32 characters"),
])
def test_given_a_bad_retention_setting_when_read_then_a_clear_error_names_it(
        name, value, message, tmp_path):
    with pytest.raises(ConfigError, match=message) as bad:
        Settings.from_env({"VERIFYLINE_HOME": str(tmp_path), name: value})
    assert name in str(bad.value)


def test_given_no_retention_settings_then_the_documented_defaults_and_a_kept_key(tmp_path):
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)})
    assert (settings.retain_caller_number_days, settings.retain_recordings_days) == (90, 31)
    key = settings.with_secrets().retention_key
    assert len(key) >= 32 and Settings.from_env(
        {"VERIFYLINE_HOME": str(tmp_path)}).with_secrets().retention_key == key
    assert (tmp_path / "retention-key").stat().st_mode & 0o777 == 0o600


def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> None:
    monkeypatch.setenv("VERIFYLINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VERIFYLINE_DB_URL", db_url)
    monkeypatch.setenv("VERIFYLINE_RECORDINGS_DIR", str(tmp_path / "recordings"))
    monkeypatch.setenv("VERIFYLINE_RETENTION_KEY", KEY)


def test_given_the_cli_when_purging_then_dry_run_json_then_run_then_nothing_to_do(
        line, monkeypatch, tmp_path, capsys):
    store, settings = line
    a_call(store, "old", NUMBER, datetime.now(IST) - timedelta(days=100), recording=True,
           settings=settings)
    cli_env(monkeypatch, tmp_path, settings.db_url)

    assert cli.main(["purge", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert cli.main(["purge"]) == 0
    done = capsys.readouterr().out
    assert cli.main(["purge"]) == 0
    again = capsys.readouterr().out

    assert dry["dry_run"] is True and dry["calls_hashed"] == 1 and dry["recordings_deleted"] == 1
    assert "were hashed: 1 call(s)" in done and "done (audited" in done
    assert "nothing to do" in again and "rejected.jsonl" not in again

    rejected = services.journal_path(Settings.from_env()).parent / "rejected.jsonl"
    rejected.parent.mkdir(parents=True, exist_ok=True)
    rejected.write_text('{"seq": 7, "op": "open", "args": {}}\n' * 2)
    assert cli.main(["purge"]) == 0
    assert "rejected.jsonl holds 2 write(s) the database refused" in capsys.readouterr().out


def test_given_bad_settings_or_a_busy_lock_when_the_cli_purges_then_distinct_exit_codes(
        line, monkeypatch, tmp_path, capsys):
    store, settings = line
    cli_env(monkeypatch, tmp_path, settings.db_url)
    with retention.one_at_a_time(store, tmp_path / "home" / "run" / "purge.lock"):
        busy = cli.main(["purge"])
    monkeypatch.setenv("VERIFYLINE_RETAIN_RECORDINGS_DAYS", "-1")
    bad = cli.main(["purge"])

    err = capsys.readouterr().err
    assert (busy, bad) == (cli.PURGE_BUSY, cli.PURGE_BAD_SETTINGS) == (75, 78)
    assert "another purge is running" in err
    assert "bad settings: VERIFYLINE_RETAIN_RECORDINGS_DAYS=-1 is outside 1..3650" in err


def test_given_an_applied_journal_started_over_a_day_ago_then_it_is_compacted(
        tmp_path, monkeypatch):
    path = tmp_path / "journal.log"
    journal = Journal(path)
    [entry] = journal.append([("open", {"channel_id": "c1", "caller_number": NUMBER})])
    journal.applied(entry.seq)
    assert NUMBER in path.read_text()  # small and fresh: kept until it grows or ages
    journal.close()

    monkeypatch.setattr("time.time", lambda: os.path.getmtime(path) + 86400 + 1)
    reopened = Journal(path)
    reopened.applied(entry.seq)
    reopened.close()

    assert NUMBER not in path.read_text()
    assert json.loads(path.read_text().splitlines()[0])["base"] == entry.seq + 1
