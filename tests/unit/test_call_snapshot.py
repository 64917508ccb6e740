"""The copy of a call each timeline entry holds (:meth:`ivr.entities.CallData.snapshot`): what
``dataclasses.replace`` gave before, the call's later changes not leaking into it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

from ivr import logops
from ivr.entities import PERSISTED_FIELDS, CallData, Legs
from ivr.models import EndReason, RosterResult

STARTED = datetime(2026, 7, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))  # UK summer time


def a_call_under_way() -> CallData:
    data = CallData("1796.1", "07700900123", "482913", started_at=STARTED, digits="123456",
                    roster_result=RosterResult.ON_DUTY, officer_id=7, desk="desk1",
                    desk_channel_id="1796.1-desk1", queued_at=STARTED + timedelta(seconds=9),
                    flags={"emergency"}, language="cy")
    data.runtime = Legs(legs={"1796.1-desk2": "desk2"}, tried_desks={"desk2"}, desk_legs=2)
    return data


def test_a_snapshot_holds_every_persisted_field_as_replace_did() -> None:
    # given a call part-way through
    data = a_call_under_way()
    # when it is snapshot, the new way and the old
    new = data.snapshot()
    old = dataclasses.replace(data, flags=set(data.flags), runtime=Legs())
    # then both hold the same, and neither the legs of this run
    assert new == old
    assert [getattr(new, f) for f in PERSISTED_FIELDS] == [getattr(data, f)
                                                           for f in PERSISTED_FIELDS]
    assert new.runtime == Legs() and new.runtime is not data.runtime
    assert type(new) is CallData


def test_what_the_call_changes_later_does_not_reach_its_snapshot() -> None:
    # given a snapshot taken as the caller waits
    data = a_call_under_way()
    entry = logops.save_entry(data, "queued", {"position": 1}, STARTED)
    # when the call goes on: a flag added in place, fields set, legs rung
    data.flags.add("callback")
    data.end_reason = EndReason.CALLER_HANGUP
    data.ended_at = datetime(2026, 7, 1, 8, 40, tzinfo=UTC)
    data.runtime.legs["1796.1-desk3"] = "desk3"
    # then the entry still holds the call as it was
    assert entry.data.flags == {"emergency"}
    assert entry.data.end_reason is None and entry.data.ended_at is None
    assert entry.data.runtime.legs == {}
    assert entry.data.started_at == STARTED
