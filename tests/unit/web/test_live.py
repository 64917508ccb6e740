"""Live screen-pop: the hub follows the line's call events (written by another process's
store) and the desk's SSE stream delivers them; a database outage is told and survived."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from ivr import services
from ivr.models import Call, Officer, Supervisor
from ivr.store import Store
from ivr.web import live
from tests.pgcluster import PgCluster
from tests.unit import console_rows as rows


def take(store: Store, desk: str, user: str) -> None:
    with store.session() as s:
        s.execute(update(Supervisor).where(Supervisor.desk == desk).values(console_user=user))


@pytest.fixture
def line(db_url: str) -> Iterator[Store]:
    """The line's own store: another engine, as the ARI app in its own process has."""
    other = Store(db_url)
    yield other
    other.dispose()


def next_message(sub: live.Subscriber, within: float = 3.0) -> live.Message:
    return sub.queue.get(timeout=within)


def ringing_call(line: Store, desk: str = "desk1") -> tuple[int, int]:
    with line.session() as s:
        if s.scalars(select(Officer).where(Officer.warrant_number == "4521")).first() is None:
            rows.officer(s)
        c = rows.call(s)
        e = rows.event(s, c, "desk_ringing", desk=desk, channel=f"chan-{desk}")
        notify(s)
        return c.id, e.id


def notify(s: Session) -> None:
    """What the line does on PostgreSQL in the transaction that writes an event."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_notify('verifyline_events', '')"))


def test_given_a_subscribed_desk_when_the_line_writes_ringing_then_the_pop_arrives(
        store: Store, line: Store) -> None:
    with store.session() as s:
        rows.desk(s, "desk1")
    hub = live.Hub(store, poll=0.01)
    try:
        sub = hub.subscribe("desk1")
        other = hub.subscribe("desk2")
        deadline = time.monotonic() + 3
        while hub.last_id is None and time.monotonic() < deadline:
            time.sleep(0.01)
        call_id, event_id = ringing_call(line)
        message = next_message(sub)  # within 3 s (a 10 ms poll: the benchmark has the figure)
        assert (message.event, message.id) == ("screen_pop", event_id)
        assert message.data["phase"] == "ringing" and message.data["call_id"] == call_id
        assert message.data["officer"]["name"] == "Jane Smith"
        with line.session() as s:
            c = s.get(Call, call_id)
            assert c is not None
            rows.event(s, c, "whisper", desk="desk1")
            notify(s)
        assert next_message(sub).data["phase"] == "answered"
        with pytest.raises(queue.Empty):
            other.queue.get(timeout=0.2)  # desk2 was not rung
        hub.unsubscribe(sub)
        assert hub.subscribers("desk1") == 0 and hub.subscribers() == 1
    finally:
        hub.stop()


def test_given_the_database_fails_when_it_comes_back_then_down_then_up_and_events_resume(
        store: Store, line: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = services.desk_events_since
    failures = {"left": 3}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return real(*args, **kwargs)

    hub = live.Hub(store, poll=0.01)
    try:
        hub.last_id = services.last_event_id(store)
        monkeypatch.setattr(services, "desk_events_since", flaky)
        sub = hub.subscribe("desk1")
        assert next_message(sub).data == {"database": "down"}
        assert next_message(sub).data == {"database": "up"}
        _, event_id = ringing_call(line)
        assert next_message(sub).id == event_id
        late = hub.subscribe("desk1")  # a stream opened while it is up hears nothing yet
        with pytest.raises(queue.Empty):
            late.queue.get(timeout=0.1)
    finally:
        hub.stop()


@pytest.fixture
def own_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL server this test may stop (not the suite's shared one)."""
    cluster = PgCluster.create()
    yield cluster
    cluster.destroy()


def test_given_postgresql_when_the_line_notifies_then_woken_at_once_and_an_outage_survived(
        own_cluster: PgCluster) -> None:
    url = own_cluster.create_database("live")
    store, line = Store(url), Store(url)
    store.migrate()
    # the fallback poll is long (30 s): only the NOTIFY can bring the event within a few
    # seconds; how fast it is, is the screen-pop benchmark's to say (benchmarks/screenpop.py),
    # not a timed test's (CI failed here once, 1.3 s on a saturated machine, against 1.0)
    hub = live.Hub(store, fallback=30.0)
    try:
        sub = hub.subscribe("desk1")
        deadline = time.monotonic() + 5
        while hub._listener is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hub._listener is not None
        _, event_id = ringing_call(line)
        written = time.monotonic()  # committed: the NOTIFY is on its way
        assert next_message(sub, within=10).id == event_id
        assert time.monotonic() - written < 10.0  # a third of the fallback poll
        with own_cluster.outage("fast"):
            assert next_message(sub, within=10).data == {"database": "down"}
        assert next_message(sub, within=10).data == {"database": "up"}
        _, after = ringing_call(line)
        assert next_message(sub, within=5).id == after
    finally:
        hub.stop()
        store.dispose()
        line.dispose()


