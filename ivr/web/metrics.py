"""The console's ``/metrics``: Prometheus' text format, read from the call log at each scrape.

Not behind the sign-in (a Prometheus server has no account), but answered only to loopback
addresses: anyone else gets 403. What it shows comes from the database, so it is the same
whichever gunicorn worker answers and survives restarts of the app and the console:

    verifyline_logged_calls_total{roster_result,path,end_reason}  calls ended, in the call log
    verifyline_logged_calls_open                                    calls logged as in progress
    verifyline_logged_desks{state}                                  desks by the state last shown
    verifyline_console_database_up                                  1: the call log was read
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ivr import services
from ivr.store import Store
from ivr.web import context

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


class CallLogCollector(Collector):
    """The call log's figures, read when scraped."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("verifyline_console_database_up",
                               "1 when the console could read the call log for this scrape")
        try:
            figures = services.call_log_figures(self.store)
        except Exception as exc:
            log.warning("metrics: cannot read the call log (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        calls = CounterMetricFamily("verifyline_logged_calls", "Calls ended, in the call log, "
                                    "by roster result, path and end reason",
                                    labels=("roster_result", "path", "end_reason"))
        for roster_result, path, end_reason, n in figures["ended"]:
            calls.add_metric([roster_result, path, end_reason], n)
        yield calls
        yield GaugeMetricFamily("verifyline_logged_calls_open",
                                "Calls the call log has as in progress", value=figures["open"])
        desks = GaugeMetricFamily("verifyline_logged_desks",
                                  "Desks by the state the line last showed", labels=("state",))
        for state, n in sorted(figures["desks"].items()):
            desks.add_metric([state], n)
        yield desks


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@bp.route("/metrics")
def metrics() -> Response:
    """Serve the call log's figures to a scraper on this host."""
    if not _loopback(context.address()):
        return Response("metrics_loopback_only: metrics are served to loopback only\n",
                        status=403, mimetype="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CallLogCollector(context.store()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
