"""The line's use cases, called by every front end: the ARI app, the CLI and the console.

Adapters translate (ARI events, command lines, HTTP requests) and call these; the decisions
and every database query live here or below (ivr.calllog, ivr.roster), never in an adapter.
Each function opens its own session on the store it is given, so a caller on a worker thread
(the ARI app's database thread) or in a request (the console) uses them the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, literal, select, update
from sqlalchemy.orm import Session

from ivr import (
    accounts,
    audit,
    callers,
    calllog,
    encounters,
    photos,
    preregistration,
    retention,
    roster,
    screenpop,
    search,
    tokens,
)
from ivr import dashboard as dashboard_room
from ivr import desks as desk_room
from ivr.accounts import UserView
from ivr.callflow import FlowSettings
from ivr.clock import now
from ivr.config import Settings
from ivr.desks import CallbackJob, DeskRow, DeskView
from ivr.entities import CallData
from ivr.exceptions import ConsoleError
from ivr.models import (
    Call,
    Callback,
    CallEvent,
    CallOutcome,
    CallPath,
    ConsoleCommand,
    DeviceToken,
    Officer,
    Outcome,
    Supervisor,
)
from ivr.store import Store, notify
from ivr.telephony import LookupResult
from ivr.tokens import TokenView

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


# what a caller's '#' asks the store, in one statement: the officer's card (null columns when
# no officer has the digits), how many numbers the caller looked up in the rate window, and the
# officer's open pre-registered encounter. Three statements in a transaction were six round
# trips on PostgreSQL (BEGIN, three SELECTs, COMMIT, and the pool's ping).
_CHECK_NUMBER = (
    select(*roster.CARD_COLUMNS, calllog.recent_lookups_column().label("recent"),
           encounters.open_device_reference_column(Officer.id).label("device"))
    .select_from(select(literal(1).label("one")).subquery("one_row"))
    .outerjoin(Officer, Officer.warrant_number == bindparam("b_digits")))


def check_number(store: Store, settings: Settings, digits: str, caller_number: str | None,
                 channel_id: str, at: datetime) -> LookupResult:
    """What the roster says about the digits keyed, and whether this caller has now looked up
    more numbers than the rate allows (flagged for the supervisor, never refused)."""
    with store.reading() as c:
        row = c.execute(_CHECK_NUMBER, {
            "b_digits": digits, "b_number": caller_number or "", "b_call": channel_id,
            "b_since": at - timedelta(seconds=settings.rate_window),
            "b_at": at, "b_opened_after": encounters.opened_after(at)}).one()
    found = roster.lookup_card(roster.card_of(row) if digits else None, digits, at)
    recent = row.recent if calllog.lookups_counted(caller_number) else 0
    # this lookup is one more: flag the caller once they go over the rate
    flagged = bool(digits) and recent + 1 > settings.rate_limit
    return LookupResult(found.result, found.officer_id, found.officer_label, flagged,
                        encounter_reference=row.device)


def set_availability(store: Store, desks: Iterable[str], action: str,
                     reason: str = "cli") -> None:
    """Pause, make available, sign out or sign in supervisors (the line applies it within a
    second). ``action``: a key of :data:`AVAILABILITY`."""
    paused, signed_out = AVAILABILITY[action]
    with store.session() as s:
        for desk in desks:
            calllog.set_availability(s, desk, paused=paused, signed_out=signed_out,
                                     reason=reason)


def availability(store: Store) -> dict[str, DeskRow]:
    """desk -> its availability as the supervisors (or the line) last set it, who holds it on
    the console, the call whose outcome it owes and its last answered call that ended."""
    with store.session() as s:
        return desk_room.rows(s)


# --- the console's desks, outcomes and callbacks -----------------------------------------


def record_outcome(store: Store, call_id: int, outcome: str, note: str, by_user: str,
                   desk: str | None) -> None:
    """Append what the supervisor concluded to the call (a correction is a new entry); the
    desk that owed it is let go."""
    if outcome not in {o.value for o in Outcome}:
        raise ConsoleError("outcome_invalid", f"unknown outcome {outcome!r}: one of "
                           f"{', '.join(o.value for o in Outcome)}", 422)
    with store.session() as s:
        call = s.get(Call, call_id)
        if call is None:
            raise ConsoleError("call_not_found", f"there is no call {call_id}", 404)
        at = now()
        s.add(CallOutcome(call_id=call.id, at=at, outcome=outcome, note=note, by_user=by_user,
                          desk=desk))
        s.add(CallEvent(call_id=call.id, at=at, kind="outcome",
                        detail={"outcome": outcome, "note": note, "by": by_user, "desk": desk}))
        call.outcome = outcome
        s.execute(update(Supervisor).where(Supervisor.wrapup_channel == call.channel_id)
                  .values(wrapup_channel=None))
        notify(s)


def take_desk(store: Store, desk: str, username: str) -> None:
    """A console user takes a desk (screen-pop, outcome)."""
    with store.session() as s:
        desk_room.take(s, desk, username)


def leave_desk(store: Store, desk: str, username: str) -> None:
    with store.session() as s:
        desk_room.leave(s, desk, username)


def release_desk(store: Store, desk: str, by_user: str) -> None:
    """An admin lets a desk go without the outcome it owes (the caller audits it)."""
    with store.session() as s:
        desk_room.release(s, desk)


def desks(store: Store) -> list[DeskView]:
    """Every desk as the console shows it."""
    with store.session() as s:
        return desk_room.views(s)


def request_callback(store: Store, callback_id: int, desk: str, by_user: str) -> int:
    """Ask the line to call a caller back from ``desk`` (the desk rings first); return the
    command's id."""
    with store.session() as s:
        cb = s.get(Callback, callback_id)
        if cb is None:
            raise ConsoleError("callback_not_found", f"there is no callback {callback_id}", 404)
        if cb.done_at is not None:
            raise ConsoleError("callback_done", f"callback {callback_id} is done already", 409)
        if callers.is_hashed(cb.caller_number):
            raise ConsoleError("callback_number_purged",
                               "the caller's number was hashed at the end of its retention "
                               "period (verifyline purge): it cannot be called back", 422)
        if callers.caller_number(cb.caller_number) is None:
            raise ConsoleError("callback_withheld",
                               "the caller withheld their number: it cannot be called back", 422)
        if s.scalars(select(Supervisor.id).where(Supervisor.desk == desk)).first() is None:
            raise ConsoleError("desk_unknown", f"there is no desk {desk!r}", 404)
        command = ConsoleCommand(at=now(), kind="callback", desk=desk, callback_id=cb.id,
                                 requested_by=by_user)
        s.add(command)
        s.flush()
        return command.id


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
             display_name: str = "", *, actor: str | None = None, address: str = ""
             ) -> UserView:
    """A new console account (``verifyline users add``, an admin on the console); audited
    (``user_add``) in the same transaction when ``actor`` is given."""
    with store.session() as s:
        made = accounts.add_user(s, username, password, role, display_name)
        if actor is not None:
            audit.record(s, actor, "user_add", f"user:{made.username}", address,
                         {"role": made.role.value, "display_name": made.display_name})
        return made


