"""A journal chunk applied at once (ivr.calllog.Batch: bulk statements) writes exactly the rows
the entries applied one by one (each in its own transaction, the ORM path) write: the call
rows, the timelines in order, encounters, desks, callbacks — field by field."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from ivr import calllog, logops
from ivr.entities import CallData
from ivr.journal import DurableLog, Journal
from ivr.models import (
    Call,
    Callback,
    CallEvent,
    Encounter,
    EncounterKind,
    EndReason,
    Officer,
    OfficerStatus,
    RosterResult,
    Supervisor,
)
from ivr.store import Store
from tests.unit.conftest import _database

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PRE_REGISTERED = "900001"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def a_verified_call(channel: str, desk: str, start: float, officer: int, *, owed: bool = False,
                    pre_registered: bool = False) -> list[tuple[float, logops.Operation]]:
    d = CallData(channel_id=channel, caller_number="07700900123", reference=f"4{channel[-5:]}",
                 started_at=at(start))
    out: list[tuple[float, logops.Operation]] = [(start, logops.open_entry(d, d.reference))]

    def save(t: float, kind: str, **detail: object) -> None:
        out.append((start + t, logops.save_entry(d, kind, detail, at(start + t))))

    d.state = "collecting"
    for i, key in enumerate("123456"):
        d.digits += key
        save(1 + 0.1 * i, "key", digit=key)
    d.roster_result, d.officer_id = RosterResult.ON_DUTY, officer
    if pre_registered:
        d.encounter_reference = PRE_REGISTERED
    save(2.0, "roster_checked", result="on_duty")
    d.language, d.flags = "pl", {"emergency"}
    d.state, d.queued_at, d.hold_bridge_id = "connecting", at(start + 3), f"{channel}-hold"
    save(3.0, "queued", emergency=True)
    d.desk, d.desk_channel_id = desk, f"{channel}-desk1"
    save(3.1, "desk_ringing", desk=desk, channel=d.desk_channel_id)
    out.append((start + 3.1, logops.desk_state_entry(desk, "ringing", at(start + 3.1))))
    d.state, d.answered_desk, d.answered_at = "whispering", desk, at(start + 4)
    d.outcome_owed = owed
    save(4.0, "answered", desk=desk)
    out.append((start + 4.0, logops.desk_state_entry(desk, "talking", at(start + 4))))
    d.state, d.bridge_id, d.recording = "bridged", f"{channel}-bridge", f"{channel}-rec"
    d.flags.add("asked_for_supervisor")
    save(6.0, "bridged", bridge=d.bridge_id)
    d.state, d.ended_at, d.end_reason = "ended", at(start + 9), EndReason.CALLER_HANGUP
    save(9.0, "ended", reason="caller_hangup")
    save(9.1, "recording_saved", name=d.recording)  # an event after the end
    out.append((start + 9.1, logops.desk_state_entry(desk, "free", at(start + 9.1))))
    return out


def an_abandoned_call(channel: str, start: float) -> list[tuple[float, logops.Operation]]:
    d = CallData(channel_id=channel, caller_number="07700900456", reference=f"5{channel[-5:]}",
                 started_at=at(start))
    out: list[tuple[float, logops.Operation]] = [(start, logops.open_entry(d, d.reference))]
    d.digits, d.roster_result, d.state = "99", RosterResult.UNKNOWN, "connecting"
    d.queued_at = at(start + 1)
    out.append((start + 1, logops.save_entry(d, "queued", {}, at(start + 1))))
    d.state, d.ended_at, d.end_reason = "ended", at(start + 2), EndReason.CALLER_ABANDONED
    out.append((start + 2, logops.save_entry(d, "ended", {"reason": "caller_abandoned"},
                                             at(start + 2))))
    # the same end written twice (a resync after a reconnect): one callback, not two
    out.append((start + 2.5, logops.save_entry(d, "ended", {"reason": "caller_abandoned"},
                                               at(start + 2.5))))
    return out


def a_ringing_call_closed(channel: str, desk: str, start: float
                          ) -> list[tuple[float, logops.Operation]]:
    d = CallData(channel_id=channel, caller_number=None, reference=f"6{channel[-5:]}",
                 started_at=at(start))
    out: list[tuple[float, logops.Operation]] = [(start, logops.open_entry(d, d.reference))]
    d.state, d.queued_at, d.desk, d.desk_channel_id = "connecting", at(start), desk, \
        f"{channel}-desk1"
    out.append((start + 1, logops.save_entry(d, "desk_ringing", {"desk": desk}, at(start + 1))))
    out.append((start + 2, logops.CloseCall(channel, EndReason.ASTERISK_RESTART, at(start + 2))))
    return out


def the_line(officer: int) -> list[logops.Operation]:
    """Entries of several calls interleaved by time, with the line's other entries."""
    timed = [*a_verified_call("1700000000.00001", "desk1", 0.0, officer, owed=True),
             *a_verified_call("1700000000.00002", "desk2", 0.5, officer),
             *a_verified_call("1700000000.00003", "desk-new", 1.0, officer,
                              pre_registered=True),  # a desk with no row yet
             *a_verified_call("1700000000.00004", "desk1", 9.5, officer),  # desk1 again
             *an_abandoned_call("1700000000.00005", 0.2),
             *a_ringing_call_closed("1700000000.00006", "desk2", 0.3),
             (2.2, logops.availability_entry("desk2", True, False, "cli")),
             (2.4, logops.availability_entry("desk2", False, False, "cli")),
             (3.3, logops.fallback_entry(calllog.FallbackRecord(
                 "1700000000.00007", "07700900789", at(1), at(2), at(3.3), "desk3",
                 EndReason.CALLER_HANGUP, "ANSWER"))),
             (3.5, logops.CloseCall("1700000000.00005", EndReason.LOST, at(3.5)))]  # ended
    order = sorted(range(len(timed)), key=lambda i: (timed[i][0], i))
    return [timed[i][1] for i in order]


