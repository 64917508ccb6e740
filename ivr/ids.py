"""The scheme of the ids the line gives Asterisk channels and bridges, built and parsed here only.

A call is known by its caller's channel id ``<channel>``; everything the line creates for it
is named after it, so any event, bridge or leftover can be traced back to its call::

    <channel>-hold     the caller's holding bridge (music on hold while they wait)
    <channel>-bridge   the mixing bridge where caller and supervisor talk
    <channel>-deskN    the N-th desk leg rung for the call (N = 1, 2, ...)

A callback from a desk (a console command, no caller channel) is named after its command:

    callback-<command>-supervisor   the desk's leg (rung first)
    callback-<command>-number       the caller's number, over the trunk
    callback-<command>-talk         the bridge where they talk

These strings are part of the lab contract (docs/lab.md) and are persisted in call rows
(``desk_channel_id``, ``bridge_id``): a new version must read the ids an older one wrote, or
adopting calls after an upgrade breaks. Change them never; add new kinds beside them.
"""

from __future__ import annotations

HOLD_SUFFIX = "-hold"
BRIDGE_SUFFIX = "-bridge"
DESK_LEG_MARK = "-desk"
_BRIDGE_SUFFIXES = (HOLD_SUFFIX, BRIDGE_SUFFIX)


def hold_bridge(channel_id: str) -> str:
    """The caller's holding bridge."""
    return f"{channel_id}{HOLD_SUFFIX}"


def mixing_bridge(channel_id: str) -> str:
    """The bridge where the caller talks with the supervisor."""
    return f"{channel_id}{BRIDGE_SUFFIX}"


def desk_leg(channel_id: str, n: int) -> str:
    """The ``n``-th desk leg rung for the caller's call."""
    return f"{channel_id}{DESK_LEG_MARK}{n}"


def is_desk_leg(channel_id: str) -> bool:
    """Is this channel one the line rang on a desk (rather than a caller's)?"""
    return DESK_LEG_MARK in channel_id


def caller_channel_of(channel_id: str) -> str:
    """The caller's channel id a desk leg belongs to; a caller's id maps to itself."""
    return channel_id.split(DESK_LEG_MARK, 1)[0]


def desk_leg_number(channel_id: str) -> int | None:
    """Which desk leg of its call this is (the N of ``-deskN``); None for any other id."""
    if not is_desk_leg(channel_id):
        return None
    n = channel_id.rsplit(DESK_LEG_MARK, 1)[-1]
    return int(n) if n.isdecimal() else None  # isdigit() would let '²' reach int()


def call_of_bridge(bridge_id: str) -> str | None:
    """The caller's channel id a bridge of ours belongs to; None for a bridge not ours."""
    for suffix in _BRIDGE_SUFFIXES:
        if bridge_id.endswith(suffix):
            return bridge_id.removesuffix(suffix)
    return None


CALLBACK_PREFIX = "callback-"


def callback_channel(command_id: int, which: str) -> str:
    """A callback's leg (``which``: 'supervisor' or 'number') or its bridge ('talk')."""
    return f"{CALLBACK_PREFIX}{command_id}-{which}"


def is_callback(resource_id: str) -> bool:
    return resource_id.startswith(CALLBACK_PREFIX)
