"""The line's JSON on orjson (ivr.jsoncodec) means what the standard library's did: the
journal's entries, ARI's events and requests. A journal written before it is read the same."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ivr import jsoncodec
from ivr.journal import Journal
from ivr.models import RosterResult


@dataclass
class Leg:
    channel: str


INDIA = timezone(timedelta(hours=5, minutes=30))
VALUES = [
    {"call": {"channel_id": "1796298486.0", "answered_at": None, "officer_id": 12,
              "roster_result": RosterResult.ON_DUTY, "flags": ["emergency"], "waited_s": 0.827}},
    {"at": datetime(2026, 7, 14, 16, 30, tzinfo=INDIA)},  # as default=str wrote it
    {"leg": Leg("1796298486.0-desk1")},
    {1: "a key that is not a string", "prompt": "en/greeting+pl/language_offer",
     "name": "Zoë Wójcik"},
]


@pytest.mark.parametrize("value", VALUES)
def test_given_what_the_line_encodes_then_it_reads_back_as_the_standard_librarys_did(
        value: dict[object, object]) -> None:
    expected = json.loads(json.dumps(value, default=str))

    assert jsoncodec.loads(jsoncodec.dumps_bytes(value)) == expected
    assert json.loads(jsoncodec.dumps(value)) == expected


def test_given_not_json_when_decoded_then_a_value_error_as_before() -> None:
    with pytest.raises(ValueError):
        jsoncodec.loads(b'{"type": "StasisStart", ')


def test_given_a_journal_the_standard_library_wrote_when_opened_then_its_entries_are_kept(
        tmp_path: Path) -> None:
    path = tmp_path / "journal.log"
    Journal(path).close()
    header = path.read_bytes()
    entries = [{"seq": 1, "op": "save_call",
                "args": {"name": "Zoë", "at": "2026-07-14 16:30:00+05:30"}},
               {"seq": 2, "op": "desk_state", "args": {"desk": "desk1", "state": "ringing"}}]
    path.write_bytes(header + b"".join(json.dumps(e).encode() + b"\n" for e in entries))

    again = Journal(path)
    added = again.append([("desk_state", {"desk": "desk2", "state": "free"})])

    assert [(e.seq, e.op, e.args) for e in again.entries] == [
        (1, "save_call", entries[0]["args"]), (2, "desk_state", entries[1]["args"]),
        (3, "desk_state", {"desk": "desk2", "state": "free"})]
    assert added[0].seq == 3
    again.close()
    reopened = Journal(path)
    assert [e.args for e in reopened.entries][-1] == {"desk": "desk2", "state": "free"}
    reopened.close()
