"""Admin: console accounts and officers' device tokens (admins change, auditors read)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ivr import services
from ivr.models import Role
from ivr.web import context, nav
from ivr.web.auth import me, roles

bp = Blueprint("admin", __name__, url_prefix="/admin")
READERS = (Role.ADMIN, Role.AUDITOR)

nav.add("admin.users", "Users", READERS)
nav.add("admin.tokens", "Device tokens", READERS)


def _field(name: str) -> str:
    return (request.form.get(name) or "").strip()


@bp.get("/users")
@roles(*READERS)
def users() -> str:
    """List console accounts (and, for an admin, the form to add one)."""
    return render_template("admin/users.html", users=services.users(context.store()),
                           roles=[r.value for r in Role])


@bp.post("/users")
@roles(Role.ADMIN)
def add_user() -> BaseResponse:
    """Add a console account."""
    services.add_user(context.store(), _field("username"), request.form.get("password") or "",
                      _field("role"), _field("display_name"), actor=me().username,
                      address=context.address())
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<username>/disable")
@roles(Role.ADMIN)
def disable_user(username: str) -> BaseResponse:
    """Disable a console account."""
    services.disable_user(context.store(), username, me().username, context.address())
    return redirect(url_for("admin.users"), 303)


@bp.get("/tokens")
@roles(*READERS)
def tokens() -> str:
    """List device tokens (never the tokens themselves)."""
    return render_template("admin/tokens.html", tokens=services.device_tokens(context.store()),
                           created=None)


@bp.post("/tokens")
@roles(Role.ADMIN)
def add_token() -> tuple[str, int]:
    """Create a device token for an officer: the page shows it this once."""
    store = context.store()
    token_id, token = services.add_token(store, _field("warrant_number"), _field("label"),
                                         me().username, context.address())
    return render_template("admin/tokens.html", tokens=services.device_tokens(store),
                           created={"id": token_id, "token": token,
                                    "warrant_number": _field("warrant_number")}), 201


@bp.post("/tokens/<int:token_id>/revoke")
@roles(Role.ADMIN)
def revoke_token(token_id: int) -> BaseResponse:
    """Revoke a device token (the device's next request gets 401 token_revoked)."""
    services.revoke_token(context.store(), token_id, me().username, context.address())
    return redirect(url_for("admin.tokens"), 303)
