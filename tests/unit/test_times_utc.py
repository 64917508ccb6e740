"""Every stored time is an instant in UTC, on every backend (issue 9, item 1): a duty window
written in +05:30 used to lose its offset on SQLite and be read back 5 h 30 late."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError

from ivr import calllog
from ivr.models import Call, CallEvent, Officer, OfficerStatus, RosterResult
from ivr.roster import LOST_OFFSETS_NOTICE, lookup, parse_csv, replace_roster
from ivr.store import Store, alembic_config, notices
from ops import cli

HEADER = "warrant_number,name,rank,status,on_duty_from,on_duty_until\n"
OFFSETS = {
    "+05:30": timezone(timedelta(hours=5, minutes=30)),
    "-04:00": timezone(timedelta(hours=-4)),
    "+01:00": timezone(timedelta(hours=1)),  # a roster exported in UK summer time
}
US = timedelta(microseconds=1)


def _import_window(store: Store, zone: timezone) -> tuple[datetime, datetime]:
    """Import one officer on duty 08:00 to 16:00 local time in ``zone``; return the window."""
    start = datetime(2026, 6, 15, 8, 0, tzinfo=zone)
    end = start + timedelta(hours=8)
    with store.session() as s:
        replace_roster(s, parse_csv(
            HEADER + f"4242,Asha Rao,PC,active,{start.isoformat()},{end.isoformat()}\n"))
    return start, end


@pytest.mark.parametrize("offset", OFFSETS)
def test_given_window_in_an_offset_when_imported_then_lookup_is_exact_at_its_edges(
        store, offset):
    start, end = _import_window(store, OFFSETS[offset])
    expected = [
        (start - timedelta(seconds=1), RosterResult.OFF_DUTY),
        (start - US, RosterResult.OFF_DUTY),
        (start, RosterResult.ON_DUTY),
        (end - US, RosterResult.ON_DUTY),
        (end, RosterResult.OFF_DUTY),
    ]
    with store.session() as s:
        # asked in UTC, as the line asks (ivr.clock.now())
        got = [(at, lookup(s, "4242", at.astimezone(UTC)).result) for at, _ in expected]
    assert got == expected


@pytest.mark.parametrize("offset", OFFSETS)
def test_given_window_in_an_offset_when_read_back_then_aware_utc_at_the_same_instant(
        store, offset):
    start, end = _import_window(store, OFFSETS[offset])
    with store.session() as s:
        officer = s.scalars(select(Officer)).one()
    assert (officer.on_duty_from, officer.on_duty_until) == (start, end)
    for value in (officer.on_duty_from, officer.on_duty_until):
        assert value is not None and value.tzinfo is UTC


def test_given_call_times_in_an_offset_when_written_then_read_back_as_the_instant_in_utc(store):
    started = datetime(2026, 12, 1, 17, 50, 38, 123456, tzinfo=OFFSETS["+05:30"])
    answered = datetime(2026, 12, 1, 8, 21, tzinfo=OFFSETS["-04:00"])
    with store.session() as s:
        calllog.open_call(s, "chan-1", "07700900001", started)
        s.scalars(select(Call)).one().answered_at = answered
    with store.session() as s:
        call = s.scalars(select(Call)).one()
        assert call.started_at == started and call.started_at.tzinfo is UTC
        assert call.answered_at == answered and call.answered_at.tzinfo is UTC
        assert call.encounter.opened_at == started
        assert calllog.list_calls(s)[0]["started_at"] == "2026-12-01T12:20:38.123+00:00"
        # compared in the database too: one second before the start, in yet another offset
        since = (started - timedelta(seconds=1)).astimezone(OFFSETS["-04:00"])
        assert s.scalar(select(Call.id).where(Call.started_at >= since)) == call.id
        assert s.scalar(select(Call.id).where(Call.started_at > started)) is None


def test_given_a_naive_datetime_when_written_then_refused_with_a_clear_error(store):
    refused = pytest.raises(StatementError, match="naive datetime 2026-12-01T17:50:38 given")
    with refused, store.session() as s:
        s.add(Officer(warrant_number="1", name="n", rank="PC", status=OfficerStatus.ACTIVE,
                      on_duty_from=datetime(2026, 12, 1, 17, 50, 38),
                      on_duty_until=datetime(2026, 12, 2, 5, 50, 38, tzinfo=UTC)))


# --- migration 0007 ------------------------------------------------------------------------


def _at_0006(url: str) -> None:
    """Migrate a new database only as far as the version before times were made UTC."""
    store = Store(url)
    cfg = alembic_config(url)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    store.dispose()


def _doctor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str,
            home: Path) -> str:
    monkeypatch.setenv("VERIFYLINE_DB_URL", url)
    monkeypatch.setenv("VERIFYLINE_HOME", str(home))
    capsys.readouterr()
    cli.main(["doctor"])  # other checks fail here (no lab): only the store's lines matter
    return capsys.readouterr().out


def test_given_sqlite_rows_of_old_versions_when_migrated_then_utc_and_a_notice_until_import(
        tmp_path, caplog, capsys, monkeypatch):
    # SQLite whatever VERIFYLINE_TEST_DB says: only SQLite's stored text needs rewriting
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _at_0006(url)
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO officer (id, warrant_number, name, rank, status, on_duty_from, "
            "on_duty_until) VALUES "
            # what the old importer wrote for a +05:30 window: wall time, offset dropped
            "(1, '111', 'Old Import', 'PC', 'active', '2026-12-01 17:50:38.000000', "
            "'2026-12-02 05:50:38.000000'), "
            # what another tool may write: the offset kept in the text
            "(2, '222', 'Other Tool', 'PC', 'active', '2026-12-01T17:50:38+05:30', "
            "'2026-12-02T05:50:38-04:00'), "
            "(3, '333', 'No Window', 'PC', 'active', NULL, NULL)"))
        conn.execute(text("INSERT INTO encounter (id, reference, opened_at) "
                          "VALUES (1, 'ABC123', '2026-12-01 12:00:00.000000')"))
        conn.execute(text(
            "INSERT INTO call (id, channel_id, encounter_id, digits_entered, started_at, "
            "answered_at, ended_at, path, state, flags, language) VALUES "
            "(1, 'c1', 1, '', '2026-12-01 12:00:00.000000', '2026-12-01T08:00:05-04:00', "
            "'2026-12-01T13:00:09+01:00', 'ari', 'ended', '', 'en')"))
        conn.execute(text("INSERT INTO call_event (id, call_id, at, kind, detail) "
                          "VALUES (1, 1, '2026-12-01T17:30:00+05:30', 'answered', '{}')"))

    with caplog.at_level(logging.WARNING):
        store.migrate()

    with store.engine.connect() as conn:
        raw = conn.execute(text("SELECT id, on_duty_from, on_duty_until FROM officer "
                                "ORDER BY id")).all()
        call = conn.execute(text("SELECT started_at, answered_at, ended_at FROM call")).one()
        event_at = conn.execute(text("SELECT at FROM call_event")).scalar_one()
    assert raw == [
        (1, "2026-12-01 17:50:38.000000", "2026-12-02 05:50:38.000000"),  # kept: no offset
        (2, "2026-12-01 12:20:38.000000", "2026-12-02 09:50:38.000000"),
        (3, None, None),
    ]
    assert tuple(call) == ("2026-12-01 12:00:00.000000", "2026-12-01 12:00:05.000000",
                           "2026-12-01 12:00:09.000000")
    assert event_at == "2026-12-01 12:00:00.000000"
    with store.session() as s:
        other = s.scalars(select(Officer).where(Officer.id == 2)).one()
        assert other.on_duty_from == datetime(2026, 12, 1, 12, 20, 38, tzinfo=UTC)
        assert s.scalars(select(CallEvent)).one().at.tzinfo is UTC
        assert [n.key for n in notices(s)] == [LOST_OFFSETS_NOTICE]
    # only officer 1's window is unrecoverable
    assert any(r.levelno == logging.WARNING and "1 officer(s)" in r.getMessage()
               for r in caplog.records), caplog.text

    out = _doctor(capsys, monkeypatch, url, tmp_path / "home")
    assert f"FAIL stored data ({LOST_OFFSETS_NOTICE}): the duty windows of 1 officer(s)" in out
    assert "fix: re-import the roster: verifyline roster import FILE" in out

    roster = tmp_path / "roster.csv"
    roster.write_text(HEADER + "111,Old Import,PC,active,2026-12-01T17:50:38+05:30,"
                      "2026-12-02T05:50:38+05:30\n", encoding="utf-8")
    monkeypatch.setenv("VERIFYLINE_DB_URL", url)
    assert cli.main(["roster", "import", str(roster)]) == 0
    with store.session() as s:
        assert notices(s) == []
        assert lookup(s, "111", datetime(2026, 12, 1, 12, 20, 38, tzinfo=UTC)).result \
            is RosterResult.ON_DUTY
    assert "stored data" not in _doctor(capsys, monkeypatch, url, tmp_path / "home")
    store.dispose()


def test_given_a_window_stored_with_its_offset_when_migrated_then_same_instant_and_no_notice(
        empty_db_url):
    # on PostgreSQL timestamptz kept the instant (nothing to rewrite); on SQLite the text
    # kept the offset (rewritten in UTC): either way nothing was lost, so no notice
    _at_0006(empty_db_url)
    store = Store(empty_db_url)
    with store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO officer (id, warrant_number, name, rank, status, on_duty_from, "
            "on_duty_until) VALUES (1, '111', 'A', 'PC', 'active', "
            "'2026-12-01T17:50:38+05:30', '2026-12-02T05:50:38-04:00')"))
    store.migrate()
    with store.session() as s:
        officer = s.scalars(select(Officer)).one()
        assert officer.on_duty_from == datetime(2026, 12, 1, 12, 20, 38, tzinfo=UTC)
        assert officer.on_duty_until == datetime(2026, 12, 2, 9, 50, 38, tzinfo=UTC)
        assert officer.on_duty_from.tzinfo is UTC
        assert notices(s) == []
    store.dispose()
