"""Finding encounters afterwards: the search, an encounter's page with its timeline and
recording, the CSV export (docs/console.md, "Encounters"). Every view of an encounter or a
recording, and every export, is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)

from ivr import search, services
from ivr.models import Outcome, Role
from ivr.screenpop import OUTCOME_WORDS
from ivr.web import context, nav
from ivr.web.auth import EVERYONE, audit, me, roles
from ivr.web.errors import wants_json

bp = Blueprint("encounters", __name__)
nav.add("encounters.index", "Encounters", EVERYONE)


def _zone() -> ZoneInfo:
    try:
        return ZoneInfo((request.args.get("tz") or "UTC").strip())
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@bp.app_template_filter("local")
def local(value: str | None) -> str:
    """An ISO time from the store shown in the zone the page was asked in (with its offset)."""
    if not value:
        return ""
    moment = datetime.fromisoformat(value).astimezone(_zone())
    return moment.strftime("%Y-%m-%d %H:%M:%S %z")


@bp.get("/encounters")
@roles(*EVERYONE)
def index() -> Response | str:
    """Search the encounters' calls (every filter is a query parameter)."""
    filters = search.parse_filters(request.args, context.settings().retention_key)
    page = search.parse_page(request.args.get("page"))
    cursor = search.parse_cursor(request.args)
    found = services.encounter_search(context.store(), filters, page, cursor=cursor)
    if wants_json():
        return jsonify(found)
    params: dict[str, Any] = {k: v for k, v in request.args.items()
                              if k not in ("page", "after", "before") and v}
    return render_template("encounters/search.html", found=found, args=request.args,
                           params=params, outcomes=[(o.value, OUTCOME_WORDS[o]) for o in Outcome],
                           desks=context.settings().desks,
                           csv_url=url_for("encounters.export", **params))


@bp.get("/encounters.csv")
@roles(*EVERYONE)
def export() -> Response:
    """The search as CSV: every match (or one page with ``page``), newest first."""
    filters = search.parse_filters(request.args, context.settings().retention_key)
    raw_page = request.args.get("page")
    page = search.parse_page(raw_page) if raw_page else None
    audit("export_encounters", "", **{k: v for k, v in request.args.items() if v})
    lines = services.encounter_csv(context.store(), filters, page)
    return Response(lines, mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="encounters.csv"'})


@bp.get("/encounters/<reference>")
@roles(*EVERYONE)
def detail(reference: str) -> Response | str:
    """One encounter: its calls, each call's timeline, outcomes and recording."""
    found = services.encounter_detail(context.store(), reference)
    audit("view_encounter", found["reference"])
    if wants_json():
        return jsonify(found)
    can_record = (me().role in (Role.SUPERVISOR, Role.ADMIN)
                  and "desk.outcome" in current_app.view_functions)
    return render_template("encounters/detail.html", encounter=found, can_record=can_record,
                           outcomes=[(o.value, OUTCOME_WORDS[o]) for o in Outcome])


@bp.get("/calls/<int:call_id>/recording")
@roles(*EVERYONE)
def recording(call_id: int) -> Response:
    """The call's recording (WAV, with Range requests), to signed-in users only."""
    reference, path = services.call_recording(context.store(), context.settings(), call_id)
    # a player asks for many ranges of one listening: the first (no Range, or from byte 0)
    # is the view the audit keeps
    asked = request.headers.get("Range", "")
    if not asked or asked.replace(" ", "").startswith("bytes=0-"):
        audit("view_recording", reference, call_id=call_id)
    return send_file(path, mimetype="audio/wav", conditional=True, max_age=0)
