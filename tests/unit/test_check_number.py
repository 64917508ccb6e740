"""What the line asks the store when a caller presses '#' (ivr.services.check_number): the
officer's card, the caller's lookups in the rate window and the officer's open pre-registered
encounter, answered by one statement outside a transaction (on PostgreSQL every statement and
every BEGIN and COMMIT is a round trip; benchmarks/scale.py measures the lookup's p99)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from ivr import services
from ivr.config import Settings
from ivr.models import (
    Call,
    CallPath,
    Encounter,
    EncounterKind,
    Officer,
    OfficerStatus,
    RosterResult,
)
from ivr.store import Store

NOW = datetime(2026, 7, 14, 11, 0, tzinfo=UTC)
CALLER = "07700900123"
# the same instant as others write it: India, New York, and the UK in summer time
OFFSETS = [timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-4)),
           timezone(timedelta(hours=1))]


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements sent to the database meanwhile."""
    seen: list[str] = []

    def capture(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)


def an_officer_on_duty(store: Store, number: str = "4242") -> int:
    with store.session() as s:
        officer = Officer(warrant_number=number, name="Ann Smith", rank="PC",
                          status=OfficerStatus.ACTIVE, on_duty_from=NOW - timedelta(hours=2),
                          on_duty_until=NOW + timedelta(hours=6))
        s.add(officer)
        s.flush()
        return officer.id


def a_device_encounter(store: Store, officer_id: int, opened_at: datetime, ref: str) -> None:
    with store.session() as s:
        s.add(Encounter(reference=ref, opened_at=opened_at, kind=EncounterKind.DEVICE.value,
                        officer_id=officer_id))


def past_lookups(store: Store, caller: str | None, at: list[datetime]) -> None:
    with store.session() as s:
        for i, started in enumerate(at):
            enc = Encounter(reference=f"8{i:05d}", caller_number=caller, opened_at=started,
                            kind=EncounterKind.CALL.value)
            s.add(enc)
            s.flush()
            s.add(Call(channel_id=f"past-{caller}-{i}", reference=enc.reference,
                       encounter_id=enc.id, caller_number=caller, digits_entered="999999",
                       roster_result=RosterResult.UNKNOWN, started_at=started,
                       ended_at=started + timedelta(minutes=1), end_reason="caller_hangup",
                       path=CallPath.ARI, state="ended"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, db_url="", rate_limit=2, rate_window=600.0)


@pytest.mark.parametrize("offset", OFFSETS, ids=["+05:30", "-04:00", "+01:00"])
def test_given_an_officer_pre_registered_and_a_busy_caller_when_checked_then_one_statement_says_all(
        store: Store, settings: Settings, offset: timezone) -> None:
    officer = an_officer_on_duty(store)
    a_device_encounter(store, officer, NOW - timedelta(hours=13), "100001")  # expired
    a_device_encounter(store, officer, NOW - timedelta(hours=1), "100002")
    a_device_encounter(store, officer, NOW + timedelta(minutes=5), "100003")  # not yet open
    # two lookups inside the window, one before it, and this call's own row
    past_lookups(store, CALLER, [NOW - timedelta(minutes=9), NOW - timedelta(minutes=1),
                                 NOW - timedelta(minutes=11)])

    with statements(store) as sent:
        found = services.check_number(store, settings, "4242", CALLER, "new-call",
                                      NOW.astimezone(offset))

    assert len(sent) == 1
    assert found.result is RosterResult.ON_DUTY
    assert (found.officer_id, found.officer_label) == (officer, "PC Ann Smith")
    assert found.encounter_reference == "100002"
    assert found.flagged  # two before, this one is the third: over the limit of two


def test_given_a_caller_under_the_rate_when_checked_then_not_flagged(
        store: Store, settings: Settings) -> None:
    an_officer_on_duty(store)
    past_lookups(store, CALLER, [NOW - timedelta(minutes=1)])

    found = services.check_number(store, settings, "4242", CALLER, "new-call", NOW)

    assert not found.flagged
    assert found.encounter_reference is None


@pytest.mark.parametrize("withheld", [None, "anonymous"])
def test_given_many_withheld_lookups_when_a_withheld_caller_checks_then_never_flagged(
        store: Store, settings: Settings, withheld: str | None) -> None:
    an_officer_on_duty(store)
    past_lookups(store, withheld, [NOW - timedelta(minutes=m) for m in (1, 2, 3, 4)])

    found = services.check_number(store, settings, "4242", withheld, "new-call", NOW)

    assert found.result is RosterResult.ON_DUTY
    assert not found.flagged


@pytest.mark.parametrize(("digits", "result"), [("111111", RosterResult.UNKNOWN),
                                                ("", RosterResult.NONE_ENTERED)])
def test_given_digits_no_officer_has_when_checked_then_no_officer_and_no_encounter(
        store: Store, settings: Settings, digits: str, result: RosterResult) -> None:
    officer = an_officer_on_duty(store)
    a_device_encounter(store, officer, NOW - timedelta(hours=1), "100004")

    with statements(store) as sent:
        found = services.check_number(store, settings, digits, CALLER, "new-call", NOW)

    assert len(sent) == 1
    assert found.result is result
    assert (found.officer_id, found.officer_label, found.encounter_reference) == (None, "", None)
    assert not found.flagged
