"""The roster's console side: the CSV's optional unit,station,photo columns (the 6-column
file unchanged), and an edit seen by the line's very next lookup."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr import roster, services
from ivr.config import Settings
from ivr.exceptions import ConsoleError, RosterImportError
from ivr.models import AuditEntry, Officer, RosterResult
from ivr.roster import OfficerEdit
from ivr.store import Store

HEADER = "warrant_number,name,rank,status,on_duty_from,on_duty_until"
WINDOW = "2000-01-01T00:00:00+00:00,2100-01-01T00:00:00+00:00"
AT = datetime(2030, 1, 1, tzinfo=UTC)


def _officer(store: Store, number: str) -> Officer:
    with store.session() as s:
        return s.scalars(select(Officer).where(Officer.warrant_number == number)).one()


def test_given_the_old_six_columns_when_parsed_then_unit_station_photo_are_not_given() -> None:
    (row,) = roster.parse_csv(f"{HEADER}\n123456,Jane Smith,PC,active,{WINDOW}\n")
    assert (row.unit, row.station, row.photo) == (None, None, None)


def test_given_the_extra_columns_when_imported_then_kept_and_a_later_six_column_file_keeps_them(
        store: Store) -> None:
    text = (f"{HEADER},unit,station,photo\n"
            f"123456,Jane Smith,PC,active,{WINDOW},Traffic,Bow Street,jane.jpg\n")
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(text))
    jane = _officer(store, "123456")
    assert (jane.unit, jane.station, jane.photo) == ("Traffic", "Bow Street", "jane.jpg")
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(f"{HEADER}\n123456,Jane Smith,PS,active,,\n"))
    jane = _officer(store, "123456")
    assert (jane.rank, jane.unit, jane.station, jane.photo) == ("PS", "Traffic", "Bow Street",
                                                                "jane.jpg")
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(
            f"{HEADER},unit\n123456,Jane Smith,PS,active,,,\n"))
    assert _officer(store, "123456").unit == ""


@pytest.mark.parametrize(("header", "row", "line_error"), [
    (f"{HEADER},station", None, "header must be"),  # unit left out but station given
    (f"{HEADER},unit,station", "1,A,PC,active,,,Traffic", "expected 8 fields"),
    (f"{HEADER},unit,station,photo", "1,A,PC,active,,,,,../etc/passwd", "photo"),
    (f"{HEADER},unit,station,photo", "1,A,PC,active,,,,,me.gif", "photo"),
])
def test_given_bad_extra_columns_when_parsed_then_refused_with_the_line(
        header: str, row: str | None, line_error: str) -> None:
    with pytest.raises(RosterImportError) as caught:
        roster.parse_csv(header + "\n" + (row or "1,A,PC,active,,") + "\n")
    assert line_error in str(caught.value)


def test_given_a_withdrawn_card_when_edited_then_the_next_lookup_says_restricted(
        store: Store, tmp_path: Path) -> None:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(f"{HEADER}\n123456,Jane Smith,PC,active,"
                                                  f"{WINDOW}\n"))
    settings = replace(Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)}),
                       db_url=str(store.engine.url))
    before = services.check_number(store, settings, "123456", None, "c1", AT)
    assert before.result is RosterResult.ON_DUTY
    jane = _officer(store, "123456")
    services.edit_officer(store, jane.id, OfficerEdit(
        name="Jane Smith", rank="PC", unit="", station="", status="withdrawn",
        on_duty_from="2000-01-01T00:00", on_duty_until="2100-01-01T00:00"), "admin")
    after = services.check_number(store, settings, "123456", None, "c2", AT)
    assert after.result is RosterResult.RESTRICTED
    with store.session() as s:
        (entry,) = s.scalars(select(AuditEntry).where(AuditEntry.action == "officer_edit"))
    assert entry.detail == {"before": {"status": "active"}, "after": {"status": "withdrawn"}}


def test_given_no_change_when_an_officer_is_saved_then_nothing_audited(store: Store) -> None:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(f"{HEADER}\n123456,Jane Smith,PC,active,,\n"))
    jane = _officer(store, "123456")
    services.edit_officer(store, jane.id, OfficerEdit("Jane Smith", "PC", "", "", "active",
                                                      "", ""), "admin")
    with store.session() as s:
        assert s.scalars(select(AuditEntry)).first() is None


def test_given_a_roster_import_through_services_then_counts_and_a_bad_file_writes_nothing(
        store: Store) -> None:
    counts = services.import_roster(store, f"{HEADER}\n1111,A B,PC,active,,\n", "cli")
    assert counts == {"rows": 1, "added": 1, "updated": 0, "removed": 0, "marked_left": 0}
    with pytest.raises(RosterImportError):
        services.import_roster(store, f"{HEADER}\n2222,,PC,active,,\n", "cli")
    assert [o["warrant_number"] for o in services.officers(store)] == ["1111"]
    with store.session() as s:
        assert len(list(s.scalars(select(AuditEntry)))) == 1


def test_given_an_unknown_officer_when_edited_then_officer_not_found(store: Store) -> None:
    with pytest.raises(ConsoleError) as caught:
        services.edit_officer(store, 999, OfficerEdit("A", "", "", "", "active", "", ""), "x")
    assert caught.value.error_id == "officer_not_found" and caught.value.status == 404
