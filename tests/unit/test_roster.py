"""Roster CSV import and the lab contract's classification rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.exceptions import RosterImportError
from ivr.models import Officer, OfficerStatus, RosterResult
from ivr.roster import (
    Lookup,
    RosterCopy,
    classify,
    lookup,
    officer_cards,
    parse_csv,
    replace_roster,
)

HEADER = "warrant_number,name,rank,status,on_duty_from,on_duty_until\n"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
WINDOW = "2026-11-24T08:00:00+00:00,2026-11-24T16:00:00+00:00"


def officer(status: OfficerStatus, on_duty: bool) -> Officer:
    start, end = (datetime(2026, 11, 24, 8, tzinfo=UTC), datetime(2026, 11, 24, 16, tzinfo=UTC))
    return Officer(warrant_number="1", name="n", rank="PC", status=status,
                   on_duty_from=start if on_duty else None, on_duty_until=end if on_duty else None)


@pytest.mark.parametrize(("status", "on_duty", "expected"), [
    (OfficerStatus.ACTIVE, True, RosterResult.ON_DUTY),
    (OfficerStatus.ACTIVE, False, RosterResult.OFF_DUTY),
    (OfficerStatus.SUSPENDED, True, RosterResult.RESTRICTED),
    (OfficerStatus.WITHDRAWN, True, RosterResult.RESTRICTED),
    (OfficerStatus.LEFT, False, RosterResult.RESTRICTED),
])
def test_given_officer_when_classified_then_contract_rules_apply(status, on_duty, expected):
    assert classify(officer(status, on_duty), "1", NOW) is expected


def test_given_window_over_when_classified_then_off_duty():
    late = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # the window's end is exclusive
    assert classify(officer(OfficerStatus.ACTIVE, True), "1", late) is RosterResult.OFF_DUTY


def test_given_no_digits_or_unknown_then_none_entered_or_unknown():
    assert classify(None, "", NOW) is RosterResult.NONE_ENTERED
    assert classify(None, "999", NOW) is RosterResult.UNKNOWN


def test_given_csv_with_leading_zeros_when_imported_then_numbers_kept_as_strings(store):
    rows = parse_csv(HEADER + f"0042,Ann Lee,PS,active,{WINDOW}\n")
    with store.session() as s:
        replace_roster(s, rows)
    with store.session() as s:
        found = lookup(s, "0042", NOW)
        assert found.result is RosterResult.ON_DUTY
        assert lookup(s, "42", NOW).result is RosterResult.UNKNOWN


def test_given_bad_rows_when_parsed_then_every_problem_is_reported_with_its_line():
    text = HEADER + (
        f"123,Good,PC,active,{WINDOW}\n"
        "12a,Bad number,PC,active,,\n"
        "124,Bad status,PC,retired,,\n"
        "125,No offset,PC,active,2026-11-24T08:00:00,2026-11-24T16:00:00\n"
        "123,Repeat,PC,active,,\n"
        "126,Short row,PC\n"
    )
    with pytest.raises(RosterImportError) as err:
        parse_csv(text)
    lines = [n for n, _ in err.value.problems]
    assert lines == [3, 4, 5, 6, 7]
    assert "line 4: status 'retired'" in str(err.value)


def test_given_bad_file_when_imported_then_nothing_changes(store):
    with store.session() as s:
        replace_roster(s, parse_csv(HEADER + f"123,A,PC,active,{WINDOW}\n"))
    with pytest.raises(RosterImportError):
        parse_csv(HEADER + "456,B,PC,active,,\n789,C,PC,nope,,\n")
    with store.session() as s:
        assert lookup(s, "123", NOW).result is RosterResult.ON_DUTY


def test_given_wrong_header_then_refused():
    with pytest.raises(RosterImportError, match="line 1: header"):
        parse_csv("number,name\n1,x\n")


def test_given_new_roster_when_replaced_then_missing_officers_removed(store):
    with store.session() as s:
        replace_roster(s, parse_csv(HEADER + "1,A,PC,active,,\n2,B,PC,active,,\n"))
    with store.session() as s:
        replace_roster(s, parse_csv(HEADER + "2,B,DS,suspended,,\n"))
    with store.session() as s:
        assert lookup(s, "1", NOW).result is RosterResult.UNKNOWN
        assert lookup(s, "2", NOW).result is RosterResult.RESTRICTED


def test_given_officers_when_the_roster_copy_reads_them_then_each_card_answers_as_the_roster(
        store):
    with store.session() as s:
        replace_roster(s, parse_csv(HEADER + f"0042,Ann Smith,PC,active,{WINDOW}\n"
                                    "0043,Bob Jones,Sgt,suspended,,\n"))
    with store.session() as s:
        cards = officer_cards(s)
        expected = {n: lookup(s, n, NOW) for n in ("0042", "0043")}

    copy = RosterCopy()
    copy.replace(cards, NOW)

    assert {n: copy.lookup(n, NOW) for n in ("0042", "0043")} == expected
    assert expected["0042"] == Lookup(RosterResult.ON_DUTY, expected["0042"].officer_id,
                                      "PC Ann Smith")
    assert expected["0043"].result is RosterResult.RESTRICTED
    assert copy.lookup("9999", NOW) == Lookup(RosterResult.UNKNOWN)
