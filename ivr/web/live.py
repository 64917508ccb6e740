"""Live delivery of the screen-pop: one hub per console process fans the line's desk events
out to the desks' Server-Sent Events streams (ivr.web.desk).

The line (the ARI app) and the console are separate processes that share only the database,
so the truth is the ``call_event`` table: the hub's daemon thread follows its id. On SQLite it
polls every 25 ms (an indexed range on the primary key: cheap). On PostgreSQL it LISTENs on
``verifyline_events`` (the line NOTIFYs in the transaction that writes an event) and polls
once a second as well, so a line that does not notify (or a lost notification) costs at most
a second. When the database is down the hub tells every stream (an SSE ``status`` event),
retries with a backoff of at most 2 s and carries on where it stopped once it is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from ivr import services
from ivr.exceptions import ConsoleError, StoreError
from ivr.screenpop import DeskEvent
from ivr.store import Store

log = logging.getLogger(__name__)

CHANNEL = "verifyline_events"
POLL_SECONDS = 0.025  # SQLite: how often the hub looks for new events
FALLBACK_SECONDS = 1.0  # PostgreSQL: the poll beside LISTEN
MAX_BACKOFF = 2.0  # the longest wait between two tries while the database is down
QUEUE_SIZE = 256  # a stream that falls this far behind is closed (its page reconnects)
BATCH = 500

# what a failing database raises through SQLAlchemy or the raw LISTEN connection
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, psycopg.Error, StoreError,
                                                    OSError)


@dataclass(frozen=True)
class Message:
    """One SSE event: its name, its JSON data, and the call_event id (None: not resumable)."""

    event: str
    data: dict[str, Any]
    id: int | None = None

    def encode(self) -> str:
        head = f"id: {self.id}\n" if self.id is not None else ""
        return f"{head}event: {self.event}\ndata: {json.dumps(self.data)}\n\n"


CLOSE = Message("close", {})  # put on a subscriber's queue: its stream ends


@dataclass(eq=False)
class Subscriber:
    """One open stream: the desk it follows and the queue its generator waits on."""

    desk: str
    queue: queue.Queue[Message] = field(default_factory=lambda: queue.Queue(QUEUE_SIZE))

    def put(self, message: Message) -> bool:
        try:
            self.queue.put_nowait(message)
        except queue.Full:
            return False
        return True


PHOTO_PATH = "/desk/photo/"  # ivr.web.desk's photo route


def photo_url(pop: dict[str, Any]) -> dict[str, Any]:
    """The screen-pop with the officer's photo as a console URL."""
    officer = pop.get("officer")
    if isinstance(officer, dict):
        name = officer.get("photo")
        officer["photo_url"] = PHOTO_PATH + quote(name, safe="") if name else None
    return pop


def pop_message(store: Store, event: DeskEvent) -> Message | None:
    """The screen_pop SSE event for one desk event (None: its call is gone)."""
    try:
        pop = services.screen_pop(store, event.call_id)
    except ConsoleError:
        return None
    phase = pop["phase"] if event.phase == "outcome" else event.phase
    return Message("screen_pop", {**photo_url(pop), "phase": phase, "desk": event.desk,
                                  "event": event.kind}, event.id)


