"""The supervisor's desk: the live screen-pop stream (Server-Sent Events) and the officer's
photo it shows (docs/console.md, "Desk and screen-pop")."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_from_directory

from ivr import services
from ivr.exceptions import ConsoleError
from ivr.models import Role
from ivr.web import context, live
from ivr.web.auth import EVERYONE, me, roles

bp = Blueprint("desk", __name__)
KEEPALIVE_SECONDS = 15.0


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
