"""The ARI app's ``/metrics`` endpoint: Prometheus' text format on loopback, on a port of its
own (``VERIFYLINE_METRICS_PORT``, 0: off), served by a thread beside the event loop."""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from ivr.config import Settings
from ivr.metrics import METRICS

log = logging.getLogger(__name__)


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Start serving the app's metrics; None when they are off or the port is taken. A line
    that cannot show its metrics still takes calls: a taken port is logged, not raised."""
    if not settings.metrics_port:
        return None
    try:
        server, _thread = start_http_server(settings.metrics_port, settings.bind_address,
                                            registry=METRICS.registry)
    except OSError as exc:
        log.error("metrics: cannot listen on %s:%d (%s); the line runs without /metrics",
                  settings.bind_address, settings.metrics_port, exc)
        return None
    log.info("metrics: http://%s:%d/metrics", settings.bind_address, settings.metrics_port)
    return server
