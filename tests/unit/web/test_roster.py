"""Roster admin on the console: search, view (audited), edit with before/after, duty windows
in any UTC offset stored as UTC, photos, the CSV upload through the CLI's importer."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ivr import photos, roster, services
from ivr.config import Settings
from ivr.models import AuditEntry, Officer, OfficerStatus
from ivr.store import Store
from tests.unit.web.conftest import csrf_token, sign_in
from tests.unit.web.snapshot import snapshot

DEMO = (Path(__file__).resolve().parents[3] / "ivr" / "demo_roster.csv").read_text()
JSON = {"Accept": "application/json"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


@pytest.fixture
def jane(store: Store) -> int:
    with store.session() as s:
        roster.replace_roster(s, roster.parse_csv(DEMO))
        return s.scalars(select(Officer.id).where(Officer.warrant_number == "123456")).one()


def _form(**changes: str) -> dict[str, str]:
    base = {"name": "Jane Smith", "rank": "PC", "unit": "", "station": "", "status": "active",
            "on_duty_from": "2000-01-01T00:00", "on_duty_until": "2100-01-01T00:00",
            "offset": "+00:00"}
    return {**base, **changes}


def _officer(store: Store, officer_id: int) -> Officer:
    with store.session() as s:
        found = s.get(Officer, officer_id)
        assert found is not None
        return found


def _audits(store: Store, action: str) -> list[AuditEntry]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)))


def test_given_a_supervisor_when_searching_by_number_or_name_then_the_matches(
        client: FlaskClient, jane: int) -> None:
    sign_in(client, "supervisor")
    by_number = client.get("/roster?q=1234").get_data(as_text=True)
    assert 'data-warrant="123456"' in by_number and 'data-warrant="234567"' not in by_number
    by_name = client.get("/roster?q=pATel").get_data(as_text=True)
    assert 'data-warrant="234567"' in by_name and 'data-warrant="123456"' not in by_name
    everyone = client.get("/roster").get_data(as_text=True)
    assert everyone.count("data-warrant=") == 4


def test_given_an_auditor_when_viewing_an_officer_then_shown_and_audited(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "auditor")
    page = client.get(f"/roster/{jane}").get_data(as_text=True)
    assert "Jane Smith" in page and 'data-field="status">active' in page
    (entry,) = _audits(store, "view_officer")
    assert (entry.actor, entry.target) == ("auditor", "officer:123456")


def test_given_an_unknown_officer_when_viewed_then_404_and_nothing_written(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "admin")
    before = snapshot(store)
    response = client.get("/roster/9999", headers=JSON)
    assert response.status_code == 404 and response.get_json()["error"] == "officer_not_found"
    response = client.post("/roster/9999", data={**_form(), "csrf_token": csrf_token(client, "/")},
                           headers=JSON)
    assert response.status_code == 404 and response.get_json()["error"] == "officer_not_found"
    assert snapshot(store) == before


@pytest.mark.parametrize(("offset", "start", "utc_start"), [
    ("+05:30", "2030-06-01T09:00", datetime(2030, 6, 1, 3, 30, tzinfo=UTC)),
    ("-04:00", "2030-06-01T09:00", datetime(2030, 6, 1, 13, 0, tzinfo=UTC)),
    ("+01:00", "2030-06-01T09:00", datetime(2030, 6, 1, 8, 0, tzinfo=UTC)),
])
def test_given_a_duty_window_in_an_offset_when_saved_then_stored_as_that_instant_in_utc(
        client: FlaskClient, store: Store, jane: int, offset: str, start: str,
        utc_start: datetime) -> None:
    sign_in(client, "admin")
    response = client.post(f"/roster/{jane}", data={
        **_form(on_duty_from=start, on_duty_until="2030-06-01T17:00", offset=offset),
        "csrf_token": csrf_token(client, "/")})
    assert response.status_code == 303
    saved = _officer(store, jane)
    assert saved.on_duty_from == utc_start
    assert saved.on_duty_until is not None
    assert (saved.on_duty_until - saved.on_duty_from).total_seconds() == 8 * 3600
    # the editor shows it back in UTC
    page = client.get(f"/roster/{jane}/edit").get_data(as_text=True)
    assert f'value="{utc_start.strftime("%Y-%m-%dT%H:%M")}"' in page


def test_given_times_with_their_own_offset_when_saved_then_the_offset_field_is_not_used(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "admin")
    client.post(f"/roster/{jane}", data={
        **_form(on_duty_from="2030-06-01T09:00+05:30", on_duty_until="2030-06-01T17:00-04:00",
                offset="+01:00"), "csrf_token": csrf_token(client, "/")})
    saved = _officer(store, jane)
    assert saved.on_duty_from == datetime(2030, 6, 1, 3, 30, tzinfo=UTC)
    assert saved.on_duty_until == datetime(2030, 6, 1, 21, 0, tzinfo=UTC)


def test_given_an_edit_when_saved_then_audited_with_who_before_and_after(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "admin")
    client.post(f"/roster/{jane}", data={
        **_form(status="withdrawn", unit="Traffic", station="Bow Street"),
        "csrf_token": csrf_token(client, "/")})
    (entry,) = _audits(store, "officer_edit")
    assert entry.actor == "admin" and entry.target == "officer:123456"
    assert entry.detail == {"before": {"unit": "", "station": "", "status": "active"},
                            "after": {"unit": "Traffic", "station": "Bow Street",
                                      "status": "withdrawn"}}
    assert _officer(store, jane).status is OfficerStatus.WITHDRAWN


@pytest.mark.parametrize(("changes", "fields"), [
    ({"name": " "}, {"name"}),
    ({"status": "retired"}, {"status"}),
    ({"offset": "+5"}, {"offset"}),
    ({"on_duty_from": "tomorrow"}, {"on_duty_from"}),
    ({"on_duty_until": ""}, {"on_duty_until"}),
    ({"on_duty_until": "1999-01-01T00:00"}, {"on_duty_until"}),
    ({"unit": "u" * 121, "rank": "r" * 101}, {"unit", "rank"}),
])
def test_given_bad_fields_when_saved_then_422_naming_them_and_nothing_written(
        client: FlaskClient, store: Store, jane: int, changes: dict[str, str],
        fields: set[str]) -> None:
    sign_in(client, "admin")
    before = snapshot(store)
    response = client.post(f"/roster/{jane}", data={**_form(**changes),
                                                    "csrf_token": csrf_token(client, "/")},
                           headers=JSON)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "officer_invalid"
    assert all(f in body["message"] for f in fields)
    html = client.post(f"/roster/{jane}", data={**_form(**changes),
                                                "csrf_token": csrf_token(client, "/")})
    assert 'data-error="officer_invalid"' in html.get_data(as_text=True)
    assert snapshot(store) == before


def test_given_a_png_when_uploaded_then_stored_under_photos_and_served_audited(
        client: FlaskClient, store: Store, settings: Settings, jane: int) -> None:
    sign_in(client, "admin")
    response = client.post(f"/roster/{jane}/photo", data={
        "photo": (io.BytesIO(PNG), "me.jpg"), "csrf_token": csrf_token(client, "/")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    name = _officer(store, jane).photo
    assert name is not None and name.endswith(".png")  # the content says png, not the name
    assert (settings.home / "photos" / name).read_bytes() == PNG
    served = client.get(f"/roster/{jane}/photo")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == PNG
    assert [e.target for e in _audits(store, "view_officer_photo")] == ["officer:123456"]
    edit = _audits(store, "officer_edit")[-1]
    assert edit.detail == {"before": {"photo": None}, "after": {"photo": name}}
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get(f"/roster/{jane}/photo").status_code == 302  # signed-in users only


@pytest.mark.parametrize(("data", "status", "error"), [
    (b"GIF89a" + b"\x00" * 20, 422, "photo_invalid"),
    (JPEG + b"\x00" * 2048, 413, "photo_too_large"),  # over the limit set below
    (None, 422, "photo_missing"),
])
def test_given_a_bad_photo_when_uploaded_then_4xx_and_nothing_written(
        client: FlaskClient, store: Store, settings: Settings, jane: int,
        data: bytes | None, status: int, error: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # a small limit, so the test uploads kilobytes, not megabytes
    monkeypatch.setattr(photos, "MAX_BYTES", 1024)
    sign_in(client, "admin")
    before = snapshot(store)
    form: dict[str, object] = {"csrf_token": csrf_token(client, "/")}
    if data is not None:
        form["photo"] = (io.BytesIO(data), "x.jpg")
    response = client.post(f"/roster/{jane}/photo", data=form,
                           content_type="multipart/form-data", headers=JSON)
    assert response.status_code == status and response.get_json()["error"] == error
    assert snapshot(store) == before
    assert not (settings.home / "photos").exists() or not any(
        (settings.home / "photos").iterdir())


def test_given_no_photo_when_asked_then_404(client: FlaskClient, jane: int) -> None:
    sign_in(client, "supervisor")
    response = client.get(f"/roster/{jane}/photo", headers=JSON)
    assert response.status_code == 404 and response.get_json()["error"] == "photo_not_found"


def _upload(client: FlaskClient, text: str, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/roster/import", data={
        "roster": (io.BytesIO(text.encode()), "roster.csv"),
        "csrf_token": csrf_token(client, "/")}, content_type="multipart/form-data",
        headers=headers)


def test_given_a_good_csv_when_uploaded_then_the_roster_is_replaced_and_audited_with_counts(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "admin")
    text = ("warrant_number,name,rank,status,on_duty_from,on_duty_until,unit,station\n"
            "123456,Jane Smith,PS,active,,,Traffic,Bow Street\n"
            "777777,New Person,PC,active,,,,\n")
    response = _upload(client, text)
    assert response.status_code == 200 and "Roster imported" in response.get_data(as_text=True)
    assert [o["warrant_number"] for o in services.officers(store)] == ["123456", "777777"]
    assert _officer(store, jane).unit == "Traffic"
    (entry,) = _audits(store, "roster_import")
    assert entry.actor == "admin"
    assert entry.detail == {"rows": 2, "added": 1, "updated": 1, "removed": 3,
                            "marked_left": 0}


def test_given_a_csv_with_bad_lines_when_uploaded_then_each_line_named_and_nothing_imported(
        client: FlaskClient, store: Store, jane: int) -> None:
    sign_in(client, "admin")
    before = snapshot(store)
    text = ("warrant_number,name,rank,status,on_duty_from,on_duty_until\n"
            "111111,Good Row,PC,active,,\n"
            "12x,Bad Number,PC,active,,\n"
            "222222,Bad Status,PC,sleeping,,\n")
    response = _upload(client, text)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'data-error="roster_invalid"' in page
    assert 'data-line="3"' in page and 'data-line="4"' in page and 'data-line="2"' not in page
    as_json = _upload(client, text, Accept="application/json").get_json()
    assert as_json["error"] == "roster_invalid"
    assert [p["line"] for p in as_json["problems"]] == [3, 4]
    assert snapshot(store) == before


@pytest.mark.parametrize(("raw", "error"), [(None, "roster_file_missing"),
                                           (b"\xff\xfe\x00bad", "roster_encoding")])
def test_given_no_file_or_not_utf8_when_uploaded_then_422_and_nothing_written(
        client: FlaskClient, store: Store, jane: int, raw: bytes | None, error: str) -> None:
    sign_in(client, "admin")
    before = snapshot(store)
    form: dict[str, object] = {"csrf_token": csrf_token(client, "/")}
    if raw is not None:
        form["roster"] = (io.BytesIO(raw), "r.csv")
    response = client.post("/roster/import", data=form, content_type="multipart/form-data",
                           headers=JSON)
    assert response.status_code == 422 and response.get_json()["error"] == error
    assert snapshot(store) == before
