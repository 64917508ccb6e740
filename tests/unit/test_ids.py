"""The id scheme: what is built parses back to its call, and the strings stay those older
versions wrote (they are in call rows and in the lab contract)."""

from __future__ import annotations

import pytest

from ivr import ids

CALLER = "1700000000.5"


def test_given_a_caller_channel_then_its_ids_are_the_ones_older_versions_wrote() -> None:
    assert ids.hold_bridge(CALLER) == "1700000000.5-hold"
    assert ids.mixing_bridge(CALLER) == "1700000000.5-bridge"
    assert ids.desk_leg(CALLER, 3) == "1700000000.5-desk3"


@pytest.mark.parametrize("n", [1, 2, 12])
def test_given_a_desk_leg_built_when_parsed_then_its_call_and_number_come_back(n: int) -> None:
    leg = ids.desk_leg(CALLER, n)

    assert ids.is_desk_leg(leg)
    assert ids.caller_channel_of(leg) == CALLER
    assert ids.desk_leg_number(leg) == n


def test_given_a_caller_channel_when_parsed_then_it_is_its_own_call_and_no_desk_leg() -> None:
    assert not ids.is_desk_leg(CALLER)
    assert ids.caller_channel_of(CALLER) == CALLER
    assert ids.desk_leg_number(CALLER) is None
    assert ids.desk_leg_number("12345") is None  # digits alone are no desk leg's number


@pytest.mark.parametrize("odd", ["c1-desk", "c1-deskX", "c1-desk²"])
def test_given_a_desk_leg_without_a_number_then_it_is_a_desk_leg_of_no_number(odd: str) -> None:
    assert ids.is_desk_leg(odd)
    assert ids.caller_channel_of(odd) == "c1"
    assert ids.desk_leg_number(odd) is None


def test_given_our_bridges_when_parsed_then_they_name_their_call() -> None:
    assert ids.call_of_bridge(ids.hold_bridge(CALLER)) == CALLER
    assert ids.call_of_bridge(ids.mixing_bridge(CALLER)) == CALLER
    assert ids.call_of_bridge("debris-hold") == "debris"


@pytest.mark.parametrize("other", ["someone-else", "c1", "c1-desk1", "c1-holding"])
def test_given_a_bridge_not_ours_then_it_names_no_call(other: str) -> None:
    assert ids.call_of_bridge(other) is None
