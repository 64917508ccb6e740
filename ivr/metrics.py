"""The ARI app's Prometheus metrics: the one module that holds metric objects, and the small
hooks the rest of the line calls (it imports prometheus_client and nothing of the line).

Served by ``verifyline serve`` on ``VERIFYLINE_METRICS_PORT`` (loopback; docs/operations.md).
The console serves its own ``/metrics``, read from the database (ivr.web.metrics).

    verifyline_calls_total{roster_result,path,end_reason}  counter: calls ended in this run
    verifyline_queue_length                                 gauge: callers waiting for a desk
    verifyline_queue_longest_wait_seconds                   gauge: how long the first has waited
    verifyline_wait_seconds                                 histogram: queued -> bridged
    verifyline_setup_seconds                                histogram: call start -> bridged
    verifyline_desks{state}                                 gauge: desks by shown state
    verifyline_ari_reconnects_total                         counter: event socket reconnections
    verifyline_journal_backlog                              gauge: log entries not yet in the DB
    verifyline_db_errors_total{where}                       counter: database operations failed

Hooks are called from the event loop and from the journal's thread: each takes the lock it
needs (prometheus_client's own objects are thread-safe).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

# waits and setups of a verification line: seconds to a few minutes (queue_max_wait 120 s)
_WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0)
_SETUP_BUCKETS = (5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0)
# the roster result of a call closed while the app was away (it is in the database only)
NOT_KNOWN = "not_known"


class LineMetrics:
    """The app's metrics, in one registry (the process's default one: it also holds
    prometheus_client's process_* and python_* collectors)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.calls = Counter("verifyline_calls", "Calls ended, by roster result, path and end "
                             "reason", ("roster_result", "path", "end_reason"),
                             registry=registry)
        self.queue_length = Gauge("verifyline_queue_length", "Callers waiting for a desk",
                                  registry=registry)
        self.longest_wait = Gauge("verifyline_queue_longest_wait_seconds",
                                  "How long the caller waiting longest has waited",
                                  registry=registry)
        self.wait = Histogram("verifyline_wait_seconds", "Seconds a caller waited in the queue "
                              "before a supervisor was bridged", buckets=_WAIT_BUCKETS,
                              registry=registry)
        self.setup = Histogram("verifyline_setup_seconds", "Seconds from the call's start to "
                               "its bridge to a supervisor (greeting, keys, read-out, queue)",
                               buckets=_SETUP_BUCKETS, registry=registry)
        self.desks = Gauge("verifyline_desks", "Desks by the state the line shows",
                           ("state",), registry=registry)
        self.ari_reconnects = Counter("verifyline_ari_reconnects",
                                      "Times the ARI event socket was opened again after a "
                                      "loss", registry=registry)
        self.journal_backlog = Gauge("verifyline_journal_backlog",
                                     "Call-log entries journaled but not yet in the database",
                                     registry=registry)
        self.db_errors = Counter("verifyline_db_errors", "Database operations that failed",
                                 ("where",), registry=registry)
        self._lock = threading.Lock()
        self._queued: dict[str, float] = {}  # call -> monotonic time it joined the queue
        self._desk_states: dict[str, str] = {}
        self._clock: Callable[[], float] = time.monotonic
        self.queue_length.set_function(self._queue_length)
        self.longest_wait.set_function(self._longest_wait)

    # --- hooks ---------------------------------------------------------------------------

    def call_ended(self, roster_result: str | None, path: str, end_reason: str) -> None:
        self.calls.labels(roster_result or NOT_KNOWN, path, end_reason).inc()

    def queue_joined(self, call_key: str) -> None:
        with self._lock:
            self._queued.setdefault(call_key, self._clock())

    def queue_left(self, call_key: str) -> None:
        with self._lock:
            self._queued.pop(call_key, None)

    def bridged(self, waited_s: float | None, setup_s: float) -> None:
        if waited_s is not None:
            self.wait.observe(max(0.0, waited_s))
        self.setup.observe(max(0.0, setup_s))

    def desk_state(self, desk: str, state: str) -> None:
        with self._lock:
            self._desk_states[desk] = state
            counts: dict[str, int] = {}
            for shown in self._desk_states.values():
                counts[shown] = counts.get(shown, 0) + 1
            for label in {*counts, *self._known_states()}:
                self.desks.labels(label).set(counts.get(label, 0))

    def ari_reconnected(self) -> None:
        self.ari_reconnects.inc()

    def db_error(self, where: str) -> None:
        self.db_errors.labels(where).inc()

    def watch_journal(self, pending: Callable[[], int]) -> None:
        """Read the journal's backlog from ``pending`` at each scrape."""
        self.journal_backlog.set_function(lambda: float(pending()))

    # --- reads ---------------------------------------------------------------------------

    def _queue_length(self) -> float:
        with self._lock:
            return float(len(self._queued))

    def _longest_wait(self) -> float:
        with self._lock:
            first = min(self._queued.values(), default=None)
        return 0.0 if first is None else max(0.0, self._clock() - first)

    def _known_states(self) -> Iterable[str]:
        # states shown before keep their series (at 0) rather than vanish from the graphs
        return (s.labels["state"] for metric in self.desks.collect() for s in metric.samples)


METRICS = LineMetrics()
"""The process's metrics (the app has one line; tests read deltas of it)."""
