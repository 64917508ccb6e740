"""Refusals with a stable error id (docs/console.md, "Errors"): JSON for the API and for
clients that ask for it, an HTML page otherwise. Nothing is written when a request is refused
(the services raise before their session commits)."""

from __future__ import annotations

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from ivr.exceptions import ConsoleError

# HTTP errors Flask raises itself, given ids of ours
_HTTP_IDS = {400: "bad_request", 401: "sign_in_required", 403: "forbidden", 404: "not_found",
             405: "method_not_allowed", 409: "conflict", 413: "too_large",
             416: "range_not_satisfiable", 422: "invalid", 429: "throttled"}


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def refusal(error_id: str, message: str, status: int) -> tuple[Response | str, int]:
    if wants_json():
        return jsonify(error=error_id, message=message), status
    return render_template("error.html", error_id=error_id, message=message,
                           status=status), status


# what the driver raises while the database server is down, restarting or unreachable (not a
# bug of ours: a constraint violation, say, stays a 500)
DATABASE_DOWN: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)


def database_unavailable(exc: Exception) -> tuple[Response | str, int]:
    """503 database_unavailable: a clear page (or JSON), never a stack trace; the session is
    kept, so a reload once the database is back carries on."""
    current_app.logger.warning("database unavailable for %s %s: %s", request.method,
                               request.path, type(exc).__name__)
    # the page's frame asks who is signed in, which would read the store again: render it as
    # for a visitor (flask-login's per-request cache of the user)
    g._login_user = current_app.login_manager.anonymous_user()  # type: ignore[attr-defined]
    body, status = refusal("database_unavailable",
                           "The database cannot be reached just now, so nothing was shown or "
                           "saved. The console carries on by itself when it is back: reload "
                           "this page in a few seconds.", 503)
    response = current_app.make_response((body, status))
    response.headers["Retry-After"] = "5"
    return response, status


def init_app(app: Flask) -> None:
    for kind in DATABASE_DOWN:
        app.register_error_handler(kind, database_unavailable)

    @app.errorhandler(ConsoleError)
    def _console_error(exc: ConsoleError) -> tuple[Response | str, int]:
        return refusal(exc.error_id, exc.message, exc.status)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[Response | str, int]:
        return refusal("csrf_invalid", "the form's security token is missing or stale: "
                       "reload the page and try again", 400)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response | str, int]:
        status = exc.code or 500
        return refusal(_HTTP_IDS.get(status, f"http_{status}"), exc.description or exc.name,
                       status)
