"""The fallback spool format, its exactly-once ingest and the call log's JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr import calllog
from ivr.entities import CallData
from ivr.models import EndReason, RosterResult
from ivr.spool import SPOOL_FILE, drain, parse_line

ANSWERED = ("v1|1700000000.12|1700000000.500|1700000030.000|20000|07700900123|ANSWER|"
            "desk2|trunk|ringing")
ABANDONED = "v1|1700000100.13|1700000100.000|1700000105.000||07700900124|CANCEL|||ringing"
NOBODY = "v1|1700000200.14|1700000200.000|1700000260.000||07700900125|CHANUNAVAIL|||unavailable"


def test_given_answered_line_when_parsed_then_desk_times_and_reason():
    r = parse_line(ANSWERED)
    assert r.channel_id == "1700000000.12"
    assert r.desk == "desk2"
    assert r.answered_at == datetime.fromtimestamp(1700000010, UTC)
    assert r.end_reason is EndReason.CALLER_HANGUP


def test_given_desk_hung_up_then_supervisor_hangup():
    line = ANSWERED.replace("desk2|trunk|", "desk2|desk2|")
    assert parse_line(line).end_reason is EndReason.SUPERVISOR_HANGUP


def test_given_unanswered_lines_then_abandoned_or_no_supervisor():
    assert parse_line(ABANDONED).end_reason is EndReason.CALLER_ABANDONED
    assert parse_line(NOBODY).end_reason is EndReason.NO_SUPERVISOR
    assert parse_line(NOBODY).desk is None


def test_given_garbage_line_then_value_error():
    with pytest.raises(ValueError):
        parse_line("hello|world")


def test_given_spool_when_drained_twice_then_each_call_logged_once(store, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / SPOOL_FILE).write_text("\n".join([ANSWERED, "garbage", ABANDONED]) + "\n")

    def ingest(record):
        with store.session() as s:
            calllog.ingest_fallback(s, record)

    assert drain(spool, ingest, settle=0) == 2
    (spool / SPOOL_FILE).write_text(ANSWERED + "\n")  # replayed
    drain(spool, ingest, settle=0)

    with store.session() as s:
        calls = calllog.list_calls(s)
    assert [c["path"] for c in calls] == ["fallback", "fallback"]
    assert calls[0]["supervisor"] == "desk2"
    assert calls[0]["roster_result"] == "none_entered"
    assert list(spool.iterdir()) == []


def test_given_app_call_handed_to_fallback_then_the_same_row_becomes_fallback(store):
    with store.session() as s:
        calllog.open_call(s, "1700000000.12", "07700900123",
                          datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC))
    with store.session() as s:
        calllog.ingest_fallback(s, parse_line(ANSWERED))
    with store.session() as s:
        calls = calllog.list_calls(s)
    assert len(calls) == 1 and calls[0]["path"] == "fallback"


def test_given_call_saved_then_json_has_the_contract_fields(store):
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with store.session() as s:
        ref = calllog.open_call(s, "1.1", "07700900123", started)
    data = CallData(channel_id="1.1", caller_number="07700900123", reference=ref,
                    started_at=started, digits="123456", roster_result=RosterResult.UNKNOWN,
                    answered_desk="desk1", answered_at=started, ended_at=started,
                    end_reason=EndReason.CALLER_HANGUP, state="ended")
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_hangup"})
    with store.session() as s:
        (call,) = calllog.list_calls(s)
    for name in ("id", "reference", "caller_number", "warrant_number", "roster_result",
                 "supervisor", "started_at", "answered_at", "ended_at", "end_reason", "path"):
        assert name in call
    assert call["reference"] == ref and len(ref) == 6
    assert call["started_at"] == "2026-11-24T12:00:00.000+00:00"
    assert call["supervisor"] == "desk1"
    assert call["warrant_number"] == "123456"


def test_given_migrations_applied_then_the_schema_matches_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ivr.models import Base

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_given_newest_migration_undone_and_redone_then_the_schema_matches_the_models(store):
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ivr.models import Base
    from ivr.store import alembic_config

    cfg = alembic_config(store.engine.url.render_as_string(hide_password=False))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
        command.upgrade(cfg, "head")
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_given_a_caller_number_longer_than_any_phone_number_then_the_call_is_logged(store):
    number = "sip-user-" + "9" * 120  # the SIP From user: whatever the far end sends
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with store.session() as s:
        ref = calllog.open_call(s, "3.1", number, started)
    data = CallData(channel_id="3.1", caller_number=number, reference=ref, started_at=started,
                    queued_at=started, ended_at=started, end_reason=EndReason.CALLER_ABANDONED,
                    state="ended")
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_abandoned"})
    with store.session() as s:
        (call,) = calllog.list_calls(s)
        (cb,) = calllog.callbacks(s)
    assert call["caller_number"] == cb["caller_number"] == number


def test_given_caller_abandons_while_queued_then_one_callback_is_listed(store):
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with store.session() as s:
        ref = calllog.open_call(s, "2.1", None, started)
    data = CallData(channel_id="2.1", caller_number=None, reference=ref, started_at=started,
                    digits="123456", roster_result=RosterResult.ON_DUTY, queued_at=started,
                    ended_at=started, end_reason=EndReason.CALLER_ABANDONED, state="ended")
    for _ in range(2):  # saved twice: still one callback
        with store.session() as s:
            calllog.save(s, data, "ended", {"reason": "caller_abandoned"})

    with store.session() as s:
        (cb,) = calllog.callbacks(s)
        assert (cb["caller_number"], cb["reference"], cb["digits_entered"]) == (
            "withheld", ref, "123456")
        assert calllog.callback_done(s, cb["id"], "desk1")
    with store.session() as s:
        assert calllog.callbacks(s) == []
        assert len(calllog.callbacks(s, include_done=True)) == 1


@pytest.mark.parametrize(("answered", "callbacks"), [(False, 1), (True, 0)])
def test_given_caller_connection_lost_then_a_callback_only_if_nobody_had_answered(
        store, answered, callbacks):
    started = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with store.session() as s:
        ref = calllog.open_call(s, "4.1", "07700900952", started)
    data = CallData(channel_id="4.1", caller_number="07700900952", reference=ref,
                    started_at=started, digits="123456", queued_at=started,
                    answered_at=started if answered else None, ended_at=started,
                    bridge_id="4.1-bridge" if answered else None,  # they had talked
                    end_reason=EndReason.CALLER_CONNECTION_LOST, state="ended")
    with store.session() as s:
        calllog.save(s, data, "ended", {"reason": "caller_connection_lost"})

    with store.session() as s:
        (call,) = calllog.list_calls(s)
        assert call["end_reason"] == "caller_connection_lost"
        assert len(calllog.callbacks(s)) == callbacks