def disable_user(store: Store, username: str, actor: str, address: str = "") -> UserView:
    """Disable an account (audited ``user_disable``)."""
    with store.session() as s:
        done = accounts.disable_user(s, username, actor)
        audit.record(s, actor, "user_disable", f"user:{username}", address,
                     {"before": {"disabled": False}, "after": {"disabled": True}})
        return done


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


def claim_callbacks(store: Store, desks: Iterable[str]) -> list[CallbackJob]:
    """The line takes the callbacks requested for its desks; each is claimed by one UPDATE
    guarded by ``claimed_at IS NULL``, so two apps never both place one."""
    jobs: list[CallbackJob] = []
    with store.session() as s:
        waiting = list(s.scalars(select(ConsoleCommand.id).where(
            ConsoleCommand.kind == "callback", ConsoleCommand.claimed_at.is_(None),
            ConsoleCommand.desk.in_(list(desks))).order_by(ConsoleCommand.id)))
        for command_id in waiting:
            claimed = cast(CursorResult[Any], s.execute(update(ConsoleCommand).where(
                ConsoleCommand.id == command_id, ConsoleCommand.claimed_at.is_(None))
                .values(claimed_at=now())))
            if claimed.rowcount != 1:
                continue  # another app took it
            command = s.get_one(ConsoleCommand, command_id)
            cb = s.get(Callback, command.callback_id) if command.callback_id else None
            if cb is None or cb.done_at is not None:
                command.done_at, command.result = now(), "not_needed"
                continue
            jobs.append(CallbackJob(command.id, command.desk,
                                    callers.dialable(cb.caller_number), cb.reference,
                                    command.requested_by))
    return jobs


