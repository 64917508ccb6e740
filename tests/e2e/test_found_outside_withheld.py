"""Found from outside (issue 9 item 6): a caller who withholds their number is `withheld`
everywhere a number is shown, whatever form the network gave it in — From user `anonymous`
or `Restricted`, a From URI with no user part, or a real number with `Privacy: id` — and a
withheld caller's real number never reaches a listing (nor a desk phone, on the fallback)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ops import lab
from tests.e2e.conftest import Lab, poll
from tests.e2e.phones import ANNOUNCE_MS, dtmf_ms

pytestmark = pytest.mark.e2e

REAL_NUMBER = "07700900611"
WITHHELD_FORMS = {
    "anonymous": ("sip:anonymous@anonymous.invalid", "none"),
    "restricted": ("sip:Restricted@127.0.0.2", "none"),
    "no_user_part": ("sip:127.0.0.2", "none"),
    "privacy_id": (f"sip:{REAL_NUMBER}@127.0.0.2", "id"),
}


def withheld_caller(the_lab: Lab, from_uri: str, privacy: str, digits: str, wait_ms: int) -> Any:
    # the Caller helper's own number key is unused by this scenario: From is the from_uri key
    return the_lab.caller("unused", digits, scenario="caller_withheld", wait_ms=wait_ms,
                          extra=("-key", "from_uri", from_uri, "-key", "privacy", privacy))


def new_ended_call(the_lab: Lab, before: set[int], timeout: float = 20) -> dict[str, Any]:
    """The one call logged since ``before`` (call ids), once it has ended."""
    def ended() -> dict[str, Any] | None:
        new = [c for c in the_lab.calls() if c["id"] not in before]
        assert len(new) <= 1, f"more than one new call: {new}"
        return new[0] if new and new[0]["ended_at"] else None

    found: dict[str, Any] = poll("the withheld call logged and ended", ended, timeout, every=0.5)
    return found


@pytest.mark.parametrize("form", sorted(WITHHELD_FORMS))
def test_given_a_withheld_caller_gives_up_while_queued_then_every_listing_says_withheld(
        the_lab, form):
    from_uri, privacy = WITHHELD_FORMS[form]
    before = {c["id"] for c in the_lab.calls()}
    # no desk registered: the caller is queued, then hangs up and is put on the callback list
    caller = withheld_caller(the_lab, from_uri, privacy, "123456#1",
                             wait_ms=dtmf_ms("123456#1") + ANNOUNCE_MS + 2000)
    assert caller.wait() == 0, caller.failure()

    call = new_ended_call(the_lab, before)
    assert call["caller_number"] is None
    assert call["path"] == "ari"
    listed = json.loads(the_lab.verifyline("callbacks", "list", "--json"))
    mine = [c for c in listed if c["call_id"] == call["id"]]
    assert len(mine) == 1
    assert mine[0]["caller_number"] == "withheld"
    text = the_lab.verifyline("callbacks", "list")
    line = next(row for row in text.splitlines() if f"ref {call['reference']}" in row)
    assert line.split()[2] == "withheld"
    calls_text = the_lab.verifyline("calls", "list")
    assert f"ref {call['reference']} from withheld:" in calls_text
    for shown in (json.dumps(listed), text, json.dumps(the_lab.calls()), calls_text):
        assert REAL_NUMBER not in shown
        assert "anonymous" not in shown.lower()
    the_lab.verifyline("callbacks", "done", str(mine[0]["id"]), "--by", "desk1")


def test_given_the_app_is_away_when_a_caller_with_privacy_id_calls_then_the_fallback_withholds_it(
        the_lab):
    inst = the_lab.instance
    before = {c["id"] for c in the_lab.calls()}
    lab.stop_app(inst)
    try:
        assert not lab.app_registered(the_lab.settings)
        desk = the_lab.desk("desk1")
        caller = withheld_caller(the_lab, f"sip:{REAL_NUMBER}@127.0.0.2", "id", "1#",
                                 wait_ms=6000)
        assert caller.wait() == 0, caller.failure()
        poll("the desk to get the BYE", lambda: "BYE" in desk.received(), timeout=5)
        # the desk phone rang natively (Dial): the INVITE it got must not carry the number
        assert REAL_NUMBER not in desk.log.read_text(errors="replace")
    finally:
        lab.start_app(inst)

    call = new_ended_call(the_lab, before)
    assert call["path"] == "fallback"
    assert call["caller_number"] is None
    calls_text = the_lab.verifyline("calls", "list")
    assert f"ref {call['reference']} from withheld:" in calls_text
    assert REAL_NUMBER not in calls_text and REAL_NUMBER not in json.dumps(the_lab.calls())
