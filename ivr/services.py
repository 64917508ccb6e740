"""The line's use cases, called by every front end: the ARI app, the CLI and the console.

Adapters translate (ARI events, command lines, HTTP requests) and call these; the decisions
and every database query live here or below (ivr.calllog, ivr.roster), never in an adapter.
Each function opens its own session on the store it is given, so a caller on a worker thread
(the ARI app's database thread) or in a request (the console) uses them the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from ivr import accounts, audit, calllog, roster
from ivr.accounts import UserView
from ivr.callflow import FlowSettings
from ivr.config import Settings
from ivr.entities import CallData
from ivr.exceptions import ConsoleError
from ivr.models import Call, CallPath
from ivr.store import Store
from ivr.telephony import LookupResult

# a supervisor's availability action (feature code *51..*54, `verifyline supervisors ...`,
# the console) -> (paused, signed out)
AVAILABILITY: dict[str, tuple[bool, bool]] = {
    "pause": (True, False), "available": (False, False),
    "signout": (True, True), "signin": (False, False),
}


def journal_path(settings: Settings) -> Path:
    """One journal per database: entries are only ever replayed where they belong."""
    key = hashlib.sha256(settings.db_url.encode()).hexdigest()[:12]
    return settings.home / "journal" / f"{key}.log"


def flow_settings(settings: Settings) -> FlowSettings:
    """What the call state machine needs from the line's settings."""
    return FlowSettings(entry=settings.entry, ring_timeout=settings.ring_timeout,
                        ring_all=settings.strategy == "ring_all",
                        hold_interval=settings.hold_interval,
                        emergency_endpoint=settings.emergency_endpoint,
                        queue_max_wait=settings.queue_max_wait,
                        whisper_timeout=settings.whisper_timeout,
                        recording=settings.recording)


def check_number(store: Store, settings: Settings, digits: str, caller_number: str | None,
                 channel_id: str, at: datetime) -> LookupResult:
    """What the roster says about the digits keyed, and whether this caller has now looked up
    more numbers than the rate allows (flagged for the supervisor, never refused)."""
    with store.session() as s:
        found = roster.lookup(s, digits, at)
        recent = calllog.recent_lookups(s, caller_number, channel_id,
                                        at - timedelta(seconds=settings.rate_window))
    # this lookup is one more: flag the caller once they go over the rate
    flagged = bool(digits) and recent + 1 > settings.rate_limit
    return LookupResult(found.result, found.officer_id, found.officer_label, flagged)


def set_availability(store: Store, desks: Iterable[str], action: str,
                     reason: str = "cli") -> None:
    """Pause, make available, sign out or sign in supervisors (the line applies it within a
    second). ``action``: a key of :data:`AVAILABILITY`."""
    paused, signed_out = AVAILABILITY[action]
    with store.session() as s:
        for desk in desks:
            calllog.set_availability(s, desk, paused=paused, signed_out=signed_out,
                                     reason=reason)


def availability(store: Store) -> dict[str, tuple[bool, bool]]:
    """desk -> (paused, signed out), as the supervisors (or the line) last set it."""
    with store.session() as s:
        return calllog.availability(s)


def roster_cards(store: Store) -> list[roster.OfficerCard]:
    """The roster as the line's in-memory copy keeps it."""
    with store.session() as s:
        return roster.officer_cards(s)


def new_reference(store: Store) -> str:
    """An encounter reference not yet in the store."""
    with store.session() as s:
        return calllog.new_reference(s)


def prepare_store(store: Store, desks: Iterable[str]) -> dict[str, datetime | None]:
    """Migrate the schema, make sure every desk has its row; return when each desk was last
    idle (so the longest-idle order survives a restart)."""
    store.migrate()
    with store.session() as s:
        calllog.ensure_desks(s, desks)
    with store.session() as s:
        return calllog.idle_since(s)


def open_calls(store: Store) -> list[CallData]:
    """Calls the app was handling that are not closed, oldest first (adopted callers rejoin
    the queue in the order they came)."""
    with store.session() as s:
        rows = s.scalars(select(Call).where(Call.ended_at.is_(None), Call.path == CallPath.ARI)
                         .order_by(Call.id))
        return [calllog.data_from_row(r) for r in rows]


# --- the console's accounts ----------------------------------------------------------------


def add_user(store: Store, username: str, password: str, role: str,
             display_name: str = "") -> UserView:
    """A new console account (``verifyline users add``, an admin on the console)."""
    with store.session() as s:
        return accounts.add_user(s, username, password, role, display_name)


def authenticate(store: Store, username: str, password: str, address: str) -> UserView:
    """Sign-in: the account, or ConsoleError login_failed (401) / login_throttled (429)."""
    with store.session() as s:
        found = accounts.authenticate(s, username, password, address)
    if isinstance(found, ConsoleError):
        raise found
    return found


def user(store: Store, user_id: int) -> UserView | None:
    with store.session() as s:
        return accounts.get_user(s, user_id)


def users(store: Store) -> list[UserView]:
    with store.session() as s:
        return accounts.list_users(s)


# --- the audit log -------------------------------------------------------------------------


def record_audit(store: Store, actor: str, action: str, target: str = "", address: str = "",
                 **detail: object) -> None:
    """Log who did or saw what (every view of an encounter, recording or officer record,
    every change with its before/after)."""
    with store.session() as s:
        audit.record(s, actor, action, target, address, detail)


def audit_search(store: Store, actor: str | None = None, action: str | None = None,
                 target: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, page: int = 1, per_page: int = 50
                 ) -> tuple[list[dict[str, object]], int]:
    with store.session() as s:
        return audit.search(s, actor, action, target, since, until, page, per_page)
