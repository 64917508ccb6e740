"""Roster admin: list and search officers, view and edit one (every view and change
audited), upload a roster CSV through the CLI's importer, officers' photos."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, jsonify, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from ivr import photos, services
from ivr.exceptions import ConsoleError, RosterImportError
from ivr.models import OfficerStatus, Role
from ivr.roster import OfficerEdit
from ivr.web import context, nav
from ivr.web.auth import EVERYONE, me, roles
from ivr.web.errors import wants_json

bp = Blueprint("roster", __name__, url_prefix="/roster")
nav.add("roster.officers", "Roster", EVERYONE)

# the UTC offsets in use somewhere: the editor's time zone select
OFFSETS = ["-12:00", "-11:00", "-10:00", "-09:30", "-09:00", "-08:00", "-07:00", "-06:00",
           "-05:00", "-04:00", "-03:30", "-03:00", "-02:00", "-01:00", "+00:00", "+01:00",
           "+02:00", "+03:00", "+03:30", "+04:00", "+04:30", "+05:00", "+05:30", "+05:45",
           "+06:00", "+06:30", "+07:00", "+08:00", "+08:45", "+09:00", "+09:30", "+10:00",
           "+10:30", "+11:00", "+12:00", "+12:45", "+13:00", "+14:00"]


def _local(value: object) -> str:
    """A stored ISO UTC time as the datetime-local input's value (shown with +00:00)."""
    if not isinstance(value, str):
        return ""
    return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M")


@bp.get("")
@roles(*EVERYONE)
def officers() -> str:
    """List officers, or those whose warrant number or name matches ``q``."""
    query = (request.args.get("q") or "").strip()[:100]
    return render_template("roster/list.html", officers=services.officers(context.store(), query),
                           q=query)


@bp.get("/<int:officer_id>")
@roles(*EVERYONE)
def officer(officer_id: int) -> str:
    """One officer's record (audited: view_officer)."""
    found = services.officer(context.store(), officer_id, me().username, context.address())
    return render_template("roster/officer.html", officer=found)


@bp.get("/<int:officer_id>/edit")
@roles(Role.ADMIN)
def edit_form(officer_id: int) -> str:
    """The editor, its duty window shown in UTC."""
    found = services.officer(context.store(), officer_id, me().username, context.address())
    return render_template("roster/edit.html", officer=found, offsets=OFFSETS,
                           statuses=[s.value for s in OfficerStatus],
                           start=_local(found["on_duty_from"]),
                           end=_local(found["on_duty_until"]))


@bp.post("/<int:officer_id>")
@roles(Role.ADMIN)
def edit(officer_id: int) -> BaseResponse:
    """Change an officer's record (audited: officer_edit, before and after)."""
    f = request.form
    change = OfficerEdit(name=f.get("name", ""), rank=f.get("rank", ""),
                         unit=f.get("unit", ""), station=f.get("station", ""),
                         status=f.get("status", ""), on_duty_from=f.get("on_duty_from", ""),
                         on_duty_until=f.get("on_duty_until", ""),
                         offset=f.get("offset", "+00:00"))
    services.edit_officer(context.store(), officer_id, change, me().username, context.address())
    return redirect(f"/roster/{officer_id}", 303)


@bp.post("/<int:officer_id>/photo")
@roles(Role.ADMIN)
def upload_photo(officer_id: int) -> BaseResponse:
    """Store a JPEG or PNG (at most 2 MB) as the officer's photo."""
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        raise ConsoleError("photo_missing", "choose a JPEG or PNG file to upload", 422)
    data = upload.stream.read(photos.MAX_BYTES + 1)
    services.set_officer_photo(context.store(), context.settings(), officer_id, data,
                               me().username, context.address())
    return redirect(f"/roster/{officer_id}", 303)


@bp.get("/<int:officer_id>/photo")
@roles(*EVERYONE)
def photo(officer_id: int) -> Response:
    """The officer's photo, to signed-in users only (audited: view_officer_photo)."""
    where, mime = services.officer_photo(context.store(), context.settings(), officer_id,
                                         me().username, context.address())
    # at most 2 MB: read whole, so no file handle outlives the request
    return Response(where.read_bytes(), mimetype=mime, headers={"Cache-Control": "no-store"})


@bp.get("/import")
@roles(Role.ADMIN)
def import_form() -> str:
    """The roster upload form."""
    return render_template("roster/import.html", problems=None, counts=None)


@bp.post("/import")
@roles(Role.ADMIN)
def import_roster() -> tuple[str | Response, int]:
    """Replace the roster with an uploaded CSV: all of it, or nothing (line-numbered errors)."""
    upload = request.files.get("roster")
    if upload is None or not upload.filename:
        raise ConsoleError("roster_file_missing", "choose a roster CSV file to upload", 422)
    try:
        text = upload.stream.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConsoleError("roster_encoding", "the roster file is not UTF-8 text", 422) from None
    try:
        counts = services.import_roster(context.store(), text, me().username, context.address())
    except RosterImportError as exc:
        if wants_json():
            return jsonify(error="roster_invalid", message=str(exc),
                           problems=[{"line": n, "message": m} for n, m in exc.problems]), 422
        return render_template("roster/import.html", problems=exc.problems, counts=None), 422
    if wants_json():
        return jsonify(counts), 200
    return render_template("roster/import.html", problems=None, counts=counts), 200
