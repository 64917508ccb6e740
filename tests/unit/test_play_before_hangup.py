"""The adapter never takes a channel out of its bridge while a play asked of it is queued.

Asterisk plays to a bridged channel by queueing the file on the bridge channel and making the
channel's Stasis thread wait for it; a bridge channel hung up before it takes the frame leaves
that thread waiting 600 s, the channel deaf to every hang-up (ari_app/adapter.py,
PLAY_START_WAIT). So a hang-up, or a move into another bridge, first waits until Asterisk
reports the channel's last play as started (or gone), for at most PLAY_START_WAIT.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, cast

import pytest

from ari_app import adapter
from ari_app.adapter import AriTelephony
from ari_app.client import AriClient, AriHttpError


class FakeAri:
    """The client calls the adapter makes, in order; playback states scripted per id."""

    def __init__(self, states: dict[str, list[str | None]] | None = None) -> None:
        self.made: list[tuple[str, ...]] = []
        self.states = states or {}

    async def play(self, channel_id: str, playback_id: str, media: Sequence[str]) -> None:
        self.made.append(("play", channel_id, playback_id))

    async def playback_state(self, playback_id: str) -> str | None:
        self.made.append(("state", playback_id))
        script = self.states.get(playback_id, [None])
        return script.pop(0) if len(script) > 1 else script[0]

    async def hangup(self, channel_id: str) -> None:
        self.made.append(("hangup", channel_id))

    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> None:
        self.made.append(("create_bridge", bridge_id))

    async def add_to_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        self.made.append(("add", bridge_id, *channel_ids))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def telephony(ari: FakeAri, clock: Clock | None = None) -> AriTelephony:
    return AriTelephony(cast(AriClient, ari), clock=clock or Clock())


async def test_given_a_play_still_queued_when_hanging_up_then_the_hangup_waits_for_it() -> None:
    ari = FakeAri({"p1": ["queued", "queued", "playing"]})
    tel = telephony(ari)
    await tel.play("desk", "p1", ["en/reference"])

    await tel.hangup("desk")

    assert ari.made == [("play", "desk", "p1"), ("state", "p1"), ("state", "p1"),
                        ("state", "p1"), ("hangup", "desk")]


async def test_given_the_play_is_gone_when_hanging_up_then_at_once() -> None:
    ari = FakeAri({"p1": [None]})  # finished: Asterisk answers 404
    tel = telephony(ari)
    await tel.play("desk", "p1", ["en/reference"])

    await tel.hangup("desk")

    assert ari.made[-2:] == [("state", "p1"), ("hangup", "desk")]


async def test_given_a_play_asked_long_ago_when_hanging_up_then_no_question_asked(
        caplog: pytest.LogCaptureFixture) -> None:
    ari, clock = FakeAri({"p1": ["queued"]}), Clock()
    tel = telephony(ari, clock)
    await tel.play("desk", "p1", ["en/whisper"])
    clock.t += adapter.PLAY_START_WAIT + 0.01

    with caplog.at_level("INFO", logger="ari_app.adapter"):
        await tel.hangup("desk")

    assert ari.made == [("play", "desk", "p1"), ("hangup", "desk")]
    # and nothing is said about a wait that never happened (said of every call before)
    assert "still queued" not in caplog.text


async def test_given_a_play_that_stays_queued_then_the_hangup_still_goes_in_bounded_time(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="ari_app.adapter")
    monkeypatch.setattr(adapter, "PLAY_START_WAIT", 0.1)
    ari = FakeAri({"p1": ["queued"]})  # never taken up
    tel = AriTelephony(cast(AriClient, ari))  # the real clock
    await tel.play("desk", "p1", ["en/reference"])
    asked_at = time.monotonic()

    await tel.hangup("desk")

    assert time.monotonic() - asked_at >= 0.1  # it did wait, and then went on regardless
    assert ari.made[1] == ("state", "p1") and ari.made[-1] == ("hangup", "desk")
    assert set(ari.made[1:-1]) == {("state", "p1")}
    assert "p1 on desk: still queued after 0.1 s" in caplog.text


async def test_given_no_play_when_hanging_up_then_only_the_hangup() -> None:
    ari = FakeAri()

    await telephony(ari).hangup("desk")

    assert ari.made == [("hangup", "desk")]


async def test_given_plays_queued_to_both_legs_when_bridging_then_added_once_both_started(
        ) -> None:
    ari = FakeAri({"pc": ["queued", "playing"], "pd": ["playing"]})
    tel = telephony(ari)
    await tel.play_to_each({"caller": "pc", "desk": "pd"}, ["en/reference"])

    assert await tel.create_bridge("b", ["caller", "desk"])

    assert ari.made[2:] == [("create_bridge", "b"), ("state", "pc"), ("state", "pc"),
                            ("state", "pd"), ("add", "b", "caller", "desk")]


async def test_given_a_failing_question_then_the_hangup_goes_at_once() -> None:
    class Failing(FakeAri):
        async def playback_state(self, playback_id: str) -> str | None:
            raise AriHttpError("GET", "/playbacks/p1", 503, "unavailable")

    ari = Failing()
    tel = telephony(ari)
    await tel.play("desk", "p1", ["en/reference"])

    await tel.hangup("desk")

    assert ari.made[-1] == ("hangup", "desk")


async def test_given_many_channels_that_left_on_their_own_then_the_memory_stays_bounded(
        ) -> None:
    clock = Clock()
    tel = telephony(FakeAri(), clock)
    for n in range(3 * adapter._ASKED_KEPT):
        await tel.play(f"c{n}", f"p{n}", ["en/greeting"])
        clock.t += 0.01
    asked: dict[str, Any] = tel._asked
    assert len(asked) <= adapter._ASKED_KEPT