def callback_progress(store: Store, command_id: int, kind: str,
                      result: str | None = None) -> None:
    """A step of a callback, on the original call's timeline (``kind``: callback_placed,
    callback_answered, callback_failed); with ``result`` the command is finished, and an
    answered one marks the callback done by whoever asked for it."""
    with store.session() as s:
        command = s.get_one(ConsoleCommand, command_id)
        cb = s.get(Callback, command.callback_id) if command.callback_id else None
        if result is not None:
            command.done_at, command.result = now(), result
            if kind == "callback_answered" and cb is not None:
                calllog.callback_done(s, cb.id, command.requested_by)
        if cb is not None:
            detail: dict[str, object] = {"desk": command.desk, "by": command.requested_by,
                                         "command": command.id}
            if result is not None:
                detail["result"] = result
            s.add(CallEvent(call_id=cb.call_id, at=now(), kind=kind, detail=detail))
            notify(s)


# --- the roster, on the console --------------------------------------------------------------


def import_roster(store: Store, text: str, actor: str, address: str = "") -> dict[str, int]:
    """Replace the roster with a CSV (the CLI's importer: a bad row fails the whole file with
    RosterImportError and nothing is written); audited ``roster_import`` with its counts."""
    rows = roster.parse_csv(text)
    with store.session() as s:
        counts = roster.import_counts(s, rows)
        roster.replace_roster(s, rows)
        audit.record(s, actor, "roster_import", "roster", address, counts)
    return counts


def officers(store: Store, query: str = "", limit: int = 200) -> list[dict[str, object]]:
    """Officers matching a warrant number (prefix) or name (part), by warrant number."""
    at = now()
    with store.session() as s:
        return [roster.officer_json(o, at) for o in roster.search(s, query, limit)]


def _officer(session: Session, officer_id: int) -> Officer:
    found = session.get(Officer, officer_id)
    if found is None:
        raise ConsoleError("officer_not_found", f"no officer with id {officer_id}", 404)
    return found


def officer(store: Store, officer_id: int, viewer: str, address: str = "",
            audited: bool = True) -> dict[str, object]:
    """One officer's record; the view is audited (``view_officer``) unless ``audited`` is
    off (the editor re-showing a form the same user just opened)."""
    with store.session() as s:
        found = _officer(s, officer_id)
        if audited:
            audit.record(s, viewer, "view_officer", f"officer:{found.warrant_number}", address)
        return roster.officer_json(found, now())


def edit_officer(store: Store, officer_id: int, edit: roster.OfficerEdit, actor: str,
                 address: str = "") -> dict[str, object]:
    """Change an officer's record (the line's next lookup sees it); audited ``officer_edit``
    with the changed fields' before and after. 422 officer_invalid names bad fields."""
    values = roster.parse_edit(edit)
    with store.session() as s:
        found = _officer(s, officer_id)
        before, after = roster.apply_edit(found, values)
        if after:
            audit.record(s, actor, "officer_edit", f"officer:{found.warrant_number}", address,
                         {"before": before, "after": after})
        return roster.officer_json(found, now())


def set_officer_photo(store: Store, settings: Settings, officer_id: int, data: bytes,
                      actor: str, address: str = "") -> dict[str, object]:
    """Store a JPEG or PNG as the officer's photo (audited ``officer_edit``)."""
    photos.kind(data)  # refuse before anything is written
    with store.session() as s:
        _officer(s, officer_id)
    name = photos.save(settings.home, data)
    try:
        with store.session() as s:
            found = _officer(s, officer_id)
            audit.record(s, actor, "officer_edit", f"officer:{found.warrant_number}", address,
                         {"before": {"photo": found.photo}, "after": {"photo": name}})
            found.photo = name
            return roster.officer_json(found, now())
    except BaseException:
        (photos.folder(settings.home) / name).unlink(missing_ok=True)
        raise


def officer_photo(store: Store, settings: Settings, officer_id: int, viewer: str,
                  address: str = "") -> tuple[Path, str]:
    """The officer's photo file and its MIME type; audited ``view_officer_photo``.
    404 photo_not_found when there is none (or its file is missing)."""
    with store.session() as s:
        found = _officer(s, officer_id)
        where = photos.path(settings.home, found.photo) if found.photo else None
        if where is None or found.photo is None:
            raise ConsoleError("photo_not_found", "this officer has no photo on file", 404)
        audit.record(s, viewer, "view_officer_photo", f"officer:{found.warrant_number}",
                     address, {"photo": found.photo})
        return where, photos.MIME[found.photo.rpartition(".")[2].lower()]


# --- device tokens and pre-registration (docs/api.md) ----------------------------------------


