"""The desk page (take, leave, the screen-pop on load, the desk's state) and the outcome
route: sign-in required, roles, CSRF, bad input refused with its id and nothing written."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from ivr import services
from ivr.models import AuditEntry, Call, CallOutcome, Supervisor
from ivr.store import Store
from tests.unit import console_rows as rows
from tests.unit.web.conftest import csrf_token, sign_in
from tests.unit.web.snapshot import snapshot

JSON = {"Accept": "application/json"}


def desks(store: Store, *names: str) -> None:
    with store.session() as s:
        for name in names:
            rows.desk(s, name)


def holder(store: Store, desk: str) -> str | None:
    with store.session() as s:
        return s.scalar(select(Supervisor.console_user).where(Supervisor.desk == desk))


def audited(store: Store, action: str) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry.target).where(AuditEntry.action == action)))


def ringing(store: Store, desk: str = "desk1", owed: bool = False) -> int:
    with store.session() as s:
        o = rows.officer(s)
        sup = s.scalars(select(Supervisor).where(Supervisor.desk == desk)).one()
        c = rows.call(s, supervisor=sup, officer_id=o.id, flags="emergency", reference="222333")
        rows.event(s, c, "desk_ringing", desk=desk, channel=f"chan-{desk}")
        if owed:
            sup.wrapup_channel = c.channel_id
        return c.id


def test_given_a_supervisor_when_they_take_a_desk_then_the_page_shows_it_and_it_is_audited(
        as_role: Any, store: Store) -> None:
    desks(store, "desk1", "desk2")
    client = as_role("supervisor")
    page = client.get("/desk").get_data(as_text=True)
    assert 'id="take-desk"' in page and 'id="take-desk-button"' in page
    assert '<select id="desk" name="desk"' in page
    taken = client.post("/desk/take", data={"desk": "desk1", "csrf_token": csrf_token(client,
                                                                                     "/desk")})
    assert taken.status_code == 303
    assert holder(store, "desk1") == "supervisor"
    assert audited(store, "take_desk") == ["desk1"]
    page = client.get("/desk").get_data(as_text=True)
    assert '<strong id="desk-name">desk1</strong>' in page
    assert 'id="leave-desk"' in page and 'data-phase="empty"' in page
    assert "desk.js" in page
    left = client.post("/desk/leave", data={"csrf_token": csrf_token(client, "/desk")})
    assert left.status_code == 303 and holder(store, "desk1") is None
    assert audited(store, "leave_desk") == ["desk1"]


def test_given_a_desk_held_by_another_when_taken_then_409_desk_taken_and_nothing_written(
        as_role: Any, store: Store) -> None:
    desks(store, "desk1")
    with store.session() as s:
        s.execute(update(Supervisor).values(console_user="admin"))
    client = as_role("supervisor")
    token = csrf_token(client, "/desk")
    before = snapshot(store)
    page = client.post("/desk/take", data={"desk": "desk1", "csrf_token": token})
    assert page.status_code == 409 and 'data-error="desk_taken"' in page.get_data(as_text=True)
    unknown = client.post("/desk/take", data={"desk": "nodesk", "csrf_token": token},
                          headers=JSON)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "desk_unknown"
    no_csrf = client.post("/desk/take", data={"desk": "desk1"})
    assert no_csrf.status_code == 400 and 'data-error="csrf_invalid"' in no_csrf.get_data(
        as_text=True)
    assert snapshot(store) == before


def test_given_no_session_or_an_auditor_then_the_desk_is_refused(
        client: FlaskClient, as_role: Any, store: Store) -> None:
    desks(store, "desk1")
    assert client.get("/desk").status_code == 302
    assert client.post("/desk/take", data={"desk": "desk1"}).status_code in (400, 401)
    assert client.get("/desk/state.json", headers=JSON).status_code == 401
    auditor = as_role("auditor")
    token = csrf_token(auditor, "/")
    before = snapshot(store)
    assert auditor.get("/desk", headers=JSON).get_json()["error"] == "role_denied"
    denied = auditor.post("/desk/take", data={"desk": "desk1", "csrf_token": token},
                          headers=JSON)
    assert denied.status_code == 403 and denied.get_json()["error"] == "role_denied"
    assert auditor.get("/desk/state.json", headers=JSON).status_code == 403
    assert snapshot(store) == before


def test_given_a_ringing_desk_when_the_page_loads_then_the_screen_pop_is_rendered(
        as_role: Any, store: Store) -> None:
    desks(store, "desk1")
    call_id = ringing(store, owed=True)
    with store.session() as s:
        s.execute(update(Supervisor).values(console_user="supervisor", state="ringing"))
    client = as_role("supervisor")
    page = client.get("/desk").get_data(as_text=True)
    assert 'data-phase="ringing"' in page and f'data-call-id="{call_id}"' in page
    assert re.search(r'id="pop-result" class="result result-on_duty">On duty now<', page)
    assert '<dd id="pop-officer-name">Jane Smith</dd>' in page
    assert '<dd id="pop-officer-unit">Response team 3</dd>' in page
    assert '<li data-flag="emergency">' in page
    assert f'action="/calls/{call_id}/outcome"' in page
    assert 'data-state="ringing">ringing<' in page
    assert re.search(r'<span id="wrapup-owed" class="owed" >', page)  # shown: not hidden
    state = client.get("/desk/state.json").get_json()
    assert state == {"desk": "desk1", "state": "ringing", "state_since": None,
                     "outcome_owed": True, "outcome_owed_reference": "222333"}


def test_given_the_call_on_screen_when_the_outcome_is_posted_then_it_is_appended_and_audited(
        as_role: Any, store: Store) -> None:
    desks(store, "desk1")
    call_id = ringing(store, owed=True)
    with store.session() as s:
        s.execute(update(Supervisor).values(console_user="supervisor"))
    client = as_role("supervisor")
    token = csrf_token(client, "/desk")
    first = client.post(f"/calls/{call_id}/outcome", headers={**JSON, "X-CSRFToken": token},
                        data={"outcome": "verified", "note": "card seen"})
    assert first.status_code == 200
    assert first.get_json() == {"ok": True, "call_id": call_id, "outcome": "verified",
                                "words": "Verified", "reference": "222333"}
    assert client.get("/desk/state.json").get_json()["outcome_owed"] is False
    corrected = client.post(f"/calls/{call_id}/outcome", data={
        "outcome": "escalated", "note": "", "csrf_token": token, "next": "/desk"})
    assert corrected.status_code == 303 and corrected.headers["Location"] == "/desk"
    elsewhere = client.post(f"/calls/{call_id}/outcome", data={
        "outcome": "escalated", "csrf_token": token, "next": "//evil.example/"})
    assert elsewhere.headers["Location"].startswith("/encounters/")
    with store.session() as s:
        entries = [(o.outcome, o.by_user, o.desk) for o in s.scalars(
            select(CallOutcome).order_by(CallOutcome.id))]
        call = s.get(Call, call_id)
        assert call is not None and call.outcome == "escalated"
    assert entries == [("verified", "supervisor", "desk1"), ("escalated", "supervisor", "desk1"),
                       ("escalated", "supervisor", "desk1")]
    assert audited(store, "record_outcome") == ["222333"] * 3
    detail = client.get(elsewhere.headers["Location"]).get_data(as_text=True)
    assert detail.count('class="outcome-entry" data-outcome="escalated"') == 2
    assert 'class="outcome-entry" data-outcome="verified"' in detail
    assert 'id="outcome-form"' in detail  # the encounter page records one too


@pytest.mark.parametrize(("data", "status", "error"), [
    ({"outcome": "great"}, 422, "outcome_invalid"),
    ({"outcome": ""}, 422, "outcome_invalid"),
    ({"outcome": "verified", "note": "x" * 2001}, 422, "note_too_long"),
])
def test_given_bad_outcome_input_then_refused_with_its_id_and_nothing_written(
        as_role: Any, store: Store, data: dict[str, str], status: int, error: str) -> None:
    desks(store, "desk1")
    call_id = ringing(store)
    client = as_role("admin")
    token = csrf_token(client, "/desk")
    before = snapshot(store)
    refused = client.post(f"/calls/{call_id}/outcome", data=data,
                          headers={**JSON, "X-CSRFToken": token})
    assert refused.status_code == status and refused.get_json()["error"] == error
    assert snapshot(store) == before


def test_given_no_such_call_or_no_csrf_or_an_auditor_then_the_outcome_is_refused(
        as_role: Any, client: FlaskClient, store: Store) -> None:
    desks(store, "desk1")
    call_id = ringing(store)
    before = snapshot(store)
    anonymous = client.post(f"/calls/{call_id}/outcome", data={"outcome": "verified"},
                            headers=JSON)
    assert anonymous.status_code in (400, 401)
    sup = as_role("supervisor")
    token = csrf_token(sup, "/desk")
    missing = sup.post("/calls/999999/outcome", data={"outcome": "verified"},
                       headers={**JSON, "X-CSRFToken": token})
    assert missing.status_code == 404 and missing.get_json()["error"] == "call_not_found"
    no_csrf = sup.post(f"/calls/{call_id}/outcome", data={"outcome": "verified"}, headers=JSON)
    assert no_csrf.status_code == 400 and no_csrf.get_json()["error"] == "csrf_invalid"
    sup.post("/logout", data={"csrf_token": token})
    auditor = as_role("auditor")
    denied = auditor.post(f"/calls/{call_id}/outcome", data={"outcome": "verified"},
                          headers={**JSON, "X-CSRFToken": csrf_token(auditor, "/")})
    assert denied.status_code == 403 and denied.get_json()["error"] == "role_denied"
    with store.session() as s:
        assert s.scalars(select(CallOutcome)).first() is None
    # the sign-ins between (their audit entries, last_login_at) aside, nothing was written
    after = snapshot(store)
    signing = ("audit", "console_user")
    assert {k: v for k, v in after.items() if k not in signing} == {
        k: v for k, v in before.items() if k not in signing}
    assert audited(store, "record_outcome") == []


def test_given_a_supervisor_holding_a_desk_when_signing_out_then_the_desk_is_given_back(
        client: FlaskClient, store: Store) -> None:
    with store.session() as s:
        rows.desk(s, "desk1")
    sign_in(client, "supervisor")
    services.take_desk(store, "desk1", "supervisor")
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert services.console_desk(store, "supervisor") is None
    with store.session() as s:
        actions = list(s.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == "supervisor").order_by(AuditEntry.id)))
    assert actions[-2:] == ["leave_desk", "sign_out"]
