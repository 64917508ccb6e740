"""A withheld caller is withheld in every form the network gives it (issue 9 item 6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ivr import calllog
from ivr.callers import caller_number, shown
from ivr.entities import CallData
from ivr.models import EndReason, RosterResult
from ivr.spool import parse_line
from ivr.store import Store

WITHHELD_FORMS = [
    None, "", "   ", "anonymous", "Anonymous", "ANONYMOUS", "anonymous@anonymous.invalid",
    "sip:anonymous@anonymous.invalid", "sips:Anonymous@anonymous.invalid;user=phone",
    "Restricted", "restricted", "Withheld", "PRIVATE", "Unavailable", "unknown",
    "sip:127.0.0.2", "abc", "+", "-", "caller",
]
NUMBERS = [
    ("07700900123", "07700900123"),
    ("+447700900123", "+447700900123"),
    (" 07700900123 ", "07700900123"),
    ("07700900123@127.0.0.2", "07700900123"),
    ("sip:07700900123@127.0.0.2", "07700900123"),
    ("tel:+447700900123", "+447700900123"),
    ("sip-user-999", "sip-user-999"),  # whatever the far end sends, if it has a digit
]


@pytest.mark.parametrize("raw", WITHHELD_FORMS)
def test_given_a_withheld_form_when_normalised_then_none_and_shown_withheld(raw):
    assert caller_number(raw) is None
    assert shown(raw) == "withheld"


@pytest.mark.parametrize(("raw", "number"), NUMBERS)
def test_given_a_number_when_normalised_then_the_number_is_kept_and_shown(raw, number):
    assert caller_number(raw) == number
    assert shown(raw) == number


@pytest.mark.parametrize("caller", ["anonymous", "Restricted", ""])
def test_given_a_fallback_spool_line_from_a_withheld_caller_then_its_number_is_none(caller):
    line = f"v1|1700000100.13|1700000100.000|1700000105.000||{caller}|CANCEL|||ringing"
    assert parse_line(line).caller_number is None


def abandoned(store: Store, channel_id: str, number: str | None, started: datetime) -> None:
    with store.session() as s:
        ref = calllog.open_call(s, channel_id, number, started)
    data = CallData(channel_id=channel_id, caller_number=number, reference=ref,
                    started_at=started, digits="123456", roster_result=RosterResult.ON_DUTY,
                    queued_at=started, ended_at=started, end_reason=EndReason.CALLER_ABANDONED,
                    state="ended")
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_abandoned"})


def test_given_rows_logged_with_a_raw_withheld_form_then_the_listings_say_withheld(store):
    # rows written before the number was normalised on the way in
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    abandoned(store, "5.1", "anonymous", started)
    abandoned(store, "5.2", "Restricted", started)
    with store.session() as s:
        calls = calllog.list_calls(s)
        listed = calllog.callbacks(s)
    assert [c["caller_number"] for c in calls] == [None, None]
    assert [c["caller_number"] for c in listed] == ["withheld", "withheld"]


def test_given_many_withheld_calls_then_the_rate_flag_never_counts_them_as_one_number(store):
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    for n, raw in enumerate(["anonymous", "anonymous", "anonymous", "Restricted"]):
        abandoned(store, f"6.{n}", raw, started)
    with store.session() as s:
        since = started - timedelta(minutes=10)
        assert calllog.recent_lookups(s, "anonymous", "6.9", since) == 0
        assert calllog.recent_lookups(s, None, "6.9", since) == 0
