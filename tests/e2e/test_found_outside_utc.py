"""Found from outside (issue 9, item 1): duty windows given in a non-UTC offset must mean the
same instant on every backend. On SQLite the offset used to be dropped on the way in and the
wall-clock time read back as UTC, so an officer on duty in +05:30 was told to the supervisor
as off duty. Real roster import through the CLI, real calls through Asterisk to desk1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DEMO_ROSTER, Lab
from tests.e2e.phones import ANNOUNCE_MS, dtmf_ms

pytestmark = pytest.mark.e2e

HEADER = "warrant_number,name,rank,status,on_duty_from,on_duty_until\n"
INDIA = timezone(timedelta(hours=5, minutes=30))
NEW_YORK_SUMMER = timezone(timedelta(hours=-4))
UK_SUMMER = timezone(timedelta(hours=1))


def _window(start: datetime, end: datetime, zone: timezone) -> str:
    return f"{start.astimezone(zone).isoformat()},{end.astimezone(zone).isoformat()}"


@pytest.fixture
def offset_roster(the_lab: Lab, tmp_path: Path) -> Iterator[None]:
    """A roster whose windows are written in three offsets; the demo roster comes back after."""
    now = datetime.now(UTC)
    text = HEADER + "".join([
        # on duty now, written in +05:30: read as UTC it would start 5 h 13 min from now
        f"700001,Asha Rao,PC,active,"
        f"{_window(now - timedelta(minutes=17), now + timedelta(hours=12), INDIA)}\n",
        # written in -04:00, ended a minute ago: off duty whichever way it is read
        f"700002,Dana Cruz,PC,active,"
        f"{_window(now - timedelta(hours=8), now - timedelta(minutes=1), NEW_YORK_SUMMER)}\n",
        # on duty now in UK summer time: read as UTC it would start 40 minutes from now
        f"700003,Owen Hale,PC,active,"
        f"{_window(now - timedelta(minutes=20), now + timedelta(hours=8), UK_SUMMER)}\n",
        # written in -04:00, starts in ten minutes: read as UTC it would have started already
        f"700004,Lee Park,PC,active,"
        f"{_window(now + timedelta(minutes=10), now + timedelta(hours=8), NEW_YORK_SUMMER)}\n",
    ])
    path = tmp_path / "roster_offsets.csv"
    path.write_text(text, encoding="utf-8")
    the_lab.verifyline("roster", "import", str(path))
    yield
    the_lab.verifyline("roster", "import", str(DEMO_ROSTER))


def _calls(the_lab: Lab, warrants: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Call about each warrant number at once (from number -> warrant); each call logged."""
    callers = [the_lab.caller(number, f"{warrant}#1",
                              wait_ms=dtmf_ms(f"{warrant}#1") + ANNOUNCE_MS + 1500)
               for number, warrant in warrants.items()]
    for caller in callers:
        assert caller.wait() == 0, caller.failure()
    return {warrant: the_lab.ended_call_from(number) for number, warrant in warrants.items()}


def _whisper(the_lab: Lab, call: dict[str, Any]) -> str:
    prompts = [e["prompt"] for e in the_lab.timeline(call["id"]) if e["kind"] == "whisper"]
    assert prompts, f"{call['supervisor']} heard no whisper for call {call['id']}"
    return str(prompts[0])


@pytest.mark.sqlite_too
def test_given_windows_in_non_utc_offsets_when_called_then_duty_is_judged_at_the_instant(
        the_lab, offset_roster):
    desks = ["desk1", "desk2", "desk3", "desk4"]
    for desk in desks:
        the_lab.desk(desk)
    expected = {"700001": "on_duty", "700002": "off_duty", "700003": "on_duty",
                "700004": "off_duty"}
    # four callers at once, one desk each; numbers no other test calls from (the call log is
    # the worker's, shared by its tests)
    calls = _calls(the_lab, {f"0770090097{i}": warrant
                             for i, warrant in enumerate(expected, start=1)})

    got = {w: c["roster_result"] for w, c in calls.items()}
    assert got == expected
    assert sorted(c["supervisor"] for c in calls.values()) == desks
    for warrant, call in calls.items():
        assert call["warrant_number"] == warrant
        assert f"result_{expected[warrant]}" in _whisper(the_lab, call)
