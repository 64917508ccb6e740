"""The audit log's search (auditors and admins): who did or saw what, when."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, jsonify, render_template, request

from ivr import services
from ivr.exceptions import invalid_fields
from ivr.models import Role
from ivr.web import context, nav
from ivr.web.auth import roles

bp = Blueprint("audit", __name__, url_prefix="/audit")
READERS = (Role.AUDITOR, Role.ADMIN)
PER_PAGE = 50
nav.add("audit.search", "Audit", READERS)


def _day(name: str, problems: dict[str, str]) -> date | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        problems[name] = "a date, YYYY-MM-DD (UTC)"
        return None


@bp.get("")
@roles(*READERS)
def search() -> str | Response:
    """Entries newest first, filtered by actor, action, target and a UTC date range
    (``since`` and ``until`` inclusive); ``?format=json`` for the JSON form."""
    problems: dict[str, str] = {}
    since, until = _day("since", problems), _day("until", problems)
    raw_page = (request.args.get("page") or "1").strip()
    page = int(raw_page) if raw_page.isdigit() and int(raw_page) >= 1 else 0
    if page == 0:
        problems["page"] = "a whole number from 1"
    if since and until and until < since:
        problems["until"] = "not before since"
    if problems:
        raise invalid_fields("filter_invalid", problems)
    filters = {k: (request.args.get(k) or "").strip()[:120] for k in ("actor", "action", "target")}
    start = datetime.combine(since, datetime.min.time(), UTC) if since else None
    end = datetime.combine(until, datetime.min.time(), UTC) + timedelta(days=1) if until else None
    entries, total = services.audit_search(context.store(), filters["actor"] or None,
                                           filters["action"] or None, filters["target"] or None,
                                           start, end, page, PER_PAGE)
    pages = max(1, math.ceil(total / PER_PAGE))
    if request.args.get("format") == "json":
        return jsonify(entries=entries, total=total, page=page, per_page=PER_PAGE, pages=pages)
    args = {k: v for k, v in request.args.items() if k not in ("page", "format")}
    return render_template("audit/search.html", entries=entries, total=total, page=page,
                           pages=pages, filters=filters, since=since, until=until, args=args)