def add_token(store: Store, warrant_number: str, label: str, created_by: str,
              address: str = "") -> tuple[int, str]:
    """A new device token for an officer: (its id, the token, shown only this once);
    audited ``token_add``."""
    with store.session() as s:
        made, token = tokens.add(s, warrant_number, label, created_by)
        audit.record(s, created_by, "token_add", f"token:{made.id}", address,
                     {"prefix": made.prefix, "warrant_number": made.warrant_number,
                      "label": made.label})
        return made.id, token


def device_tokens(store: Store) -> list[TokenView]:
    with store.session() as s:
        return tokens.list_all(s)


def revoke_token(store: Store, token_id: int, by: str, address: str = "") -> TokenView:
    """Revoke a device token at once (audited ``token_revoke``); 404 token_not_found,
    409 token_revoked."""
    with store.session() as s:
        done = tokens.revoke(s, token_id)
        audit.record(s, by, "token_revoke", f"token:{token_id}", address,
                     {"prefix": done.prefix, "warrant_number": done.warrant_number})
        return done


def device_for_token(store: Store, token: str) -> TokenView:
    """The device a bearer token belongs to, or ConsoleError 401 token_invalid /
    401 token_revoked / 403 officer_restricted. Writes nothing."""
    with store.session() as s:
        return tokens.view(tokens.authenticate(s, token))


def _used(session: Session, row: DeviceToken, action: str, reference: str, address: str,
          **detail: object) -> None:
    row.last_used_at = now()
    audit.record(session, f"token:{row.prefix}", action,
                 f"encounter:{reference}" if reference else "", address,
                 {"token_id": row.id, **detail})


def open_preregistration(store: Store, token: str, place: str, latitude: float | None,
                         longitude: float | None, purpose: str, address: str = ""
                         ) -> dict[str, object]:
    """The device opens an encounter for its officer (open for PREREGISTRATION_HOURS):
    201's body. 409 encounter_open (with the open one's reference), 422 encounter_invalid."""
    request = preregistration.parse_request({"place": place, "latitude": latitude,
                                             "longitude": longitude, "purpose": purpose})
    at = now()
    with store.session() as s:
        row = tokens.authenticate(s, token)
        made = preregistration.open_for(s, row, request, at)
        _used(s, row, "api_open_encounter", made.reference, address)
        return preregistration.as_json(s, made, at)


def device_encounter(store: Store, token: str, reference: str, address: str = ""
                     ) -> dict[str, object]:
    """One of the device's officer's pre-registrations with its calls (never who called)."""
    at = now()
    with store.session() as s:
        row = tokens.authenticate(s, token)
        found = preregistration.find(s, row, reference)
        _used(s, row, "api_view_encounter", reference, address)
        return preregistration.as_json(s, found, at)


def close_preregistration(store: Store, token: str, reference: str, address: str = ""
                          ) -> dict[str, object]:
    """The device closes its pre-registration; 409 encounter_closed if it already was."""
    at = now()
    with store.session() as s:
        row = tokens.authenticate(s, token)
        found = preregistration.find(s, row, reference)
        preregistration.close(found, at)
        _used(s, row, "api_close_encounter", reference, address)
        return preregistration.as_json(s, found, at)


def device_encounters(store: Store, token: str, open_only: bool = False, address: str = ""
                      ) -> list[dict[str, object]]:
    """The device's officer's pre-registrations, newest first."""
    at = now()
    with store.session() as s:
        row = tokens.authenticate(s, token)
        found = preregistration.listed(s, row, at, open_only)
        _used(s, row, "api_list_encounters", "", address, open_only=open_only)
        return [preregistration.as_json(s, e, at) for e in found]


# --- retention (verifyline purge) -----------------------------------------------------------


def purge(store: Store, settings: Settings, at: datetime, *, dry_run: bool = False,
          run_by: str = "") -> retention.PurgeReport:
    """Hash callers' numbers and delete recordings older than their retention periods
    (docs/operations.md, "Retention and privacy"); a dry run only counts."""
    policy = retention.Policy(settings.retain_caller_number_days,
                              settings.retain_recordings_days)
    rejected = journal_path(settings).parent / "rejected.jsonl"
    try:
        with rejected.open("rb") as f:
            refused = sum(1 for line in f if line.strip())
    except FileNotFoundError:
        refused = 0
    return retention.purge(store, policy, settings.retention_key, settings.recordings_dir, at,
                           lock_file=settings.run_dir / "purge.lock", dry_run=dry_run,
                           run_by=run_by, rejected_writes=refused)


# --- the supervisor's screen and the encounters (the console) -------------------------------


