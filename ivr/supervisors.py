"""Which supervisor's desk phone takes the next call: free ones only, longest idle first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from ivr.clock import as_utc, now
from ivr.telephony import DeskPresence

NEVER = datetime.min.replace(tzinfo=UTC)


class DeskPool:
    """The desk phones of the operations room and who is reserved for which call."""

    def __init__(self, desks: Sequence[str], idle_since: Mapping[str, datetime | None]) -> None:
        self.desks = tuple(desks)
        self._idle_since = {d: as_utc(idle_since.get(d)) for d in self.desks}
        self._reserved: dict[str, str] = {}

    def free(self, presence: Mapping[str, DeskPresence], exclude: frozenset[str] = frozenset()
             ) -> list[str]:
        """Desks that are registered, not in use, not reserved and not excluded; longest idle
        first (a desk that never took a call counts as idle the longest)."""
        candidates = [
            d for d in self.desks
            if d not in exclude and d not in self._reserved
            and (p := presence.get(d)) is not None and p.registered and not p.in_use
        ]
        order = {d: i for i, d in enumerate(self.desks)}
        return sorted(candidates, key=lambda d: (self._idle_since[d] or NEVER, order[d]))

    def reserve(self, presence: Mapping[str, DeskPresence], call_key: str,
                exclude: frozenset[str] = frozenset()) -> str | None:
        """Reserve the best free desk for a call, or return None when none is free."""
        free = self.free(presence, exclude)
        if not free:
            return None
        self._reserved[free[0]] = call_key
        return free[0]

    def hold(self, desk: str, call_key: str) -> None:
        """Mark a desk as taken by a call found already in progress (after a restart)."""
        self._reserved[desk] = call_key

    def release(self, desk: str, talked: bool, at: datetime | None = None) -> None:
        self._reserved.pop(desk, None)
        if talked:
            self._idle_since[desk] = at or now()

    def reserved_for(self, desk: str) -> str | None:
        return self._reserved.get(desk)
