"""The dashboard: waiting callers in queue order, desks, callbacks, today's counts; pause /
available / release / callback acts refused by role, CSRF and bad input with nothing written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select, update

from ivr import services
from ivr.clock import now
from ivr.models import AuditEntry, Callback, ConsoleCommand, Supervisor
from ivr.store import Store
from tests.unit import console_rows as rows
from tests.unit.web.conftest import csrf_token
from tests.unit.web.snapshot import snapshot

JSON = {"Accept": "application/json"}


def fill(store: Store) -> int:
    with store.session() as s:
        d1 = rows.desk(s, "desk1")
        rows.desk(s, "desk2")
        early = rows.call(s, started=now() - timedelta(seconds=40), reference="400001")
        queued = rows.event(s, early, "queued", position=1, emergency=False)
        queued.at = early.started_at + timedelta(seconds=2)  # the wait counts from here
        rows.call(s, started=now() - timedelta(seconds=5), reference="400002", caller=None,
                  flags="emergency")
        answered = rows.call(s, supervisor=d1, reference="400003", ended=True,
                             outcome="verified")
        answered.answered_at = answered.started_at
        gone = rows.call(s, reference="400004", ended=True)
        gone.end_reason = "caller_abandoned"
        cb = Callback(call_id=gone.id, caller_number="07700900001", reference="400004",
                      digits_entered="4521", created_at=now())
        s.add(cb)
        d1.wrapup_channel = answered.channel_id
        s.flush()
        return cb.id


def test_given_callers_and_desks_then_the_dashboard_shows_them_in_queue_order(
        as_role: Any, store: Store) -> None:
    fill(store)
    data = services.dashboard(store)
    waiting = [(w["position"], w["reference"], w["emergency"], w["caller_number"])
               for w in data["waiting"]]
    assert waiting == [(1, "400002", True, "withheld"), (2, "400001", False, "07700900001")]
    assert data["waiting"][1]["wait_seconds"] in (37, 38, 39)
    desk1 = next(d for d in data["desks"] if d["desk"] == "desk1")
    assert desk1["outcome_owed"] and desk1["outcome_owed_reference"] == "400003"
    assert [c["reference"] for c in data["callbacks"]] == ["400004"]
    today = data["today"]
    assert (today["calls"], today["answered"], today["abandoned"], today["callbacks"],
            today["outcomes_owed"]) == (4, 1, 1, 1, 1)
    assert today["by_outcome"] == {"verified": 1, "none": 3}
    client = as_role("auditor")  # everyone sees it; the auditor gets no forms
    page = client.get("/dashboard").get_data(as_text=True)
    assert '<table id="waiting">' in page and 'tr data-reference="400001"' in page
    assert 'data-desk="desk1" data-state="unknown"' in page
    assert 'tr data-callback-id=' in page and 'id="today"' in page
    assert 'class="pause"' not in page and "dashboard.js" in page
    assert client.get("/dashboard.json").get_json()["today"]["calls"] == 4


def test_given_a_supervisor_when_they_pause_and_free_a_desk_then_it_is_written_and_audited(
        as_role: Any, store: Store) -> None:
    fill(store)
    client = as_role("supervisor")
    page = client.get("/dashboard").get_data(as_text=True)
    assert 'class="pause"' in page and 'class="release"' not in page
    token = csrf_token(client, "/dashboard")
    assert client.post("/dashboard/desks/desk2/pause", data={"csrf_token": token}
                       ).status_code == 303
    with store.session() as s:
        sup = s.scalars(select(Supervisor).where(Supervisor.desk == "desk2")).one()
        assert (sup.paused, sup.pause_reason) == (True, "console")
    back = client.post("/dashboard/desks/desk2/available", headers={**JSON, "X-CSRFToken": token})
    assert back.get_json() == {"ok": True, "desk": "desk2", "action": "available"}
    with store.session() as s:
        assert [(a.target, a.detail) for a in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "availability"))] == [
            ("desk2", {"change": "pause"}), ("desk2", {"change": "available"})]
    before = snapshot(store)
    denied = client.post("/dashboard/desks/desk1/release", headers={**JSON, "X-CSRFToken": token})
    assert denied.status_code == 403 and denied.get_json()["error"] == "role_denied"
    unknown = client.post("/dashboard/desks/nodesk/pause", headers={**JSON, "X-CSRFToken": token})
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "desk_unknown"
    no_csrf = client.post("/dashboard/desks/desk1/pause", headers=JSON)
    assert no_csrf.status_code == 400 and no_csrf.get_json()["error"] == "csrf_invalid"
    no_desk = client.post("/dashboard/callbacks/1", headers={**JSON, "X-CSRFToken": token})
    assert no_desk.status_code == 409 and no_desk.get_json()["error"] == "desk_not_taken"
    assert snapshot(store) == before


def test_given_an_admin_then_release_and_a_callback_from_their_desk_are_written(
        as_role: Any, client: FlaskClient, store: Store) -> None:
    callback_id = fill(store)
    assert client.get("/dashboard.json", headers=JSON).status_code == 401
    admin = as_role("admin")
    token = csrf_token(admin, "/dashboard")
    released = admin.post("/dashboard/desks/desk1/release", headers={**JSON, "X-CSRFToken": token})
    assert released.status_code == 200
    with store.session() as s:
        s.execute(update(Supervisor).where(Supervisor.desk == "desk2").values(
            console_user="admin"))
    before = snapshot(store)
    missing = admin.post("/dashboard/callbacks/999", headers={**JSON, "X-CSRFToken": token})
    assert missing.status_code == 404 and missing.get_json()["error"] == "callback_not_found"
    assert snapshot(store) == before
    asked = admin.post(f"/dashboard/callbacks/{callback_id}", data={"csrf_token": token})
    assert asked.status_code == 303
    with store.session() as s:
        command = s.scalars(select(ConsoleCommand)).one()
        assert (command.desk, command.callback_id, command.requested_by) == (
            "desk2", callback_id, "admin")
        assert s.scalar(select(Supervisor.wrapup_channel).where(
            Supervisor.desk == "desk1")) is None
        actions = list(s.scalars(select(AuditEntry.action).where(
            AuditEntry.action.in_(["release_desk", "request_callback"]))))
    assert actions == ["release_desk", "request_callback"]


def test_given_an_auditor_then_every_dashboard_act_is_refused(as_role: Any, store: Store) -> None:
    callback_id = fill(store)
    auditor = as_role("auditor")
    token = csrf_token(auditor, "/dashboard")
    before = snapshot(store)
    for path in ("/dashboard/desks/desk1/pause", "/dashboard/desks/desk1/available",
                 "/dashboard/desks/desk1/release", f"/dashboard/callbacks/{callback_id}"):
        denied = auditor.post(path, headers={**JSON, "X-CSRFToken": token})
        assert denied.status_code == 403 and denied.get_json()["error"] == "role_denied", path
    assert snapshot(store) == before