def seed(store: Store) -> int:
    with store.session() as s:
        calllog.ensure_desks(s, ["desk1", "desk2", "desk3"])
        officer = Officer(warrant_number="123456", name="Dixon", rank="PC",
                          status=OfficerStatus.ACTIVE)
        s.add(officer)
        s.flush()
        s.add(Encounter(reference=PRE_REGISTERED, officer_id=officer.id, opened_at=T0,
                        kind=EncounterKind.DEVICE.value))
        return officer.id


def rows(s: Session, model: type[Any], order: Any) -> list[dict[str, Any]]:
    table: Table = model.__table__
    return [dict(r._mapping) for r in s.execute(select(table).order_by(order))]


def everything(store: Store) -> dict[str, list[dict[str, Any]]]:
    with store.session() as s:
        return {"call": rows(s, Call, Call.id), "call_event": rows(s, CallEvent, CallEvent.id),
                "encounter": rows(s, Encounter, Encounter.id),
                "supervisor": rows(s, Supervisor, Supervisor.id),
                "callback": rows(s, Callback, Callback.id)}


@pytest.fixture
def second_store(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest
                 ) -> Iterator[Store]:
    for url in _database(db_backend, tmp_path / "second", request, migrated=True):
        s = Store(url)
        yield s
        s.dispose()


def one_by_one(store: Store, ops: list[logops.Operation]) -> None:
    for op in ops:
        with store.session() as s:
            logops.CODEC.apply(s, op)


def in_chunks(store: Store, ops: Sequence[logops.Operation], size: int) -> None:
    for i in range(0, len(ops), size):
        with store.session() as s:
            logops.CODEC.apply_all(s, ops[i:i + size])


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
def test_given_a_line_of_calls_when_applied_in_chunks_then_the_rows_are_those_one_by_one(
        store, second_store, size, monkeypatch):
    # the fallback's call is opened with a reference drawn at random: the same on both sides
    monkeypatch.setattr(calllog, "new_reference", lambda session: "777777")
    officer = seed(store)
    assert seed(second_store) == officer
    ops = the_line(officer)
    # through the journal's form, as replay reads them
    ops = [logops.CODEC.decode(*logops.CODEC.encode(op)) for op in ops]

    one_by_one(store, ops)
    in_chunks(second_store, ops, size)

    old, new = everything(store), everything(second_store)
    for table in old:
        assert len(new[table]) == len(old[table]), table
        for was, now in zip(old[table], new[table], strict=True):
            assert now == was, table
    # the mix exercised what it is meant to
    kinds = [e["kind"] for e in old["call_event"]]
    assert kinds.count("ended") == 7 and "fallback_logged" in kinds
    assert len(old["callback"]) == 2  # the abandoned call (once) and the closed ringing one
    desks = {d["desk"]: d for d in old["supervisor"]}
    assert desks["desk1"]["wrapup_channel"] == "1700000000.00001"  # owed its outcome
    assert desks["desk1"]["last_channel"] == "1700000000.00004"
    assert desks["desk-new"]["idle_since"] is not None
    attached = [c for c in old["call"] if c["channel_id"] == "1700000000.00003"]
    assert [e["reference"] for e in old["encounter"] if e["id"] == attached[0]["encounter_id"]
            ] == [PRE_REGISTERED]


def test_given_a_chunk_of_saves_when_applied_then_the_console_is_woken_once(
        store, monkeypatch):
    officer = seed(store)
    woken: list[Session] = []
    monkeypatch.setattr(calllog, "notify", woken.append)
    ops = [op for op in the_line(officer)
           if isinstance(op, logops.OpenCall | logops.SaveCall)][:12]

    in_chunks(store, ops, 1000)

    assert len(woken) == 1
    with store.session() as s:
        assert len(rows(s, CallEvent, CallEvent.id)) == 12


def test_given_a_save_whose_snapshot_changed_after_it_when_batched_then_each_event_keeps_its_own(
        store):
    seed(store)
    d = CallData(channel_id="c1", caller_number=None, reference="412345", started_at=T0)
    first = logops.save_entry(d, "key", {"digit": "1"}, at(1))
    d.digits = "1"
    second = logops.save_entry(dataclasses.replace(d), "key", {"digit": "2"}, at(2))

    in_chunks(store, [logops.open_entry(d, "412345"), first, second], 1000)

    with store.session() as s:
        call = s.scalars(select(Call)).one()
        assert call.digits_entered == "1"  # the last snapshot's
        assert [(e.kind, e.detail, e.at) for e in s.scalars(
            select(CallEvent).order_by(CallEvent.id))] == [
            ("started", {"caller_number": None, "path": "ari", "reference": "412345"}, T0),
            ("key", {"digit": "1"}, at(1)), ("key", {"digit": "2"}, at(2))]


def test_given_a_line_through_the_durable_log_then_no_chunk_falls_back_to_one_by_one(
        tmp_path, store, caplog, monkeypatch):
    # a chunk refused is applied one by one, which would hide a fault of the batch's own
    monkeypatch.setattr(calllog, "new_reference", lambda session: "777777")
    officer = seed(store)
    log = DurableLog(Journal(tmp_path / "journal.log"), store, logops.CODEC)
    log.start()

    for op in the_line(officer):
        log.submit(op)
    assert log.flush()
    log.stop()

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not (tmp_path / "rejected.jsonl").exists()
    with store.session() as s:
        assert len(rows(s, Call, Call.id)) == 7
