"""Sign-in (Flask-Login), the idle timeout, and the roles each route admits.

Roles (ivr.models.Role): a supervisor answers calls and records outcomes; an admin also
manages the roster, users and device tokens; an auditor reads everything and the audit log
and changes nothing. Routes say which roles they admit with :func:`roles`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Blueprint,
    Flask,
    Response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ivr import services
from ivr.accounts import UserView
from ivr.exceptions import ConsoleError
from ivr.models import Role
from ivr.web import context
from ivr.web.errors import refusal, wants_json

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
F = TypeVar("F", bound=Callable[..., Any])

EVERYONE = (Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR)


class ConsoleUser(UserMixin):  # type: ignore[misc]
    """The signed-in account, as Flask-Login holds it."""

    def __init__(self, view: UserView) -> None:
        self.view = view

    def get_id(self) -> str:
        return str(self.view.id)

    @property
    def username(self) -> str:
        return self.view.username

    @property
    def role(self) -> Role:
        return self.view.role


def me() -> ConsoleUser:
    """The signed-in user (only inside a route guarded by :func:`roles`)."""
    return cast(ConsoleUser, current_user._get_current_object())


def _load(user_id: str) -> ConsoleUser | None:
    try:
        view = services.user(context.store(), int(user_id))
    except ValueError:
        return None
    return ConsoleUser(view) if view is not None and not view.disabled else None


def _unauthorized() -> BaseResponse | tuple[Response | str, int]:
    if wants_json() or request.method != "GET":
        return refusal("sign_in_required", "sign in first", 401)
    return redirect(url_for("auth.login", next=request.full_path))


def roles(*allowed: Role) -> Callable[[F], F]:
    """Admit signed-in users of these roles; others get 403 role_denied."""
    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if me().role not in allowed:
                names = ", ".join(r.value for r in allowed)
                raise ConsoleError("role_denied", f"this needs the role {names}", 403)
            return view(*args, **kwargs)
        return cast(F, guarded)
    return decorate


class LoginForm(FlaskForm):  # type: ignore[misc]
    username = StringField("User name", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def _safe_next(target: str | None) -> str:
    # only a path on this console, never another site (no open redirect)
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("auth.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str | tuple[Response | str, int]:
    form = LoginForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            return refusal("login_invalid", "give a user name and a password", 422)
        view = services.authenticate(context.store(), form.username.data,
                                     form.password.data, context.address())
        session.clear()  # a new session id for the new sign-in (no fixation)
        login_user(ConsoleUser(view))
        session.permanent = True
        session["seen"] = time.time()
        services_audit(view.username, "sign_in")
        return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> BaseResponse:
    if current_user.is_authenticated:
        # signing out gives the desk back (a desk that owes an outcome still owes it): the
        # next supervisor can take it, and its screen-pops stop going to an empty chair
        store, username = context.store(), me().username
        desk = services.console_desk(store, username)
        if desk is not None:
            services.leave_desk(store, desk, username)
            services_audit(username, "leave_desk", desk, why="sign_out")
        services_audit(username, "sign_out")
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/")
@roles(*EVERYONE)
def home() -> str:
    return render_template("home.html")


@bp.route("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness and the database: 200 when the console can read the store."""
    from flask import jsonify
    try:
        services.users(context.store())
    except Exception as exc:
        return jsonify(status="database_unavailable", detail=type(exc).__name__), 503
    return jsonify(status="ok"), 200


def services_audit(actor: str, action: str, target: str = "", **detail: object) -> None:
    """Audit what a console user did or saw, with their address."""
    services.record_audit(context.store(), actor, action, target, context.address(), **detail)


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.session_protection = "strong"
    login_manager.user_loader(_load)
    login_manager.unauthorized_handler(_unauthorized)

    @app.before_request
    def _idle_timeout() -> BaseResponse | tuple[Response | str, int] | None:
        """A session idle for longer than VERIFYLINE_IDLE_TIMEOUT signs out. The live stream
        does not count as activity (it is the page, not the person)."""
        if request.endpoint == "static":
            # a stylesheet or script is no one's activity, and needs no store read (so the
            # page saying the database is down is still styled)
            return None
        if not current_user.is_authenticated:
            return None
        seen = float(session.get("seen", 0))
        if time.time() - seen > context.settings().idle_timeout:
            logout_user()
            session.clear()
            return refusal("session_expired", "signed out after inactivity: sign in again",
                           401) if wants_json() else redirect(url_for("auth.login"))
        if request.endpoint not in ("desk.stream", "static"):
            session["seen"] = time.time()
        return None


def audit(action: str, target: str = "", **detail: object) -> None:
    """Audit what the signed-in user just did or saw."""
    services_audit(me().username, action, target, **detail)
