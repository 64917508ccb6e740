"""The line's side of the console (issue 11): desk state, outcome owed, desk binding,
pre-registration attach, callbacks requested and claimed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ivr import calllog, logops, services
from ivr.config import Settings
from ivr.desks import DeskState, desk_state
from ivr.encounters import open_device_encounter
from ivr.entities import CallData
from ivr.exceptions import ConfigError, ConsoleError
from ivr.models import (
    Call,
    Callback,
    CallEvent,
    CallOutcome,
    ConsoleCommand,
    Encounter,
    EndReason,
    Officer,
    OfficerStatus,
    Supervisor,
)
from ivr.store import Store
from ivr.supervisors import DeskPool
from ivr.telephony import DeskPresence

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
UP = DeskPresence(registered=True, in_use=False)


def _state(**over: bool) -> DeskState:
    base = {"registered": True, "in_use": False, "ringing": False, "talking": False,
            "wrap_up": False, "paused": False, "signed_out": False}
    base.update(over)
    return desk_state(**base)


# --- desk_state: the one place a desk's shown state is decided ---------------------------


@pytest.mark.parametrize(("over", "expected"), [
    ({}, DeskState.FREE),
    ({"ringing": True}, DeskState.RINGING),
    ({"talking": True, "paused": True}, DeskState.TALKING),
    ({"registered": False}, DeskState.UNREGISTERED),
    ({"registered": False, "ringing": True}, DeskState.RINGING),
    ({"wrap_up": True}, DeskState.WRAP_UP),
    ({"wrap_up": True, "paused": True}, DeskState.PAUSED),
    ({"paused": True, "signed_out": True}, DeskState.SIGNED_OUT),
    ({"in_use": True}, DeskState.TALKING),
])
def test_given_what_the_line_knows_when_the_state_is_computed_then_it_is_the_shown_one(
        over: dict[str, bool], expected: DeskState) -> None:
    assert _state(**over) is expected


# --- the desk pool: outcome owed -----------------------------------------------------------


def test_given_a_desk_owing_an_outcome_then_it_is_not_offered_until_the_store_clears_it(
) -> None:
    pool = DeskPool(["desk1"], {})
    pool.owe_outcome("desk1", "c1")
    assert pool.free({"desk1": UP}) == []
    assert pool.wrapping_up("desk1")
    # the store has not written the end yet (last_channel is an older call): still owed
    assert not pool.set_console("desk1", "alice", None, "c0")
    assert pool.free({"desk1": UP}) == []
    # the end written with the outcome given: back in service
    assert pool.set_console("desk1", "alice", None, "c1")
    assert pool.free({"desk1": UP}) == ["desk1"]


def test_given_the_store_says_a_desk_owes_when_the_line_starts_then_it_owes() -> None:
    pool = DeskPool(["desk1"], {})
    pool.set_console("desk1", "alice", "c9", "c9")
    assert pool.free({"desk1": UP}) == []
    assert pool.set_console("desk1", "alice", None, "c9")
    assert pool.free({"desk1": UP}) == ["desk1"]


# --- the store: outcome owed at the call's end, recorded, released ------------------------


def _answered_call(store: Store, channel: str, desk: str, owed: bool) -> int:
    data = CallData(channel_id=channel, caller_number="07700900123", reference="",
                    started_at=T0)
    with store.session() as s:
        calllog.ensure_desks(s, [desk])
        data.reference = calllog.open_call(s, channel, data.caller_number, T0)
    data.answered_desk = data.desk = desk
    data.answered_at, data.outcome_owed = T0 + timedelta(seconds=5), owed
    with store.session() as s:
        calllog.save(s, data, "bridged", {"desk": desk})
    data.ended_at, data.end_reason, data.state = T0 + timedelta(seconds=60), \
        EndReason.CALLER_HANGUP, "ended"
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_hangup"})
        return s.scalars(select(Call.id).where(Call.channel_id == channel)).one()


def _desk(store: Store, desk: str) -> Supervisor:
    with store.session() as s:
        return s.scalars(select(Supervisor).where(Supervisor.desk == desk)).one()


def test_given_a_call_owing_an_outcome_when_it_ends_then_its_desk_owes_it(store: Store) -> None:
    _answered_call(store, "c1", "desk1", owed=True)
    sup = _desk(store, "desk1")
    assert (sup.wrapup_channel, sup.last_channel) == ("c1", "c1")


def test_given_a_phone_only_call_when_it_ends_then_nothing_is_owed(store: Store) -> None:
    _answered_call(store, "c1", "desk1", owed=False)
    sup = _desk(store, "desk1")
    assert (sup.wrapup_channel, sup.last_channel) == (None, "c1")


def test_given_an_owed_outcome_when_it_is_recorded_then_the_desk_is_let_go(store: Store
                                                                          ) -> None:
    call_id = _answered_call(store, "c1", "desk1", owed=True)
    services.record_outcome(store, call_id, "verified", "card seen", "alice", "desk1")
    services.record_outcome(store, call_id, "advice_given", "correction", "alice", "desk1")
    with store.session() as s:
        call = s.get_one(Call, call_id)
        outcomes = [(o.outcome, o.note, o.by_user) for o in s.scalars(
            select(CallOutcome).where(CallOutcome.call_id == call_id).order_by(CallOutcome.id))]
        events = [e.detail for e in s.scalars(select(CallEvent).where(
            CallEvent.call_id == call_id, CallEvent.kind == "outcome"))]
        assert call.outcome == "advice_given"
    assert outcomes == [("verified", "card seen", "alice"), ("advice_given", "correction",
                                                             "alice")]
    assert events[0] == {"outcome": "verified", "note": "card seen", "by": "alice",
                         "desk": "desk1"}
    assert _desk(store, "desk1").wrapup_channel is None


def test_given_the_outcome_recorded_while_talking_when_the_call_ends_then_nothing_is_owed(
        store: Store) -> None:
    with store.session() as s:
        calllog.ensure_desks(s, ["desk1"])
        calllog.open_call(s, "c1", None, T0)
        call_id = s.scalars(select(Call.id)).one()
    services.record_outcome(store, call_id, "verified", "", "alice", "desk1")
    data = CallData(channel_id="c1", caller_number=None, reference="x", started_at=T0)
    data.answered_desk, data.answered_at, data.outcome_owed = "desk1", T0, True
    data.ended_at, data.end_reason = T0, EndReason.CALLER_HANGUP
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_hangup"})
    sup = _desk(store, "desk1")
    assert (sup.wrapup_channel, sup.last_channel) == (None, "c1")


@pytest.mark.parametrize(("call", "outcome", "error", "status"), [
    (999, "verified", "call_not_found", 404), (None, "maybe", "outcome_invalid", 422)])
def test_given_a_bad_outcome_request_when_recorded_then_a_console_error_and_nothing_written(
        store: Store, call: int | None, outcome: str, error: str, status: int) -> None:
    real = _answered_call(store, "c1", "desk1", owed=True)
    with pytest.raises(ConsoleError) as caught:
        services.record_outcome(store, call or real, outcome, "", "alice", "desk1")
    assert (caught.value.error_id, caught.value.status) == (error, status)
    with store.session() as s:
        assert s.scalars(select(CallOutcome)).first() is None
    assert _desk(store, "desk1").wrapup_channel == "c1"


def test_given_a_desk_owing_when_an_admin_releases_it_then_it_owes_nothing(store: Store
                                                                          ) -> None:
    _answered_call(store, "c1", "desk1", owed=True)
    services.release_desk(store, "desk1", "admin")
    assert _desk(store, "desk1").wrapup_channel is None
    with pytest.raises(ConsoleError) as caught:
        services.release_desk(store, "nodesk", "admin")
    assert caught.value.error_id == "desk_unknown"


# --- desk binding -------------------------------------------------------------------------


def test_given_a_free_desk_when_taken_then_its_holder_is_kept_and_others_refused(store: Store
                                                                                ) -> None:
    with store.session() as s:
        calllog.ensure_desks(s, ["desk1"])
    services.take_desk(store, "desk1", "alice")
    services.take_desk(store, "desk1", "alice")  # again: still hers
    with pytest.raises(ConsoleError) as taken:
        services.take_desk(store, "desk1", "bob")
    with pytest.raises(ConsoleError) as unknown:
        services.take_desk(store, "desk9", "bob")
    assert (taken.value.error_id, taken.value.status) == ("desk_taken", 409)
    assert (unknown.value.error_id, unknown.value.status) == ("desk_unknown", 404)
    services.leave_desk(store, "desk1", "bob")  # not his: nothing
    assert services.availability(store)["desk1"].console_user == "alice"
    services.leave_desk(store, "desk1", "alice")
    assert services.availability(store)["desk1"].console_user is None


def test_given_a_desk_owing_when_listed_then_the_view_names_the_calls_reference(store: Store
                                                                              ) -> None:
    _answered_call(store, "c1", "desk1", owed=True)
    with store.session() as s:
        reference = s.scalars(select(Call.reference)).one()
        logops.desk_state_entry("desk1", "wrap_up", T0).apply(s)
    [view] = services.desks(store)
    assert (view.desk, view.state, view.state_since, view.wrapup_channel,
            view.wrapup_reference) == ("desk1", "wrap_up", T0, "c1", reference)


def test_given_a_desk_state_entry_when_journaled_then_it_replays_the_same() -> None:
    op = logops.desk_state_entry("desk1", "talking", T0)
    name, args = logops.CODEC.encode(op)
    assert (name, args) == ("desk_state", {"desk": "desk1", "state": "talking",
                                           "at": T0.isoformat()})
    assert logops.CODEC.decode(name, args) == op


def test_given_an_entry_of_an_earlier_version_when_replayed_then_nothing_is_owed() -> None:
    raw = logops.call_to_json(CallData(channel_id="c1", caller_number=None, reference="1"))
    del raw["outcome_owed"], raw["encounter_reference"]
    data = logops.call_from_json(raw)
    assert (data.outcome_owed, data.encounter_reference) == (False, None)


# --- pre-registration attach ---------------------------------------------------------------


def _officer(store: Store) -> int:
    with store.session() as s:
        officer = Officer(warrant_number="123456", name="Ann Smith", rank="PC",
                          status=OfficerStatus.ACTIVE, on_duty_from=T0 - timedelta(hours=8),
                          on_duty_until=T0 + timedelta(hours=8))
        s.add(officer)
        s.flush()
        return officer.id


def _device_encounter(store: Store, officer_id: int, reference: str, opened: datetime,
                      closed: datetime | None = None) -> None:
    with store.session() as s:
        s.add(Encounter(reference=reference, officer_id=officer_id, opened_at=opened,
                        kind="device", place="High St", purpose="stop", closed_at=closed))


def test_given_pre_registrations_then_the_newest_open_within_12_hours_is_found(store: Store
                                                                             ) -> None:
    officer = _officer(store)
    _device_encounter(store, officer, "700001", T0 - timedelta(hours=13))  # too old
    _device_encounter(store, officer, "700002", T0 - timedelta(hours=2))
    _device_encounter(store, officer, "700003", T0 - timedelta(hours=1))
    _device_encounter(store, officer, "700004", T0 - timedelta(minutes=5), closed=T0)
    with store.session() as s:
        found = open_device_encounter(s, officer, T0)
        assert found is not None and found.reference == "700003"
        assert open_device_encounter(s, officer, T0 + timedelta(hours=14)) is None


def test_given_an_open_pre_registration_when_a_call_is_about_its_officer_then_it_attaches(
        store: Store, tmp_path: Path) -> None:
    officer = _officer(store)
    _device_encounter(store, officer, "700003", T0 - timedelta(hours=1))
    settings = Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)})
    found = services.check_number(store, settings, "123456", "07700900123", "c1", T0)
    assert found.encounter_reference == "700003"
    nobody = services.check_number(store, settings, "999999", "07700900123", "c1", T0)
    assert nobody.encounter_reference is None

    data = CallData(channel_id="c1", caller_number="07700900123", reference="", started_at=T0)
    with store.session() as s:
        data.reference = calllog.open_call(s, "c1", data.caller_number, T0)
    data.officer_id, data.encounter_reference = officer, found.encounter_reference
    with store.session() as s:
        calllog.save(s, data, "roster_checked", {})
    with store.session() as s:
        call = s.scalars(select(Call)).one()
        row = calllog.call_as_json(call)
        # the call's own encounter is gone; what the caller was read is kept
        assert s.scalars(select(Encounter.reference)).all() == ["700003"]
    assert (row["reference"], row["encounter_reference"]) == (data.reference, "700003")
    assert data.reference != "700003"


# --- callbacks ----------------------------------------------------------------------------


def _callback(store: Store, number: str | None) -> int:
    with store.session() as s:
        calllog.ensure_desks(s, ["desk1"])
        calllog.open_call(s, "c1", number, T0)
        call = s.scalars(select(Call)).one()
        cb = Callback(call_id=call.id, caller_number=number, reference=call.reference,
                      created_at=T0)
        s.add(cb)
        s.flush()
        return cb.id


def test_given_a_callback_when_requested_twice_and_claimed_then_one_line_takes_each_once(
        store: Store) -> None:
    cb = _callback(store, "07700900123")
    first = services.request_callback(store, cb, "desk1", "alice")
    [job] = services.claim_callbacks(store, ["desk1"])
    assert (job.command_id, job.desk, job.number, job.requested_by) == (
        first, "desk1", "07700900123", "alice")
    assert services.claim_callbacks(store, ["desk1"]) == []  # claimed: never again
    services.callback_progress(store, first, "callback_placed")
    services.callback_progress(store, first, "callback_answered", "answered")
    with store.session() as s:
        command = s.get_one(ConsoleCommand, first)
        done = s.get_one(Callback, cb)
        kinds = [e.kind for e in s.scalars(select(CallEvent).order_by(CallEvent.id))]
    assert (command.result, command.done_at is not None) == ("answered", True)
    assert (done.done_by, done.done_at is not None) == ("alice", True)
    assert kinds[-2:] == ["callback_placed", "callback_answered"]
    with pytest.raises(ConsoleError) as caught:
        services.request_callback(store, cb, "desk1", "alice")
    assert (caught.value.error_id, caught.value.status) == ("callback_done", 409)


@pytest.mark.parametrize(("number", "callback", "desk", "error", "status"), [
    (None, None, "desk1", "callback_withheld", 422),
    ("07700900123", 999, "desk1", "callback_not_found", 404),
    ("07700900123", None, "desk9", "desk_unknown", 404)])
def test_given_a_bad_callback_request_then_refused_and_nothing_written(
        store: Store, number: str | None, callback: int | None, desk: str, error: str,
        status: int) -> None:
    cb = _callback(store, number)
    with pytest.raises(ConsoleError) as caught:
        services.request_callback(store, callback or cb, desk, "alice")
    assert (caught.value.error_id, caught.value.status) == (error, status)
    with store.session() as s:
        assert s.scalars(select(ConsoleCommand)).first() is None


def test_given_a_callback_for_another_lines_desk_then_it_is_not_claimed(store: Store) -> None:
    cb = _callback(store, "07700900123")
    services.request_callback(store, cb, "desk1", "alice")
    assert services.claim_callbacks(store, ["desk2"]) == []


def test_given_settings_then_outcome_required_and_trunk_uri_are_read(tmp_path: Path
                                                                   ) -> None:
    home = {"VERIFYLINE_HOME": str(tmp_path)}
    base = Settings.from_env(home)
    assert (base.outcome_required, base.trunk_uri) == (True, "sip:127.0.0.2:5060")
    off = Settings.from_env({**home, "VERIFYLINE_OUTCOME_REQUIRED": "off",
                             "VERIFYLINE_TRUNK_URI": "sip:10.0.0.1:5080"})
    assert (off.outcome_required, off.trunk_uri) == (False, "sip:10.0.0.1:5080")
    with pytest.raises(ConfigError):
        Settings.from_env({**home, "VERIFYLINE_TRUNK_URI": "sip:me@10.0.0.1"})


def test_given_a_timeline_event_when_committed_then_the_console_is_woken_on_postgresql(
        store: Store, db_backend: str) -> None:
    from sqlalchemy import text

    with store.engine.connect() as listener:
        if db_backend == "postgresql":
            listener.execute(text("LISTEN verifyline_events"))
            listener.commit()
        _answered_call(store, "c1", "desk1", owed=False)
        if db_backend == "postgresql":
            raw = listener.connection.driver_connection
            assert raw is not None
            got = list(raw.notifies(timeout=2, stop_after=1))
            assert got and {n.channel for n in got} == {"verifyline_events"}
        else:  # SQLite: a no-op (the hub polls); the writes are there all the same
            with store.session() as s:
                assert s.scalars(select(CallEvent)).first() is not None
