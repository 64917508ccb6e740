"""Encounters: the search and its filters, the detail page with timeline and recording, the
CSV export; every view audited; bad filters refused with filter_invalid."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from ivr.config import Settings
from ivr.models import AuditEntry, Call, RosterResult
from ivr.search import CSV_COLUMNS
from ivr.store import Store
from tests.unit import console_rows as rows

JSON = {"Accept": "application/json"}
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def audited(store: Store, action: str) -> list[str]:
    with store.session() as s:
        return list(s.scalars(select(AuditEntry.target).where(AuditEntry.action == action)))


def fill(store: Store) -> dict[str, int]:
    with store.session() as s:
        o = rows.officer(s)
        d1, d2 = rows.desk(s, "desk1"), rows.desk(s, "desk2")
        a = rows.call(s, started=T0, supervisor=d1, outcome="verified", ended=True,
                      reference="111111", officer_id=o.id, recording="rec-a")
        b = rows.call(s, started=T0 + timedelta(days=1), caller="07700900555", digits="9999",
                      result=RosterResult.UNKNOWN, supervisor=d2, ended=True)
        c = rows.call(s, started=T0 + timedelta(days=2), caller=None, digits="4521",
                      supervisor=d1, outcome="escalated", ended=True)
        rows.event(s, a, "desk_ringing", desk="desk1", channel="a-desk1")
        rows.outcome(s, a, "verified", note="all good")
        return {"a": a.id, "b": b.id, "c": c.id}


def ids(client: FlaskClient, query: str) -> list[int]:
    response = client.get(f"/encounters?{query}", headers=JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [r["call_id"] for r in response.get_json()["rows"]]


def test_given_calls_when_searched_by_each_filter_then_the_matching_newest_first(
        as_role: Any, store: Store) -> None:
    got = fill(store)
    client = as_role("auditor")
    assert ids(client, "") == [got["c"], got["b"], got["a"]]
    assert ids(client, "reference=111111") == [got["a"]]
    assert ids(client, "warrant=4521") == [got["c"], got["a"]]
    assert ids(client, "caller=07700900555") == [got["b"]]
    assert ids(client, "outcome=escalated") == [got["c"]]
    assert ids(client, "outcome=none") == [got["b"]]
    assert ids(client, "desk=desk2") == [got["b"]]
    assert ids(client, "from=2025-03-11&to=2025-03-11") == [got["b"]]
    assert ids(client, "warrant=4521&desk=desk1&outcome=verified") == [got["a"]]
    # 12:00 UTC on the 10th is 08:00 in New York (EDT): from 08:30 there leaves it out
    assert got["a"] not in ids(client, "from=2025-03-10T08:30&tz=America/New_York")
    assert got["a"] in ids(client, "from=2025-03-10T07:30&tz=America/New_York")
    assert got["a"] in ids(client, "from=2025-03-10T11:59Z")
    page = client.get("/encounters?warrant=4521", headers=JSON).get_json()
    assert (page["total"], page["page"], page["pages"]) == (2, 1, 1)


def test_given_the_search_page_then_labelled_fields_results_and_a_csv_link(
        as_role: Any, store: Store) -> None:
    fill(store)
    html = as_role("supervisor").get("/encounters?warrant=4521").get_data(as_text=True)
    for field in ("f-from", "f-to", "f-tz", "f-reference", "f-warrant", "f-caller",
                  "f-outcome", "f-desk"):
        assert f'<label for="{field}"' in html and f'id="{field}"' in html
    assert "2 calls found" in html and "/encounters.csv?warrant=4521" in html
    assert "On duty now" in html and "Escalated (officer&#39;s conduct)" in html


def test_given_bad_filters_then_422_filter_invalid_and_nothing_audited(
        as_role: Any, store: Store) -> None:
    client = as_role("admin")
    for query in ("from=yesterday", "tz=Mars/Olympus", "outcome=great", "page=0",
                  "from=2025-03-02&to=2025-03-01", "reference=" + "1" * 15):
        response = client.get(f"/encounters?{query}", headers=JSON)
        assert response.status_code == 422, query
        assert response.get_json()["error"] == "filter_invalid"
    assert client.get("/encounters.csv?from=nope").status_code == 422
    assert audited(store, "export_encounters") == []


def test_given_an_encounter_when_its_page_is_viewed_then_timeline_outcomes_and_audited(
        as_role: Any, store: Store) -> None:
    got = fill(store)
    client = as_role("auditor")
    with store.session() as s:
        enc_ref = s.get_one(Call, got["a"]).encounter.reference
    page = client.get("/encounters/111111")  # the call's reference finds its encounter
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"Encounter {enc_ref}" in html and "desk_ringing" in html
    assert "all good" in html and "by supervisor" in html
    assert f'src="/calls/{got["a"]}/recording"' in html
    assert "<audio controls" in html
    assert f'action="/calls/{got["a"]}/outcome"' not in html  # an auditor changes nothing
    as_json = client.get(f"/encounters/{enc_ref}", headers=JSON).get_json()
    assert [c["call_id"] for c in as_json["calls"]] == [got["a"]]
    assert as_json["calls"][0]["outcomes"][0]["note"] == "all good"
    assert audited(store, "view_encounter") == [enc_ref, enc_ref]
    missing = client.get("/encounters/999999", headers=JSON)
    assert missing.status_code == 404 and missing.get_json()["error"] == "encounter_not_found"


def test_given_a_recording_when_played_then_ranges_served_and_the_view_audited(
        as_role: Any, store: Store, settings: Settings, client: FlaskClient) -> None:
    got = fill(store)
    folder = settings.recordings_dir
    folder.mkdir(parents=True)
    (folder / "rec-a.wav").write_bytes(b"RIFF" + bytes(range(256)) * 4)
    assert client.get(f"/calls/{got['a']}/recording").status_code == 302  # not signed in
    as_role("supervisor")
    with client.get(f"/calls/{got['a']}/recording") as whole:
        assert whole.status_code == 200 and whole.mimetype == "audio/wav"
    with client.get(f"/calls/{got['a']}/recording", headers={"Range": "bytes=4-11"}) as part:
        assert part.status_code == 206 and part.data == bytes(range(8))
        assert part.headers["Content-Range"] == f"bytes 4-11/{4 + 1024}"
    assert audited(store, "view_recording") == ["111111"]  # the later range is the same view
    none = client.get(f"/calls/{got['b']}/recording", headers=JSON)
    assert none.status_code == 404 and none.get_json()["error"] == "recording_not_found"


def test_given_a_recording_name_with_a_path_then_refused(as_role: Any, store: Store,
                                                        settings: Settings) -> None:
    with store.session() as s:
        call_id = rows.call(s, recording="../../etc/passwd").id
    response = as_role("admin").get(f"/calls/{call_id}/recording", headers=JSON)
    assert response.status_code == 404 and response.get_json()["error"] == "recording_not_found"


def test_given_a_search_when_exported_then_csv_with_the_documented_columns_and_audited(
        as_role: Any, store: Store) -> None:
    got = fill(store)
    response = as_role("auditor").get("/encounters.csv?warrant=4521")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [int(r["call_id"]) for r in table] == [got["c"], got["a"]]
    assert table[0]["caller_number"] == "withheld" and table[0]["outcome"] == "escalated"
    assert table[1]["reference"] == "111111" and table[1]["recording"] == "yes"
    assert table[1]["desk"] == "desk1" and table[1]["roster_result"] == "on_duty"
    with store.session() as s:
        detail = s.scalars(select(AuditEntry.detail).where(
            AuditEntry.action == "export_encounters")).one()
    assert detail == {"warrant": "4521"}
    one_page = as_role("auditor").get("/encounters.csv?page=1")
    assert len(one_page.get_data(as_text=True).strip().splitlines()) == 4


def test_given_no_session_then_every_encounter_route_asks_to_sign_in(client: FlaskClient,
                                                                     store: Store) -> None:
    for path in ("/encounters", "/encounters.csv", "/encounters/111111", "/calls/1/recording"):
        response = client.get(path, headers=JSON)
        assert response.status_code == 401, path
    with store.session() as s:
        assert s.scalar(select(func.count(AuditEntry.id))) == 0


def test_given_the_recordings_setting_then_it_is_the_lab_place_or_the_variable(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    default = Settings.from_env({"VERIFYLINE_HOME": str(home)})
    assert default.recordings_dir == home.resolve() / "asterisk" / "astspool" / "recording"
    moved = Settings.from_env({"VERIFYLINE_HOME": str(home),
                               "VERIFYLINE_RECORDINGS_DIR": str(tmp_path / "rec")})
    assert moved.recordings_dir == tmp_path / "rec"
