"""The officers' pre-registration API (docs/api.md): JSON only, per-device bearer tokens.

No cookies and no CSRF token: a request is authorised by its ``Authorization: Bearer``
header alone (a browser never sends that by itself, so cross-site forgery has nothing to
ride on). Every refusal is ``{"error": id, "message": ...}`` with the status HTTP intends.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState

from ivr import preregistration, services
from ivr.exceptions import ConsoleError, DetailedConsoleError
from ivr.web import context

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.record_once
def _no_csrf(state: BlueprintSetupState) -> None:
    state.app.extensions["csrf"].exempt(bp)


@bp.errorhandler(ConsoleError)
def _refused(exc: ConsoleError) -> tuple[Response, int]:
    body: dict[str, Any] = {"error": exc.error_id, "message": exc.message}
    if isinstance(exc, DetailedConsoleError):
        body.update(exc.detail)
    response = jsonify(body)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = f'Bearer error="{exc.error_id}"'
    return response, exc.status


def _token() -> str:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ConsoleError("token_invalid",
                           "send the device token: Authorization: Bearer <token>", 401)
    return token.strip()


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ConsoleError("json_invalid", "the request body must be a JSON object", 400)
    return body


@bp.post("/encounters")
def open_encounter() -> tuple[Response, int]:
    """Open a pre-registered encounter for the token's officer."""
    token = _token()
    services.device_for_token(context.store(), token)  # 401/403 before the body's 400/422
    wanted = preregistration.parse_request(_body())
    made = services.open_preregistration(context.store(), token, wanted.place,
                                         wanted.latitude, wanted.longitude, wanted.purpose,
                                         context.address())
    response = jsonify(made)
    response.headers["Location"] = f"/api/v1/encounters/{made['reference']}"
    return response, 201


@bp.get("/encounters")
def list_encounters() -> Response:
    """The officer's pre-registrations, newest first (``?open=1``: only open ones)."""
    open_only = (request.args.get("open") or "").lower() in ("1", "true", "yes")
    found = services.device_encounters(context.store(), _token(), open_only, context.address())
    return jsonify(encounters=found)


@bp.get("/encounters/<reference>")
def encounter(reference: str) -> Response:
    """One pre-registration with its calls (who called is never shown)."""
    return jsonify(services.device_encounter(context.store(), _token(), reference,
                                             context.address()))


@bp.post("/encounters/<reference>/close")
def close_encounter(reference: str) -> Response:
    """Close a pre-registration (no later call attaches to it)."""
    return jsonify(services.close_preregistration(context.store(), _token(), reference,
                                                  context.address()))