class Hub:
    """Follows the call events in a daemon thread and hands each to its desk's streams."""

    def __init__(self, store: Store, poll: float = POLL_SECONDS,
                 fallback: float = FALLBACK_SECONDS) -> None:
        self.store = store
        self.poll = poll
        self.fallback = fallback
        self.listen = store.engine.dialect.name == "postgresql"
        self.database_up = True
        self.last_id: int | None = None
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._listener: psycopg.Connection[Any] | None = None

    # --- subscribers (request threads) -----------------------------------------------------

    def subscribe(self, desk: str) -> Subscriber:
        """A new stream of this desk's events (starts the hub's thread the first time)."""
        sub = Subscriber(desk)
        with self._lock:
            self._subscribers.setdefault(desk, set()).add(sub)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="verifyline-live-hub",
                                                daemon=True)
                self._thread.start()
            if not self.database_up:
                sub.put(Message("status", {"database": "down"}))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.desk)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[sub.desk]

    def subscribers(self, desk: str | None = None) -> int:
        with self._lock:
            if desk is not None:
                return len(self._subscribers.get(desk, ()))
            return sum(len(s) for s in self._subscribers.values())

    def stop(self) -> None:
        """End the thread (tests; a process simply exits)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close_listener()

    # --- the hub's thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                if self.listen and self._listener is None:
                    # LISTEN before reading: an event committed after the read then wakes us
                    self._listener = self._connect()
                if self.last_id is None:
                    self.last_id = services.last_event_id(self.store)
                elif not self.database_up:
                    # a server that crashed may have lost its last commits (ids handed out
                    # again): follow from what it has, not from ids it no longer knows
                    self.last_id = min(self.last_id, services.last_event_id(self.store))
                events = services.desk_events_since(self.store, self.last_id, BATCH)
                self._set_up(True)
                for event in events:
                    self._deliver(event)
                    self.last_id = event.id
                backoff = 0.1
                if len(events) < BATCH:
                    self._wait()
            except DATABASE_ERRORS as exc:
                self._close_listener()
                if self.database_up:
                    log.warning("live hub: the database is unavailable (%s); retrying",
                                type(exc).__name__)
                self._set_up(False)
                self._wake.wait(backoff)
                self._wake.clear()
                backoff = min(MAX_BACKOFF, backoff * 2)
            except Exception:  # a bug must not end live updates for every desk
                log.exception("live hub: unexpected error; carrying on")
                self._wake.wait(MAX_BACKOFF)
                self._wake.clear()

    def _deliver(self, event: DeskEvent) -> None:
        if event.desk is None:
            return
        with self._lock:
            subs = list(self._subscribers.get(event.desk, ()))
        if not subs:
            return
        message = pop_message(self.store, event)
        if message is None:
            return
        for sub in subs:
            if not sub.put(message):  # fell behind: end its stream, its page resumes
                self.unsubscribe(sub)
                sub.queue = queue.Queue(1)
                sub.put(CLOSE)

    def _set_up(self, up: bool) -> None:
        if up == self.database_up:
            return
        if up:
            log.info("live hub: the database is back")
        status = Message("status", {"database": "up" if up else "down"})
        with self._lock:  # with subscribe's check: each stream hears each change once
            self.database_up = up
            subs = [s for group in self._subscribers.values() for s in group]
        for sub in subs:
            sub.put(status)

    def _wait(self) -> None:
        """Until something may have happened: a NOTIFY, the next poll, or stop()."""
        if not self.listen:
            self._wake.wait(self.poll)
            self._wake.clear()
            return
        conn = self._listener
        if conn is None:  # pragma: no cover - _run connects it before each read
            return
        # one notification wakes us; the query then reads every event there is
        for _ in conn.notifies(timeout=self.fallback, stop_after=1):
            break

    def _connect(self) -> psycopg.Connection[Any]:
        url = self.store.engine.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                               connect_timeout=2)
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _close_listener(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(*DATABASE_ERRORS):
                conn.close()


_hub_lock = threading.Lock()


def hub(app: Flask | None = None) -> Hub:
    """This console process's hub (created the first time a stream asks for it)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _hub_lock:
        found: Hub | None = app.extensions.get("verifyline.hub")
        if found is None:
            store: Store = app.extensions["verifyline.store"]
            found = Hub(store, poll=float(app.config.get("LIVE_POLL_SECONDS", POLL_SECONDS)),
                        fallback=float(app.config.get("LIVE_FALLBACK_SECONDS",
                                                      FALLBACK_SECONDS)))
            app.extensions["verifyline.hub"] = found
        return found


def catch_up(store: Store, desk: str, last_id: int | None) -> list[Message]:
    """What a stream sends first: after a reconnect (``Last-Event-ID``), the desk's newest
    event since then; on a fresh page, the desk's newest event unless that call left it."""
    if last_id is not None:
        events = services.desk_events_since(store, last_id, BATCH, desk)
        newest = events[-1] if events else None
    else:
        newest = services.latest_desk_event(store, desk)
        if newest is not None and newest.phase == "cleared":
            newest = None
    if newest is None:
        return []
    message = pop_message(store, newest)
    return [message] if message is not None else []


def stream(hub_: Hub, sub: Subscriber, first: list[Message], hello: dict[str, Any],
           keepalive: float) -> Iterator[str]:
    """The SSE body of one stream: hello, the catch-up, then the hub's messages, with a
    keep-alive comment when nothing happened for ``keepalive`` seconds."""
    try:
        yield "retry: 1000\n" + Message("hello", hello).encode()
        sent = 0
        for message in first:
            yield message.encode()
            sent = max(sent, message.id or 0)
        while True:
            try:
                message = sub.queue.get(timeout=keepalive)
            except queue.Empty:
                yield ": keep-alive\n\n"
                continue
            if message is CLOSE:
                return
            if message.id is not None and message.id <= sent:
                continue  # the catch-up already sent it
            yield message.encode()
    finally:
        hub_.unsubscribe(sub)
