"""The ARI app's Prometheus metrics: the hooks move the right series, the app's call-log
writes and database reads call the hooks, and the app serves them on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.request
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError
from websockets.asyncio.server import ServerConnection, serve

from ari_app import service
from ari_app.client import EventStream
from ivr import calllog, logops, services
from ivr.clock import now
from ivr.config import Settings
from ivr.entities import CallData
from ivr.metrics import METRICS, LineMetrics
from ivr.models import EndReason, RosterResult
from ivr.store import Store
from ivr.web.metrics import CallLogCollector
from ops.metrics import serve_metrics


@pytest.fixture
def metrics() -> LineMetrics:
    return LineMetrics(CollectorRegistry())


def value(m: LineMetrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def calls(m: LineMetrics, roster: str, path: str, reason: str) -> float:
    return value(m, "verifyline_calls_total", roster_result=roster, path=path, end_reason=reason)


def test_given_calls_ending_when_hooks_called_then_counted_by_roster_path_and_reason(metrics):
    metrics.call_ended("on_duty", "ari", "caller_hangup")
    metrics.call_ended("on_duty", "ari", "caller_hangup")
    metrics.call_ended(None, "ari", "lost")

    assert calls(metrics, "on_duty", "ari", "caller_hangup") == 2
    assert calls(metrics, "not_known", "ari", "lost") == 1
    assert calls(metrics, "unknown", "ari", "caller_hangup") == 0


def test_given_callers_queued_when_time_passes_then_length_and_longest_wait(metrics):
    clock = [100.0]
    metrics._clock = lambda: clock[0]
    metrics.queue_joined("a")
    clock[0] = 103.0
    metrics.queue_joined("b")
    metrics.queue_joined("a")  # again (an emergency moving up): keeps its place and time
    clock[0] = 110.0

    assert value(metrics, "verifyline_queue_length") == 2
    assert value(metrics, "verifyline_queue_longest_wait_seconds") == 10.0
    metrics.queue_left("a")
    assert value(metrics, "verifyline_queue_longest_wait_seconds") == 7.0
    metrics.queue_left("b")
    metrics.queue_left("b")
    assert value(metrics, "verifyline_queue_length") == 0
    assert value(metrics, "verifyline_queue_longest_wait_seconds") == 0


def test_given_bridges_desks_reconnects_and_db_errors_when_hooked_then_each_series_moves(
        metrics):
    metrics.bridged(4.0, 25.0)
    metrics.bridged(None, 12.0)  # not queued: a setup, no wait
    metrics.desk_state("desk1", "ringing")
    metrics.desk_state("desk2", "ringing")
    metrics.desk_state("desk1", "talking")
    metrics.ari_reconnected()
    metrics.db_error("journal")
    metrics.watch_journal(lambda: 7)

    assert value(metrics, "verifyline_wait_seconds_count") == 1
    assert value(metrics, "verifyline_wait_seconds_bucket", le="5.0") == 1
    assert value(metrics, "verifyline_setup_seconds_count") == 2
    assert value(metrics, "verifyline_setup_seconds_sum") == 37.0
    assert value(metrics, "verifyline_desks", state="ringing") == 1
    assert value(metrics, "verifyline_desks", state="talking") == 1
    metrics.desk_state("desk2", "idle")
    assert value(metrics, "verifyline_desks", state="ringing") == 0  # kept, at 0
    assert value(metrics, "verifyline_ari_reconnects_total") == 1
    assert value(metrics, "verifyline_db_errors_total", where="journal") == 1
    assert value(metrics, "verifyline_journal_backlog") == 7


def test_given_the_apps_call_log_writes_when_observed_then_ends_and_bridges_are_counted():
    started = now() - timedelta(seconds=30)
    data = CallData("m.1", "07700900001", "123456", started_at=started,
                    roster_result=RosterResult.ON_DUTY, end_reason=EndReason.CALLER_HANGUP)
    before = (calls(METRICS, "on_duty", "ari", "caller_hangup"),
              calls(METRICS, "not_known", "ari", "asterisk_restart"),
              calls(METRICS, "none_entered", "fallback", "no_supervisor"),
              value(METRICS, "verifyline_setup_seconds_count"),
              value(METRICS, "verifyline_wait_seconds_sum"))

    service._observe(logops.save_entry(data, "bridged", {"waited_s": 2.5}, started
                                       + timedelta(seconds=20)))
    service._observe(logops.save_entry(data, "ended", {"reason": "caller_hangup"}, now()))
    service._observe(logops.save_entry(data, "dtmf", {"digit": "1"}, now()))  # not an end
    service._observe(logops.close_entry("m.2", EndReason.ASTERISK_RESTART))
    service._observe(logops.fallback_entry(calllog.FallbackRecord(
        "m.3", None, started, None, now(), None, EndReason.NO_SUPERVISOR, "NOANSWER")))

    after = (calls(METRICS, "on_duty", "ari", "caller_hangup"),
             calls(METRICS, "not_known", "ari", "asterisk_restart"),
             calls(METRICS, "none_entered", "fallback", "no_supervisor"),
             value(METRICS, "verifyline_setup_seconds_count"),
             value(METRICS, "verifyline_wait_seconds_sum"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 1, 2.5]


def test_given_a_database_read_failing_when_run_then_counted_and_raised():
    before = value(METRICS, "verifyline_db_errors_total", where="read")

    def read() -> int:
        raise OperationalError("select 1", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):
        service._counted(read)()
    assert value(METRICS, "verifyline_db_errors_total", where="read") == before + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_given_a_metrics_port_when_served_then_text_on_loopback_and_a_taken_port_no_crash(
        tmp_path):
    settings = replace(Settings.from_env({"VERIFYLINE_HOME": str(tmp_path)}),
                       metrics_port=free_port())
    server = serve_metrics(settings)
    assert server is not None
    try:
        url = f"http://127.0.0.1:{settings.metrics_port}/metrics"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as response:
            text = response.read().decode()
        assert "# TYPE verifyline_calls_total counter" in text
        assert "verifyline_queue_length " in text
        assert serve_metrics(settings) is None  # the port is taken: logged, the line runs
    finally:
        server.shutdown()
        server.server_close()
    assert serve_metrics(replace(settings, metrics_port=0)) is None  # off


DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "verifyline.json"


def exposed_series(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every series name the app's registry and the console's collector can expose."""
    monkeypatch.setattr(services, "call_log_figures", lambda store: {
        "ended": [("on_duty", "ari", "caller_hangup", 1)], "open": 0, "desks": {"free": 1}})
    METRICS.call_ended("on_duty", "ari", "caller_hangup")  # a labelled series shows once used
    METRICS.desk_state("desk-x", "free")
    METRICS.db_error("read")
    names = {s.name for m in METRICS.registry.collect() for s in m.samples}
    registry = CollectorRegistry()
    registry.register(CallLogCollector(cast(Store, None)))
    return names | {s.name for m in registry.collect() for s in m.samples}