def screen_pop(store: Store, call_id: int) -> dict[str, Any]:
    """What the supervisor's screen shows about a call (docs/console.md, "Desk and
    screen-pop"); 404 call_not_found."""
    with store.session() as s:
        found = screenpop.screen_pop(s, call_id)
    if found is None:
        raise ConsoleError("call_not_found", f"there is no call {call_id}", 404)
    return found


def desk_events_since(store: Store, last_id: int, limit: int = 500,
                      desk: str | None = None) -> list[screenpop.DeskEvent]:
    """The call events a desk's screen follows after ``last_id`` (what the live hub polls),
    for one desk or all."""
    with store.session() as s:
        return screenpop.desk_events_since(s, last_id, limit, desk)


def last_event_id(store: Store) -> int:
    """The newest call event's id: a live hub follows what comes after it."""
    with store.session() as s:
        return screenpop.last_event_id(s)


def console_desk(store: Store, username: str) -> str | None:
    """The desk this console user took (None: none)."""
    with store.session() as s:
        return s.scalars(select(Supervisor.desk).where(Supervisor.console_user == username)
                         .order_by(Supervisor.desk)).first()


def encounter_search(store: Store, filters: search.SearchFilters, page: int = 1,
                     per_page: int = search.PER_PAGE,
                     cursor: search.Cursor | None = None) -> dict[str, Any]:
    """One page of the encounters' calls that match, newest first, with the (capped) count
    and the keyset cursors of the pages beside it."""
    with store.session() as s:
        return search.search(s, filters, page, per_page, cursor)


def encounter_csv(store: Store, filters: search.SearchFilters,
                  page: int | None = None) -> Iterator[str]:
    """The search as CSV lines (docs/console.md): one page, or the whole search."""
    with store.session() as s:
        yield from search.csv_lines(s, filters, page)


def encounter_detail(store: Store, reference: str) -> dict[str, Any]:
    """An encounter with its calls, timelines and outcomes; 404 encounter_not_found."""
    with store.session() as s:
        found = search.detail(s, reference)
    if found is None:
        raise ConsoleError("encounter_not_found", f"there is no encounter {reference}", 404)
    return found


def call_recording(store: Store, settings: Settings, call_id: int) -> tuple[str, Path]:
    """(the call's reference, the path of its recording); 404 recording_not_found."""
    with store.session() as s:
        found = search.call_recording(s, call_id)
    if found is None:
        raise ConsoleError("recording_not_found", f"call {call_id} has no recording", 404)
    reference, name = found
    if "/" in name or "\\" in name or ".." in name or not name:
        raise ConsoleError("recording_not_found", f"call {call_id} has no usable recording", 404)
    path = settings.recordings_dir / f"{name}.wav"
    if not path.is_file():
        raise ConsoleError("recording_not_found",
                           f"the recording of call {call_id} is not on this machine", 404)
    return reference, path


def latest_desk_event(store: Store, desk: str) -> screenpop.DeskEvent | None:
    """The desk's newest screen event (what a freshly opened desk page shows first)."""
    with store.session() as s:
        return screenpop.latest_desk_event(s, desk)


def dashboard(store: Store) -> dict[str, Any]:
    """The operations dashboard: waiting callers, desks, callbacks not done, today's counts
    (docs/console.md, "Dashboard")."""
    with store.session() as s:
        return dashboard_room.dashboard(s)


def desk_view(store: Store, desk: str) -> DeskView | None:
    """One desk as the console shows it (None: no such desk)."""
    with store.session() as s:
        return next((d for d in desk_room.views(s) if d.desk == desk), None)


# --- metrics (issue 13: metrics and logs) ---


def call_log_figures(store: Store) -> dict[str, Any]:
    """What the call log says for the console's /metrics: ended calls counted by (roster
    result, path, end reason), calls still open, and desks by the state the line last showed."""
    with store.session() as s:
        ended = s.execute(
            select(Call.roster_result, Call.path, Call.end_reason, func.count())
            .where(Call.ended_at.is_not(None))
            .group_by(Call.roster_result, Call.path, Call.end_reason)).all()
        open_calls = s.scalar(select(func.count()).select_from(Call)
                              .where(Call.ended_at.is_(None))) or 0
        states = s.execute(select(Supervisor.state, func.count())
                           .group_by(Supervisor.state)).all()
    return {
        "ended": [((r.value if r is not None else "not_known"), p.value, e or "not_known", n)
                  for r, p, e, n in ended],
        "open": int(open_calls),
        "desks": {state: int(n) for state, n in states},
    }
# --- end metrics ---
