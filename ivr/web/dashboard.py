"""The operations dashboard (docs/console.md, "Dashboard"): waiting callers, each desk with
its pause / available / release controls, the callbacks with "call back from my desk", and
today's counts. Everyone signed in sees it; supervisors and admins act (every act audited).
static/dashboard.js refreshes it from /dashboard.json every 2 s."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from ivr import services
from ivr.exceptions import ConsoleError
from ivr.models import Role
from ivr.web import context, nav
from ivr.web.auth import EVERYONE, audit, me, roles
from ivr.web.errors import wants_json

bp = Blueprint("dashboard", __name__)
nav.add("dashboard.page", "Dashboard", EVERYONE)
ACTING = (Role.SUPERVISOR, Role.ADMIN)


@bp.get("/dashboard")
@roles(*EVERYONE)
def page() -> str:
    data = services.dashboard(context.store())
    return render_template("dashboard/page.html", data=data,
                           can_act=me().role in ACTING, is_admin=me().role is Role.ADMIN)


@bp.get("/dashboard.json")
@roles(*EVERYONE)
def data() -> Response:
    return jsonify(services.dashboard(context.store()))


def _done(**reply: object) -> BaseResponse:
    if wants_json():
        return jsonify(ok=True, **reply)
    return redirect(url_for("dashboard.page"), 303)


def _known(desk: str) -> str:
    if desk not in {d.desk for d in services.desks(context.store())}:
        raise ConsoleError("desk_unknown", f"there is no desk {desk!r}", 404)
    return desk


@bp.post("/dashboard/desks/<desk>/<action>")
@roles(*ACTING)
def availability(desk: str, action: str) -> BaseResponse:
    """Pause a desk or make it available again (``action``: pause | available)."""
    if action not in ("pause", "available"):
        raise ConsoleError("action_invalid", "the action is pause or available", 404)
    services.set_availability(context.store(), [_known(desk)], action, reason="console")
    audit("availability", desk, change=action)
    return _done(desk=desk, action=action)


@bp.post("/dashboard/desks/<desk>/release")
@roles(Role.ADMIN)
def release(desk: str) -> BaseResponse:
    """Let a desk go without the outcome it owes (admin)."""
    services.release_desk(context.store(), _known(desk), me().username)
    audit("release_desk", desk)
    return _done(desk=desk)


@bp.post("/dashboard/callbacks/<int:callback_id>")
@roles(*ACTING)
def callback(callback_id: int) -> BaseResponse:
    """Call the caller back from the desk this user holds (the desk rings first)."""
    desk = services.console_desk(context.store(), me().username)
    if desk is None:
        raise ConsoleError("desk_not_taken", "take a desk first: the callback rings your desk",
                           409)
    command = services.request_callback(context.store(), callback_id, desk, me().username)
    audit("request_callback", str(callback_id), desk=desk, command_id=command)
    return _done(callback_id=callback_id, desk=desk, command_id=command)


