"""The screen-pop: what the supervisor's screen shows about a call, and the desk events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ivr import services
from ivr.clock import now
from ivr.exceptions import ConsoleError
from ivr.models import OfficerStatus, RosterResult
from ivr.store import Store
from tests.unit import console_rows as rows


def test_given_an_on_duty_officer_when_the_call_rings_then_the_pop_shows_their_card(
        store: Store) -> None:
    with store.session() as s:
        o = rows.officer(s, photo="4521.jpg")
        sup = rows.desk(s)
        c = rows.call(s, supervisor=sup, flags="asked_for_supervisor,many_lookups")
        call_id, start = c.id, o.on_duty_from
    pop = services.screen_pop(store, call_id)
    assert pop["result"] == {"value": "on_duty", "words": "On duty now",
                             "colour": "result-on_duty"}
    assert pop["caller_number"] == "07700900001" and pop["digits"] == "4521"
    officer = pop["officer"]
    assert (officer["name"], officer["rank"], officer["unit"], officer["station"]) == (
        "Jane Smith", "Sergeant", "Response team 3", "Central")
    assert officer["status"] == "active" and officer["photo"] == "4521.jpg"
    assert start is not None and officer["on_duty_from"] == start.isoformat(
        timespec="milliseconds")
    assert [f["flag"] for f in pop["flags"]] == ["asked_for_supervisor", "many_lookups"]
    assert pop["flags"][1]["words"] == "Many lookups from this number"
    assert pop["phase"] == "ringing" and pop["desk"] == "desk1"
    assert pop["preregistration"] is None and pop["outcomes"] == []


@pytest.mark.parametrize(("status", "words"), [
    (OfficerStatus.WITHDRAWN, "Restricted — card withdrawn: treat with caution"),
    (OfficerStatus.SUSPENDED, "Restricted — suspended: treat with caution"),
    (OfficerStatus.LEFT, "Restricted — left: treat with caution"),
])
def test_given_a_restricted_officer_then_the_words_say_why(store: Store, status: OfficerStatus,
                                                           words: str) -> None:
    with store.session() as s:
        rows.officer(s, status=status)
        call_id = rows.call(s, result=RosterResult.RESTRICTED).id
    pop = services.screen_pop(store, call_id)
    assert pop["result"]["words"] == words and pop["result"]["colour"] == "result-restricted"


def test_given_no_number_keyed_and_a_withheld_caller_then_words_and_no_history(
        store: Store) -> None:
    with store.session() as s:
        rows.call(s, caller=None, digits="", result=RosterResult.NONE_ENTERED)
        call_id = rows.call(s, caller=None, digits="", result=RosterResult.NONE_ENTERED).id
    pop = services.screen_pop(store, call_id)
    assert pop["caller_number"] == "withheld" and pop["officer"] is None
    assert pop["result"]["words"] == "No number entered"
    assert pop["history"]["caller"] == [] and pop["history"]["officer"] == []


def test_given_earlier_calls_when_popped_then_the_last_30_days_about_officer_and_caller(
        store: Store) -> None:
    with store.session() as s:
        rows.officer(s)
        about = rows.call(s, caller="07700900999", started=now() - timedelta(days=3),
                          outcome="verified", ended=True)
        rows.call(s, caller="07700900998", started=now() - timedelta(days=31), ended=True)
        same_caller = rows.call(s, digits="9999", result=RosterResult.UNKNOWN,
                                started=now() - timedelta(days=1), ended=True)
        call_id = rows.call(s).id
        about_id, caller_id = about.id, same_caller.id
    pop = services.screen_pop(store, call_id)
    assert [h["call_id"] for h in pop["history"]["officer"]] == [about_id]
    assert pop["history"]["officer"][0]["outcome_words"] == "Verified"
    assert [h["call_id"] for h in pop["history"]["caller"]] == [caller_id]
    assert pop["history"]["caller"][0]["result"] == "unknown"


def test_given_a_call_attached_to_a_preregistration_then_the_pop_shows_it(
        store: Store) -> None:
    with store.session() as s:
        o = rows.officer(s)
        enc = rows.preregistered(s, o)
        call_id = rows.call(s, encounter=enc, reference="654321").id
        enc_ref = enc.reference
    pop = services.screen_pop(store, call_id)
    pre = pop["preregistration"]
    assert pre["reference"] == enc_ref and pop["reference"] == "654321"
    assert pre["place"] == "High Street, outside no. 12" and pre["purpose"] == "Stop and search"
    assert (pre["latitude"], pre["longitude"]) == (51.5, -0.12)
    assert pre["device"] == "Jane's phone"


def test_given_outcomes_then_each_entry_with_who_and_when_and_the_latest_on_top(
        store: Store) -> None:
    with store.session() as s:
        c = rows.call(s, ended=True)
        rows.outcome(s, c, "not_verified", note="wrong number keyed")
        rows.outcome(s, c, "verified", by="admin", note="correction")
        call_id = c.id
    pop = services.screen_pop(store, call_id)
    assert pop["phase"] == "ended" and pop["outcome"] == "verified"
    assert [(o["outcome"], o["by"], o["note"]) for o in pop["outcomes"]] == [
        ("not_verified", "supervisor", "wrong number keyed"), ("verified", "admin", "correction")]


def test_given_no_such_call_then_call_not_found(store: Store) -> None:
    with pytest.raises(ConsoleError) as refused:
        services.screen_pop(store, 999)
    assert refused.value.error_id == "call_not_found" and refused.value.status == 404


def test_given_events_when_followed_then_desk_events_with_their_desk(store: Store) -> None:
    start = services.last_event_id(store)
    with store.session() as s:
        sup = rows.desk(s, "desk2")
        c = rows.call(s, supervisor=sup)
        rows.event(s, c, "digit", digit="4")
        ringing = rows.event(s, c, "desk_ringing", desk="desk1", channel="x-desk1")
        rows.event(s, c, "desk_cancelled", desk="desk1", channel="x-desk1")
        ended = rows.event(s, c, "ended", reason="caller_hangup")
        ringing_id, ended_id = ringing.id, ended.id
    events = services.desk_events_since(store, start)
    assert [(e.kind, e.desk, e.phase) for e in events] == [
        ("desk_ringing", "desk1", "ringing"), ("desk_cancelled", "desk1", "cleared"),
        ("ended", "desk2", "ended")]
    assert [e.id for e in services.desk_events_since(store, ringing_id, desk="desk2")] == [
        ended_id]
    assert services.latest_desk_event(store, "desk1") is not None
    assert services.desk_events_since(store, ended_id) == []