# --- the SSE endpoint ----------------------------------------------------------------------


@pytest.fixture
def fast_app(app: Flask) -> Iterator[Flask]:
    app.config.update(LIVE_POLL_SECONDS=0.01, LIVE_KEEPALIVE_SECONDS=0.2)
    yield app
    hub = app.extensions.get("verifyline.hub")
    if hub is not None:
        hub.stop()


def chunks_of(response: TestResponse) -> Iterator[bytes]:
    """The streamed body as it comes (the generator runs as it is read)."""
    for chunk in response.response:
        yield chunk if isinstance(chunk, bytes) else str(chunk).encode()


def read_until(chunks: Iterator[bytes], needle: str, within: float = 3.0) -> str:
    seen, deadline = "", time.monotonic() + within
    while needle not in seen:
        assert time.monotonic() < deadline, f"no {needle!r} in {seen!r}"
        seen += next(chunks).decode()
    return seen


def test_given_a_desk_taken_when_the_stream_is_open_then_hello_pops_and_keep_alives(
        fast_app: Flask, as_role: Any, store: Store, line: Store) -> None:
    with store.session() as s:
        rows.desk(s, "desk1")
    take(store, "desk1", "supervisor")
    client: FlaskClient = as_role("supervisor")
    response = client.get("/desk/stream", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    chunks = chunks_of(response)
    first = read_until(chunks, "event: hello")
    assert first.startswith("retry: 1000\n")
    assert '"desk": "desk1"' in first and '"user": "supervisor"' in first
    hub = fast_app.extensions["verifyline.hub"]
    deadline = time.monotonic() + 3
    while hub.last_id is None and time.monotonic() < deadline:
        time.sleep(0.01)
    _, event_id = ringing_call(line)
    seen = read_until(chunks, "event: screen_pop")
    assert f"id: {event_id}\n" in seen and '"phase": "ringing"' in seen
    assert ": keep-alive" in read_until(chunks, ": keep-alive")
    response.close()
    assert hub.subscribers("desk1") == 0


def test_given_a_last_event_id_when_reconnecting_then_the_newest_since_is_sent_first(
        fast_app: Flask, as_role: Any, store: Store, line: Store) -> None:
    with store.session() as s:
        rows.desk(s, "desk1")
    take(store, "desk1", "supervisor")
    _, missed_from = ringing_call(line)
    with line.session() as s:
        c = rows.call(s, caller="07700900777")
        newest = rows.event(s, c, "desk_ringing", desk="desk1", channel="c2").id
    client: FlaskClient = as_role("supervisor")
    response = client.get("/desk/stream", headers={"Last-Event-ID": str(missed_from)},
                          buffered=False)
    seen = read_until(chunks_of(response), "event: screen_pop")
    assert f"id: {newest}\n" in seen and "07700900777" in seen
    response.close()
    fresh = client.get("/desk/stream", buffered=False)  # a fresh page: the desk's newest
    assert f"id: {newest}\n" in read_until(chunks_of(fresh), "event: screen_pop")
    fresh.close()


def test_given_no_desk_taken_then_409_and_other_roles_refused(client: FlaskClient,
                                                              as_role: Any) -> None:
    anonymous = client.get("/desk/stream", headers={"Accept": "application/json"})
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"] == "sign_in_required"
    as_role("auditor")
    denied = client.get("/desk/stream", headers={"Accept": "application/json"})
    assert denied.status_code == 403 and denied.get_json()["error"] == "role_denied"
    client.post("/logout", data={"csrf_token": ""})
    client.get("/login")
    as_role("supervisor")
    refused = client.get("/desk/stream", headers={"Accept": "application/json"})
    assert refused.status_code == 409 and refused.get_json()["error"] == "desk_not_taken"
