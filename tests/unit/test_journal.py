"""The durable call log: journal first (fsync'd), database second, exactly once — also when
the database is away, the app restarts mid-replay, or the last journal line is torn."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ivr import calllog, logops
from ivr.entities import CallData, Legs
from ivr.journal import DurableLog, Journal
from ivr.models import Call, CallEvent, CallPath, EndReason, RosterResult
from ivr.store import Store

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class FlakyStore(Store):
    """A real store whose database can be made unreachable."""

    down = False

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self.down:
            raise OperationalError("connect", {}, ConnectionRefusedError("database stopped"))
        with super().session() as s:
            yield s


@pytest.fixture
def flaky(db_url: str) -> Iterator[FlakyStore]:
    s = FlakyStore(db_url)
    yield s
    s.dispose()


def a_call(channel: str = "c1") -> CallData:
    return CallData(channel_id=channel, caller_number="07700900123", reference="412345",
                    started_at=T0)


def entries_for(data: CallData) -> list[logops.Operation]:
    data.digits, data.roster_result = "123456", RosterResult.ON_DUTY
    first: list[logops.Operation] = [
        logops.open_entry(data, data.reference),
        logops.save_entry(data, "roster_checked", {"result": "on_duty"}, T0)]
    data.ended_at, data.end_reason, data.state = T0, EndReason.CALLER_HANGUP, "ended"
    return [*first, logops.save_entry(data, "ended", {"reason": "caller_hangup"}, T0)]


def timeline(store: Store, channel: str = "c1") -> list[str]:
    with store.session() as s:
        call = s.scalars(select(Call).where(Call.channel_id == channel)).one()
        return [e.kind for e in s.scalars(select(CallEvent).where(CallEvent.call_id == call.id)
                                          .order_by(CallEvent.id))]


def durable(tmp_path: Path, store: Store) -> DurableLog[logops.Operation]:
    log = DurableLog(Journal(tmp_path / "journal" / "journal.log"), store, logops.CODEC,
                     retry=0.05)
    log.start()
    return log


def test_given_database_up_then_entries_reach_it_in_order(tmp_path, flaky):
    log = durable(tmp_path, flaky)

    for entry in entries_for(a_call()):
        log.submit(entry)
    assert log.flush()

    assert timeline(flaky) == ["started", "roster_checked", "ended"]
    with flaky.session() as s:
        row = s.scalars(select(Call)).one()
        assert (row.encounter.reference, row.end_reason) == ("412345", "caller_hangup")
    log.stop()


def test_given_database_down_then_writes_wait_in_the_journal_and_replay_once(tmp_path, flaky):
    log = durable(tmp_path, flaky)
    flaky.down = True

    for entry in entries_for(a_call()):
        log.submit(entry)
    assert log.wait_journaled()
    deadline = time.monotonic() + 5
    while log.database_up and time.monotonic() < deadline:  # its first attempt is under way
        time.sleep(0.01)
    assert log.pending == 3 and not log.database_up
    lines = (tmp_path / "journal" / "journal.log").read_text().splitlines()
    assert [json.loads(x)["op"] for x in lines[1:]] == ["open", "save", "save"]

    flaky.down = False
    assert log.flush()

    assert log.database_up and log.pending == 0
    assert timeline(flaky) == ["started", "roster_checked", "ended"]
    log.stop()


class CountingStore(FlakyStore):
    """Counts the transactions the writer opens."""

    opened = 0

    @contextmanager
    def session(self) -> Iterator[Session]:
        self.opened += 1
        with super().session() as s:
            yield s


def test_given_a_quiet_line_then_an_entry_is_applied_at_once_and_a_busy_lines_together(
        tmp_path, db_url):
    # given a writer that goes to the database at most once a second
    store = CountingStore(db_url)
    log = DurableLog(Journal(tmp_path / "journal.log"), store, logops.CODEC, apply_every=1.0)
    log.start()
    data = a_call()
    log.submit(logops.open_entry(data, data.reference))
    assert log.flush(2)  # a quiet line's entry: at once (nothing was applied before it)
    before = store.opened

    # when twenty more come 20 ms apart, as a busy line's do (each gathered and fsync'd on
    # its own: the gather is 10 ms)
    for i in range(20):
        log.submit(logops.save_entry(data, f"step_{i}", {}, T0))
        time.sleep(0.02)
        assert log.wait_journaled(2)  # on disk at once, whatever the database's pace

    # then they reach the database together: one transaction (two if the 0.4 s of entries
    # straddled a second), not twenty
    assert log.flush(3)
    assert store.opened - before <= 2
    assert timeline(store)[1:] == [f"step_{i}" for i in range(20)]
    log.stop()
    store.dispose()


def test_given_a_crash_after_the_commit_then_a_restart_replays_nothing_twice(tmp_path, flaky):
    log = durable(tmp_path, flaky)
    for entry in entries_for(a_call()):
        log.submit(entry)
    assert log.flush()
    log.stop()  # the journal still holds the three lines: it was not worth compacting

    again = durable(tmp_path, flaky)  # the next run finds them and replays
    assert again.flush()

    assert timeline(flaky) == ["started", "roster_checked", "ended"]
    again.stop()


def test_given_a_torn_last_line_then_it_is_dropped_and_the_rest_applied(tmp_path, flaky):
    path = tmp_path / "journal" / "journal.log"
    journal = Journal(path)
    journal.append([logops.CODEC.encode(e) for e in entries_for(a_call())[:2]])
    journal.close()
    with open(path, "ab") as f:
        f.write(b'{"seq": 3, "op": "save", "ar')  # the power went mid-write

    log = durable(tmp_path, flaky)
    assert log.flush()

    assert timeline(flaky) == ["started", "roster_checked"]
    log.submit(logops.availability_entry("desk1", True, False, "cli"))  # appends cleanly
    assert log.flush()
    log.stop()
    assert all(json.loads(x) for x in path.read_text().splitlines())


def test_given_an_entry_the_database_refuses_then_it_is_set_aside_and_the_rest_applied(
        tmp_path, flaky):
    log = durable(tmp_path, flaky)
    orphan = logops.save_entry(a_call("never-opened"), "key", {}, T0)  # no call row

    log.submit(orphan)
    for entry in entries_for(a_call()):
        log.submit(entry)
    assert log.flush()

    assert timeline(flaky) == ["started", "roster_checked", "ended"]
    rejected = (tmp_path / "journal" / "rejected.jsonl").read_text().splitlines()
    assert [json.loads(x)["args"]["data"]["channel_id"] for x in rejected] == ["never-opened"]
    log.stop()


def test_given_everything_applied_and_the_journal_grown_then_it_is_compacted(
        tmp_path, flaky, monkeypatch):
    monkeypatch.setattr("ivr.journal.COMPACT_BYTES", 100)
    log = durable(tmp_path, flaky)

    for entry in entries_for(a_call()):
        log.submit(entry)
    assert log.flush()
    log.submit(logops.availability_entry("desk1", False, False, "cli"))
    assert log.flush()

    lines = (tmp_path / "journal" / "journal.log").read_text().splitlines()
    assert len(lines) <= 2  # the header (and at most the newest entry)
    log.stop()
    reopened = Journal(tmp_path / "journal" / "journal.log")
    [appended] = reopened.append([logops.CODEC.encode(
        logops.availability_entry("desk1", True, False, "cli"))])
    reopened.close()
    assert appended.seq == 5  # the numbering goes on after a compaction


def test_given_a_reference_taken_meanwhile_then_the_replayed_call_keeps_it_with_a_suffix(
        store):
    with store.session() as s:
        calllog.open_call(s, "other", None, T0, reference="412345")

    with store.session() as s:
        got = calllog.open_call(s, "c1", None, T0, reference="412345")

    assert got == "412345-2"


def test_given_a_call_row_then_it_survives_the_json_round_trip():
    data = a_call()
    data.flags, data.roster_result, data.queued_at = {"emergency"}, RosterResult.RESTRICTED, T0

    assert logops.call_from_json(json.loads(json.dumps(logops.call_to_json(data)))) == data


def test_given_a_call_with_ringing_legs_when_saved_then_the_entry_holds_none_of_them():
    data = a_call()
    data.runtime.legs, data.runtime.tried_desks = {"c1-desk2": "desk1"}, {"desk1"}
    data.runtime.desk_legs = 2

    raw = logops.call_to_json(data)

    assert not {"runtime", "legs", "tried_desks", "desk_legs"} & raw.keys()
    assert logops.call_from_json(raw).runtime == Legs()  # a new run starts with no legs


def test_given_a_call_row_whose_desk_leg_was_the_third_when_adopted_then_the_next_is_the_fourth(
        store):
    data = a_call()
    with store.session() as s:
        calllog.open_call(s, "c1", None, T0, reference="412345")
        data.desk_channel_id, data.state = "c1-desk3", "bridged"
        calllog.save(s, data, "bridged", {}, T0)

    with store.session() as s:
        row = s.scalars(select(Call).where(Call.channel_id == "c1")).one()
        adopted = calllog.data_from_row(row)

    assert adopted.runtime == Legs(desk_legs=3)  # nothing ringing; no leg id used twice


# Entries exactly as the version before typed operations wrote them (its save entries also
# held the runtime legs: tried_desks, desk_legs, legs). A journal left by it must replay.
PREVIOUS_VERSION_JOURNAL = """\
{"journal": "0f6c7a53-previous-version", "base": 1}
{"seq": 1, "op": "open", "args": {"channel_id": "c1", "caller_number": "07700900123", \
"started_at": "2026-03-01T12:00:00+00:00", "reference": "412345", "path": "ari"}}
{"seq": 2, "op": "save", "args": {"data": {"channel_id": "c1", "caller_number": "07700900123", \
"reference": "412345", "started_at": "2026-03-01T12:00:00+00:00", "digits": "123456", \
"roster_result": "restricted", "officer_id": null, "officer_label": "", "desk": "desk1", \
"desk_channel_id": "c1-desk2", "answered_desk": null, "bridge_id": null, "answered_at": null, \
"ended_at": null, "end_reason": null, "state": "connecting", "attempts": 1, "language": "en", \
"flags": ["emergency"], "tried_desks": ["desk1"], "desk_legs": 2, \
"legs": {"c1-desk2": "desk1"}, "hold_bridge_id": "c1-hold", \
"queued_at": "2026-03-01T12:00:05+00:00", "recording": null, "connection_lost": false}, \
"kind": "desk_ringing", "detail": {"desk": "desk1", "channel": "c1-desk2"}, \
"at": "2026-03-01T12:00:06+00:00"}}
{"seq": 3, "op": "availability", "args": {"desk": "desk2", "paused": true, \
"signed_out": false, "reason": "cli"}}
{"seq": 4, "op": "close", "args": {"channel_id": "c1", "reason": "asterisk_restart", \
"at": "2026-03-01T12:01:00+00:00"}}
{"seq": 5, "op": "fallback", "args": {"channel_id": "f1", "caller_number": null, \
"started_at": "2026-03-01T12:00:00+00:00", "answered_at": null, \
"ended_at": "2026-03-01T12:00:30+00:00", "desk": "desk3", "end_reason": "caller_abandoned", \
"dial_status": "CANCEL"}}
"""


def test_given_a_journal_the_previous_version_wrote_when_replayed_then_every_entry_applies(
        tmp_path, store):
    path = tmp_path / "journal" / "journal.log"
    path.parent.mkdir(parents=True)
    path.write_text(PREVIOUS_VERSION_JOURNAL)

    log = durable(tmp_path, store)
    assert log.flush()
    log.stop()

    assert not (tmp_path / "journal" / "rejected.jsonl").exists()
    assert timeline(store) == ["started", "desk_ringing", "ended"]
    with store.session() as s:
        call = s.scalars(select(Call).where(Call.channel_id == "c1")).one()
        assert (call.roster_result, call.desk_channel_id, call.flags, call.end_reason,
                call.ended_at) == (RosterResult.RESTRICTED, "c1-desk2", "emergency",
                                   "asterisk_restart", datetime(2026, 3, 1, 12, 1, tzinfo=UTC))
        ringing = s.scalars(select(CallEvent).where(CallEvent.kind == "desk_ringing")).one()
        assert ringing.detail == {"desk": "desk1", "channel": "c1-desk2"}
        assert ringing.at == datetime(2026, 3, 1, 12, 0, 6, tzinfo=UTC)
        assert {(d["desk"], d["paused"], d["pause_reason"]) for d in calllog.supervisors(s)
                } >= {("desk2", True, "cli")}
        fallback = s.scalars(select(Call).where(Call.channel_id == "f1")).one()
        assert (fallback.path, fallback.end_reason) == (CallPath.FALLBACK, "caller_abandoned")


def test_given_each_operation_when_encoded_then_it_is_the_previous_versions_entry() -> None:
    data = a_call()
    data.digits, data.roster_result, data.flags = "123456", RosterResult.ON_DUTY, {"emergency"}
    data.runtime.legs = {"c1-desk1": "desk1"}  # never written
    record = calllog.FallbackRecord("f1", None, T0, None, T0, "desk3",
                                    EndReason.CALLER_ABANDONED, "CANCEL")
    expected_data = {
        "channel_id": "c1", "caller_number": "07700900123", "reference": "412345",
        "started_at": T0.isoformat(), "digits": "123456", "roster_result": "on_duty",
        "officer_id": None, "officer_label": "", "desk": None, "desk_channel_id": None,
        "answered_desk": None, "bridge_id": None, "answered_at": None, "ended_at": None,
        "end_reason": None, "state": "new", "attempts": 0, "language": "en",
        "flags": ["emergency"], "hold_bridge_id": None, "queued_at": None, "recording": None,
        "connection_lost": False,
        # added for the console (issue 11): entries without them replay with the defaults
        "outcome_owed": False, "encounter_reference": None}

    encoded = [logops.CODEC.encode(op) for op in (
        logops.open_entry(data, "412345"),
        logops.save_entry(data, "key", {"digit": "1"}, T0),
        logops.availability_entry("desk2", True, False, "cli"),
        logops.CloseCall("c1", EndReason.LOST, T0),
        logops.fallback_entry(record))]

    assert encoded == [
        ("open", {"channel_id": "c1", "caller_number": "07700900123",
                  "started_at": T0.isoformat(), "reference": "412345", "path": "ari"}),
        ("save", {"data": expected_data, "kind": "key", "detail": {"digit": "1"},
                  "at": T0.isoformat()}),
        ("availability", {"desk": "desk2", "paused": True, "signed_out": False,
                          "reason": "cli"}),
        ("close", {"channel_id": "c1", "reason": "lost", "at": T0.isoformat()}),
        ("fallback", {"channel_id": "f1", "caller_number": None, "started_at": T0.isoformat(),
                      "answered_at": None, "ended_at": T0.isoformat(), "desk": "desk3",
                      "end_reason": "caller_abandoned", "dial_status": "CANCEL"}),
    ]
    for name, args in encoded:  # and back: one place reads what it writes
        again = logops.CODEC.decode(name, json.loads(json.dumps(args)))
        assert logops.CODEC.encode(again) == (name, args)


def test_given_a_saved_call_when_it_changes_afterwards_then_the_entry_keeps_what_it_was():
    data = a_call()
    entry = logops.save_entry(data, "key", {}, T0)

    data.flags.add("emergency")
    data.state = "connecting"

    assert (entry.data.flags, entry.data.state) == (set(), "new")


def test_given_an_entry_of_an_unknown_operation_then_it_is_set_aside_and_the_rest_applied(
        tmp_path, store):
    path = tmp_path / "journal" / "journal.log"
    path.parent.mkdir(parents=True)
    path.write_text('{"journal": "j-unknown", "base": 1}\n'
                    '{"seq": 1, "op": "from_the_future", "args": {}}\n'
                    '{"seq": 2, "op": "availability", "args": {"desk": "desk2", '
                    '"paused": true, "signed_out": false, "reason": "cli"}}\n')

    log = durable(tmp_path, store)
    assert log.flush()
    log.stop()

    [rejected] = (tmp_path / "journal" / "rejected.jsonl").read_text().splitlines()
    assert json.loads(rejected)["op"] == "from_the_future"
    with store.session() as s:
        assert ("desk2", True) in {(d["desk"], d["paused"]) for d in calllog.supervisors(s)}
