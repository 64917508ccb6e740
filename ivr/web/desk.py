"""The supervisor's desk: the desk page (take a desk, leave it, the screen-pop shown on load
and kept live by static/desk.js), the live screen-pop stream (Server-Sent Events), the
desk's state for the page, the officer's photo, and the outcome form's target
(docs/console.md, "Desk and screen-pop" and "Outcome")."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from ivr import services
from ivr.clock import iso
from ivr.desks import DeskView
from ivr.exceptions import ConsoleError
from ivr.models import Outcome, Role
from ivr.screenpop import OUTCOME_WORDS
from ivr.web import context, live, nav
from ivr.web.auth import EVERYONE, audit, me, roles
from ivr.web.errors import wants_json

bp = Blueprint("desk", __name__)
nav.add("desk.page", "Desk", (Role.SUPERVISOR, Role.ADMIN))
KEEPALIVE_SECONDS = 15.0
NOTE_MAX = 2000  # characters of an outcome's note
OUTCOMES = [(o.value, OUTCOME_WORDS[o]) for o in Outcome]
PHASE_WORDS = {"ringing": "ringing", "answered": "answered", "ended": "ended",
               "cleared": "left your desk", "empty": ""}


def _state(view: DeskView | None, desk: str | None) -> dict[str, Any]:
    if view is None:
        return {"desk": desk, "state": None, "state_since": None, "outcome_owed": False,
                "outcome_owed_reference": None}
    return {"desk": view.desk, "state": view.state,
            "state_since": iso(view.state_since),
            "outcome_owed": view.wrapup_channel is not None,
            "outcome_owed_reference": view.wrapup_reference}


def _current_pop(desk: str) -> dict[str, Any] | None:
    """What the desk's screen shows on a fresh page: its newest screen-pop (as the stream's
    first event would be), or None."""
    messages = live.catch_up(context.store(), desk, None)
    return messages[-1].data if messages else None


def _page(error: ConsoleError | None = None) -> tuple[str, int]:
    store = context.store()
    desk = services.console_desk(store, me().username)
    view = services.desk_view(store, desk) if desk else None
    pop = _current_pop(desk) if desk else None
    body = render_template("desk/page.html", desk=desk, state=_state(view, desk), pop=pop,
                           desks=services.desks(store), outcomes=OUTCOMES, error=error,
                           phase_words=PHASE_WORDS, me=me().username)
    return body, error.status if error else 200


@bp.get("/desk")
@roles(Role.SUPERVISOR, Role.ADMIN)
def page() -> tuple[str, int]:
    """The desk page: take a desk, or the desk's state and its screen-pop."""
    return _page()


def _done(**reply: Any) -> BaseResponse:
    if wants_json():
        return jsonify(ok=True, **reply)
    return redirect(url_for("desk.page"), 303)


@bp.post("/desk/take")
@roles(Role.SUPERVISOR, Role.ADMIN)
def take() -> BaseResponse | tuple[str, int]:
    """Take the desk named in the form field ``desk`` (409 desk_taken, 404 desk_unknown)."""
    desk = (request.form.get("desk") or "").strip()
    try:
        if not desk:
            raise ConsoleError("desk_unknown", "choose a desk", 404)
        held = services.console_desk(context.store(), me().username)
        if held is not None and held != desk:
            raise ConsoleError("desk_held", f"you hold {held} already: leave it first", 409)
        services.take_desk(context.store(), desk, me().username)
    except ConsoleError as exc:
        if wants_json():
            raise
        return _page(exc)
    audit("take_desk", desk)
    return _done(desk=desk)


@bp.post("/desk/leave")
@roles(Role.SUPERVISOR, Role.ADMIN)
def leave() -> BaseResponse:
    """Give back the desk this user holds (a desk that owes an outcome still owes it)."""
    desk = services.console_desk(context.store(), me().username)
    if desk is None:
        raise ConsoleError("desk_not_taken", "you hold no desk", 409)
    services.leave_desk(context.store(), desk, me().username)
    audit("leave_desk", desk)
    return _done(desk=desk)


@bp.get("/desk/state.json")
@roles(Role.SUPERVISOR, Role.ADMIN)
def state() -> Response:
    """The line's state of the user's desk and the outcome it owes (desk.js polls it)."""
    store = context.store()
    desk = services.console_desk(store, me().username)
    return jsonify(_state(services.desk_view(store, desk) if desk else None, desk))


def _local_path(target: str | None) -> str | None:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.post("/calls/<int:call_id>/outcome")
@roles(Role.SUPERVISOR, Role.ADMIN)
def outcome(call_id: int) -> BaseResponse:
    """Record an outcome for the call (a correction is a new entry): form fields ``outcome``,
    ``note``, optional ``next`` (a path on this console to go back to)."""
    value = (request.form.get("outcome") or "").strip()
    note = (request.form.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        raise ConsoleError("note_too_long", f"the note is longer than {NOTE_MAX} characters",
                           422)
    store = context.store()
    user = me().username
    desk = services.console_desk(store, user)
    services.record_outcome(store, call_id, value, note, user, desk)
    pop = services.screen_pop(store, call_id)
    audit("record_outcome", pop["reference"], call_id=call_id, outcome=value, desk=desk)
    if wants_json():
        return jsonify(ok=True, call_id=call_id, outcome=value,
                       words=OUTCOME_WORDS[Outcome(value)], reference=pop["reference"])
    back = _local_path(request.form.get("next")) or url_for(
        "encounters.detail", reference=pop["encounter_reference"])
    return redirect(back, 303)


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or ""
    return int(raw) if raw.isdigit() else None


@bp.get("/desk/stream")
@roles(Role.SUPERVISOR, Role.ADMIN)
def stream() -> Response:
    """The desk's screen-pops as they happen (text/event-stream)."""
    store = context.store()
    user = me().username
    desk = services.console_desk(store, user)
    if desk is None:
        raise ConsoleError("desk_not_taken", "take a desk first: the stream follows your desk",
                           409)
    hub = live.hub()
    sub = hub.subscribe(desk)  # before the catch-up: nothing falls in between
    try:
        first = live.catch_up(store, desk, _last_event_id())
    except live.DATABASE_ERRORS:
        first = [live.Message("status", {"database": "down"})]
    keepalive = float(current_app.config.get("LIVE_KEEPALIVE_SECONDS", KEEPALIVE_SECONDS))
    body = live.stream(hub, sub, first, {"desk": desk, "user": user}, keepalive)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@bp.get("/desk/photo/<name>")
@roles(*EVERYONE)
def photo(name: str) -> Response:
    """An officer's photo from $VERIFYLINE_HOME/photos (signed-in users only)."""
    if "/" in name or "\\" in name or ".." in name or name.startswith("."):
        raise ConsoleError("photo_not_found", "no such photo", 404)
    folder = context.settings().home / "photos"
    if not (folder / name).is_file():
        raise ConsoleError("photo_not_found", "no such photo", 404)
    return send_from_directory(folder, name, max_age=0)