def test_given_the_grafana_dashboard_when_read_then_every_metric_it_plots_is_exposed(
        monkeypatch):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]

    used = {name for e in exprs for name in re.findall(r"\bverifyline_[a-z_]+", e)}

    assert len(exprs) >= 10 and used
    assert used <= exposed_series(monkeypatch), used - exposed_series(monkeypatch)
    assert {"verifyline_calls_total", "verifyline_queue_length", "verifyline_desks",
            "verifyline_wait_seconds_bucket", "verifyline_setup_seconds_bucket",
            "verifyline_ari_reconnects_total", "verifyline_journal_backlog",
            "verifyline_db_errors_total", "verifyline_logged_calls_total"} <= used


async def test_given_the_event_socket_dropped_when_it_reconnects_then_one_reconnect_counted():
    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close()

    before = value(METRICS, "verifyline_ari_reconnects_total")
    connected: list[int] = []
    async with serve(close_at_once, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]

        async def on_connect() -> None:
            connected.append(1)
            if len(connected) == 2:
                await stream.stop()

        async def on_event(_ev: object) -> None:
            return None

        stream = EventStream(f"http://127.0.0.1:{port}", "u", "p", "verifyline", on_event,
                             on_connect, min_delay=0.01, max_delay=0.01)
        await asyncio.wait_for(stream.run(), timeout=5)

    assert len(connected) == 2  # the first connection, then one reconnection
    assert value(METRICS, "verifyline_ari_reconnects_total") == before + 1
