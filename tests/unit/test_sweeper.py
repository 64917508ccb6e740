"""The sweeper's decisions: debris only after the grace period, never a live call's parts, and
a caller nobody knows goes to the dialplan fallback (never hung up on)."""

from __future__ import annotations

from collections.abc import Iterable

from ari_app.client import Bridge, Channel
from ari_app.sweeper import Sweeper


def in_app(channel_id: str) -> Channel:
    return Channel(channel_id, f"PJSIP/x-{channel_id}", "Up", "0770", "Stasis",
                   "verifyline,line")


def sweep(sweeper: Sweeper, at: float, bridges: Iterable[Bridge] = (),
          channels: Iterable[Channel] = (),
          known: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    return {(d.action, d.resource_id) for d in sweeper.sweep(bridges, channels,
                                                              known.__contains__, at)}


def test_given_an_empty_bridge_of_ours_then_destroyed_only_after_the_grace_period():
    sweeper = Sweeper("verifyline", grace=10)
    empty = [Bridge("c9-hold", "holding", ())]

    assert sweep(sweeper, 0, empty) == set()
    assert sweep(sweeper, 9, empty) == set()
    assert sweep(sweeper, 10, empty) == {("destroy_bridge", "c9-hold")}


def test_given_a_bridge_that_fills_up_meanwhile_then_it_is_forgotten():
    sweeper = Sweeper("verifyline", grace=10)
    sweep(sweeper, 0, [Bridge("c9-bridge", "mixing", ())])

    sweep(sweeper, 5, [Bridge("c9-bridge", "mixing", ("c9",))])  # the call moved in

    assert sweep(sweeper, 12, [Bridge("c9-bridge", "mixing", ())]) == set()  # clock restarts


def test_given_live_calls_and_other_apps_then_nothing_is_touched():
    sweeper = Sweeper("verifyline", grace=1)
    live = [Bridge("c1-hold", "holding", ("c1",)), Bridge("someone-else", "mixing", ())]
    channels = [in_app("c1"), in_app("c1-desk2"),
                Channel("x", "PJSIP/x", "Up", "", "Stasis", "otherapp"),
                Channel("y", "PJSIP/y", "Up", "", "Dial", "PJSIP/desk1")]

    for at in (0, 5, 50):
        assert sweep(sweeper, at, live, channels, frozenset({"c1", "c1-desk2"})) == set()


def test_given_strays_then_desk_legs_are_hung_up_and_callers_sent_to_the_fallback():
    sweeper = Sweeper("verifyline", grace=2)
    strays = [in_app("c7-desk1"), in_app("c8")]

    sweep(sweeper, 0, channels=strays)

    assert sweep(sweeper, 2, channels=strays) == {("hangup", "c7-desk1"), ("to_fallback", "c8")}


def test_given_an_empty_bridge_of_a_call_in_progress_then_it_is_never_destroyed():
    sweeper = Sweeper("verifyline", grace=1)
    being_set_up = [Bridge("c5-bridge", "mixing", ())]  # the channels are still on their way

    for at in (0, 5, 50):
        found = sweeper.sweep(being_set_up, [], frozenset().__contains__, at,
                              live_call={"c5"}.__contains__)
        assert found == []

    assert {d.resource_id for d in sweeper.sweep(being_set_up, [], frozenset().__contains__,
                                                 60, live_call=frozenset().__contains__)} == set()
    assert {d.resource_id for d in sweeper.sweep(being_set_up, [], frozenset().__contains__,
                                                 61, live_call=frozenset().__contains__)
            } == {"c5-bridge"}  # once the call is over, after the grace period
