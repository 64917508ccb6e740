"""The console's /metrics: the call log's figures, read at each scrape, served without a
sign-in to loopback addresses only."""

from __future__ import annotations

from ivr.models import RosterResult
from tests.unit import console_rows as rows


def test_given_ended_calls_in_the_log_when_the_console_is_scraped_from_loopback_then_counted(
        client, store):
    with store.session() as s:
        d1 = rows.desk(s, "desk1")
        d1.state = "idle"
        rows.call(s, ended=True)
        rows.call(s, ended=True)
        gone = rows.call(s, ended=True, result=RosterResult.UNKNOWN)
        gone.end_reason = "caller_abandoned"
        rows.call(s)  # in progress

    response = client.get("/metrics")  # no sign-in: a scraper has no account

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert ('verifyline_logged_calls_total{end_reason="caller_hangup",path="ari",'
            'roster_result="on_duty"} 2.0') in text
    assert ('verifyline_logged_calls_total{end_reason="caller_abandoned",path="ari",'
            'roster_result="unknown"} 1.0') in text
    assert "verifyline_logged_calls_open 1.0" in text
    assert 'verifyline_logged_desks{state="idle"} 1.0' in text
    assert "verifyline_console_database_up 1.0" in text


def test_given_a_remote_address_when_the_console_is_scraped_then_403(client):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.10"})

    assert response.status_code == 403
    assert "verifyline_" not in response.get_data(as_text=True)
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
