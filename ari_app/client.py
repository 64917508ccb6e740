"""A thin typed ARI client: REST over the events websocket (Asterisk >= 22.4) or httpx, events
from websockets, reconnect in the transport.

    AriError
    ├── AriHttpError      Asterisk answered with an error status (``status`` holds it)
    │   └── AriNotFound   404: the channel, bridge or playback is gone
    └── AriUnavailable    Asterisk could not be reached at all

The only module that speaks HTTP to Asterisk: the app uses the async methods, the lab and the
CLI (synchronous code) the ``probe_*`` methods, all from the same base URL and credentials.

While the events websocket is up and Asterisk speaks "REST over websocket" (22.4 and later;
``RESTRequest`` / ``RESTResponse`` messages), the app's requests go over that socket: about a
seventh of httpx's CPU per request and a fifth of its latency on this lab (measured in
docs/benchmarks.md). Otherwise — the socket reconnecting, an older Asterisk, and any request
made from the task that reads the socket (it cannot wait for a response it is the one to read)
— they go over HTTP. Asterisk serves one request at a time per socket; every request the app
makes is short (no long poll), so that costs nothing measurable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from websockets.asyncio.client import connect

from ivr import jsoncodec
from ivr.config import Settings
from ivr.metrics import METRICS

log = logging.getLogger(__name__)


# Asterisk's HTTP server refuses a request line longer than 4096 bytes ("400 Request line too
# long"); the event sources go in the query, percent-encoded (a comma becomes three bytes), so
# one subscription request lists at most this many characters of them
SUBSCRIBE_CHUNK_CHARS = 2000


def subscription_chunks(event_sources: Sequence[str]) -> list[list[str]]:
    """The event sources in order, in groups whose comma-joined list stays under
    SUBSCRIBE_CHUNK_CHARS (a source longer than that goes alone)."""
    chunks: list[list[str]] = []
    size = 0
    for source in event_sources:
        if chunks and size + 1 + len(source) <= SUBSCRIBE_CHUNK_CHARS:
            chunks[-1].append(source)
            size += 1 + len(source)
        else:
            chunks.append([source])
            size = len(source)
    return chunks


class AriError(Exception):
    """Root of the ARI client's errors."""


class AriHttpError(AriError):
    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        self.status = status
        super().__init__(f"{method} {path} -> {status} {text.strip()[:200]}")


class AriNotFound(AriHttpError):
    """The resource is gone (normal while hanging up or cleaning up)."""


class AriUnavailable(AriError):
    """Asterisk's HTTP server could not be reached."""


# --- typed views of what ARI sends ---------------------------------------------------------


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    state: str
    caller_number: str
    dialplan_app: str = ""
    dialplan_app_data: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Channel:
        caller = raw.get("caller") or {}
        dialplan = raw.get("dialplan") or {}
        return cls(
            id=str(raw.get("id", "")),
            name=str(raw.get("name", "")),
            state=str(raw.get("state", "")),
            caller_number=str(caller.get("number", "")),
            dialplan_app=str(dialplan.get("app_name", "")),
            dialplan_app_data=str(dialplan.get("app_data", "")),
        )


@dataclass(frozen=True)
class Bridge:
    id: str
    bridge_type: str
    channels: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Bridge:
        return cls(str(raw.get("id", "")), str(raw.get("bridge_type", "")),
                   tuple(str(c) for c in raw.get("channels", [])))


@dataclass(frozen=True)
class Endpoint:
    technology: str
    resource: str
    state: str
    channel_ids: tuple[str, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Endpoint:
        return cls(str(raw.get("technology", "")), str(raw.get("resource", "")),
                   str(raw.get("state", "")), tuple(str(c) for c in raw.get("channel_ids", [])))


@dataclass(frozen=True)
class AriEvent:
    """One event from the websocket: its type, the channel it concerns (if any), the raw body."""

    type: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def channel(self) -> Channel | None:
        raw = self.raw.get("channel")
        return Channel.parse(raw) if isinstance(raw, Mapping) else None

    @property
    def args(self) -> list[str]:
        return [str(a) for a in self.raw.get("args", [])]

    @property
    def digit(self) -> str:
        return str(self.raw.get("digit", ""))

    @property
    def playback_id(self) -> str:
        return str((self.raw.get("playback") or {}).get("id", ""))

    @property
    def playback_target(self) -> str:
        """The channel id a playback plays to ('' for bridge playbacks)."""
        uri = str((self.raw.get("playback") or {}).get("target_uri", ""))
        return uri.removeprefix("channel:") if uri.startswith("channel:") else ""

    @property
    def desk(self) -> str | None:
        """The PJSIP endpoint a DeviceStateChanged or EndpointStateChange is about (None:
        another kind of device, or another event)."""
        device = str((self.raw.get("device_state") or {}).get("name", ""))
        if device.startswith("PJSIP/"):
            return device.removeprefix("PJSIP/")
        endpoint = self.raw.get("endpoint") or {}
        if endpoint.get("technology") == "PJSIP" and endpoint.get("resource"):
            return str(endpoint["resource"])
        return None

    @property
    def cause(self) -> str:
        return str(self.raw.get("cause_txt") or self.raw.get("cause", ""))


@dataclass(frozen=True)
class Probe:
    """What one synchronous probe saw: the HTTP status (None: nothing answered) and body."""

    status: int | None
    body: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


# --- REST --------------------------------------------------------------------------------

REQUEST_TIMEOUT = 10.0
SLOW_REQUEST_SECONDS = 1.0  # a request over the websocket this slow is logged
MOVE_TIMEOUT = 30.0  # addChannel: longer than the longest prompt a channel may be playing
# Asterisk closes a kept-alive HTTP connection idle for session_keep_alive (http.conf, 15 s
# by default): one idle a third of that is not used again; and it serves sessionlimit (100)
# connections at once, the websocket among them
KEEPALIVE_IDLE_SECONDS = 5.0
MOVE_CONNECTIONS = 32
# a probe runs in a polling loop (lab up) or a health check: it must give up fast
PROBE_TIMEOUT = 1.0
# the first release of each branch that answers RESTRequest messages on the events websocket
_REST_OVER_SOCKET = {20: (20, 14), 21: (21, 9), 22: (22, 4)}
_VERSION = re.compile(r"(\d+)\.(\d+)")

Params = Mapping[str, str | int | float]


def rest_over_socket(version: str) -> bool:
    """Does an Asterisk of this version (``system.version`` of /asterisk/info, e.g.
    ``22.10.1+dfsg-1``) serve REST requests over the events websocket?"""
    m = _VERSION.match(version)
    if m is None:
        return False
    major, minor = int(m.group(1)), int(m.group(2))
    if major > max(_REST_OVER_SOCKET):
        return True
    first = _REST_OVER_SOCKET.get(major)
    return first is not None and (major, minor) >= first


def _raise_for(method: str, path: str, status: int, text: str) -> None:
    if status == 404:
        raise AriNotFound(method, path, status, text)
    if status >= 300:
        raise AriHttpError(method, path, status, text)


class _SocketRest:
    """Requests over the events websocket: each a ``RESTRequest`` with an id of its own, its
    ``RESTResponse`` handed back by the socket's reader (:meth:`answer`)."""

    def __init__(self, send: Callable[[str], Awaitable[None]],
                 reader: asyncio.Task[Any] | None) -> None:
        self._send = send
        self.reader = reader
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Mapping[str, Any]]] = {}

    async def request(self, method: str, path: str, params: Params | None) -> Any:
        request_id = str(next(self._ids))
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id,
                                   "method": method, "uri": path.lstrip("/")}
        if params:
            message["query_strings"] = [{"name": k, "value": str(v)}
                                        for k, v in params.items()]
        answer: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        started = time.monotonic()
        try:
            await self._send(jsoncodec.dumps(message))
            raw = await asyncio.wait_for(answer, REQUEST_TIMEOUT)
            took = time.monotonic() - started
            if took > SLOW_REQUEST_SECONDS:
                # Asterisk serves a socket's requests one at a time: the others waited too
                log.warning("ARI %s %s over the websocket took %.1f s", method, path, took)
        except (TimeoutError, OSError, websockets.WebSocketException) as exc:
            raise AriUnavailable(f"{method} {path} (websocket): {exc!r}") from exc
        finally:
            self._waiting.pop(request_id, None)
        body = str(raw.get("message_body") or "")
        _raise_for(method, path, int(raw.get("status_code") or 0), body)
        return jsoncodec.loads(body) if body else None

    def answer(self, raw: Mapping[str, Any]) -> None:
        waiting = self._waiting.get(str(raw.get("request_id", "")))
        if waiting is not None and not waiting.done():
            waiting.set_result(raw)

    def close(self) -> None:
        """The socket is gone: requests still waiting fail (their fate is unknown, as with
        an HTTP connection lost mid-request)."""
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(AriUnavailable("the ARI websocket closed"))
        self._waiting.clear()


class _KeepAlive:
    """Plain HTTP/1.1 requests on kept-alive asyncio streams: for the one request the app
    makes over HTTP while the websocket carries the rest (``addChannel``), at about a sixth
    of httpx's CPU (its client, pool and anyio layers were 11 % of the event loop's CPU at
    10 calls/s, for two requests a call; docs/benchmarks.md). Only for ``http://`` and only
    what Asterisk's HTTP server sends back (a ``Content-Length`` on every response, or the
    connection closed after the body)."""

    def __init__(self, host: str, port: int, prefix: str, authorization: str) -> None:
        self._prefix = prefix.rstrip("/")
        self._head = (f"Host: {host}:{port}\r\nAuthorization: {authorization}\r\n"
                      "Content-Length: 0\r\n\r\n")
        self._host, self._port = host, port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self._slots = asyncio.Semaphore(MOVE_CONNECTIONS)

    @classmethod
    def for_url(cls, base_url: str, user: str, password: str) -> _KeepAlive | None:
        """None for a URL it does not serve (https: httpx does)."""
        url = httpx.URL(base_url)
        if url.scheme != "http" or not url.host:
            return None
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return cls(url.host, url.port or 80, url.path, f"Basic {token}")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """A connection, and whether it served a request before."""
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < KEEPALIVE_IDLE_SECONDS and not reader.at_eof():
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection(self._host, self._port)
        return reader, writer, False

    async def request(self, method: str, path: str, params: Params | None,
                      timeout: float) -> tuple[int, bytes]:
        """Status and body; AriUnavailable when no answer came (the connection is dropped).
        A kept-alive connection the server closed before answering is tried once anew."""
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        message = f"{method} {target} HTTP/1.1\r\n{self._head}".encode()
        try:
            async with self._slots, asyncio.timeout(timeout):
                while True:
                    reader, writer, reused = await self._connection()
                    try:
                        status, body, keep = await self._exchange(reader, writer, message)
                        break
                    except (OSError, asyncio.IncompleteReadError) as exc:
                        writer.close()
                        unanswered = (not isinstance(exc, asyncio.IncompleteReadError)
                                      or not exc.partial)
                        if not (reused and unanswered):
                            raise
                    except BaseException:
                        writer.close()
                        raise
        except (TimeoutError, OSError, ValueError, IndexError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise AriUnavailable(f"{method} {path}: {exc!r}") from exc
        if keep:
            self._idle.append((reader, writer, time.monotonic()))
        else:
            writer.close()
        return status, body

    @staticmethod
    async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        message: bytes) -> tuple[int, bytes, bool]:
        """One request and its response: status, body, whether the connection stays."""
        writer.write(message)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (line.partition(":") for line in lines if line)}
        if "content-length" not in headers:
            return status, await reader.read(), False  # the body ends with the connection
        body = await reader.readexactly(int(headers["content-length"]))
        return status, body, headers.get("connection", "").lower() != "close"

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class AriClient:
    """The REST half: one method per request the app makes, plus synchronous probes."""

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 transport: httpx.AsyncBaseTransport | None = None,
                 probe_transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.app = app
        self._auth = (user, password)
        self._transport = transport
        self._probe_transport = probe_transport
        self._async: httpx.AsyncClient | None = None
        self._socket: _SocketRest | None = None
        # addChannel's own connections (None with a transport given: the tests' httpx mock)
        self._moves = (_KeepAlive.for_url(self.base_url + "/ari", user, password)
                       if transport is None else None)

    @classmethod
    def from_settings(cls, settings: Settings,
                      transport: httpx.AsyncBaseTransport | None = None,
                      probe_transport: httpx.BaseTransport | None = None) -> AriClient:
        """The client for these settings' Asterisk (their password must be filled in)."""
        return cls(settings.ari_url, settings.ari_user, settings.ari_password,
                   settings.app_name, transport, probe_transport)

    @property
    def _http(self) -> httpx.AsyncClient:
        # made on first use: the lab and the CLI only probe, and polling them with a client
        # each would build an async client (and its SSL context) every 50 ms for nothing
        if self._async is None:
            self._async = httpx.AsyncClient(base_url=self.base_url + "/ari", auth=self._auth,
                                            timeout=REQUEST_TIMEOUT, transport=self._transport)
        return self._async

    async def aclose(self) -> None:
        if self._moves is not None:
            await self._moves.aclose()
        if self._async is not None:
            await self._async.aclose()

    # --- synchronous probes (lab, CLI) ---------------------------------------------------

    def probe(self, path: str, *, credentials: bool = True,
              timeout: float = PROBE_TIMEOUT) -> Probe:
        """GET ``/ari{path}`` once, synchronously; never raises for an unreachable Asterisk."""
        # a client per probe, closed at once: nothing stays open between polls
        with httpx.Client(base_url=self.base_url + "/ari",
                          auth=self._auth if credentials else None, timeout=timeout,
                          transport=self._probe_transport) as http:
            try:
                r = http.get(path)
            except httpx.HTTPError as exc:
                return Probe(None, error=str(exc) or type(exc).__name__)
        try:
            body = r.json() if r.content else None
        except ValueError:
            body = None
        return Probe(r.status_code, body, "" if r.status_code < 300 else r.text.strip()[:200])

    def probe_info(self, timeout: float = PROBE_TIMEOUT) -> Probe:
        """Asterisk's info with our credentials (200: ARI is up and accepts us)."""
        return self.probe("/asterisk/info", timeout=timeout)

    def port_answers(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """Does anything answer HTTP on the ARI port, whatever its credentials?"""
        return self.probe("/asterisk/info", credentials=False, timeout=timeout).status is not None

    def app_registered(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """Does Asterisk list our Stasis application?"""
        return self.probe(f"/applications/{self.app}", timeout=timeout).ok

    # --- REST over the events websocket (EventStream attaches and detaches it) -----------

    def use_socket(self, send: Callable[[str], Awaitable[None]],
                   reader: asyncio.Task[Any] | None) -> None:
        """Send requests with ``send`` from now on; ``reader`` is the task that reads the
        socket (its own requests keep going over HTTP)."""
        self.drop_socket()
        self._socket = _SocketRest(send, reader)

    def drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None

    def on_response(self, raw: Mapping[str, Any]) -> None:
        if self._socket is not None:
            self._socket.answer(raw)

    @property
    def over_socket(self) -> bool:
        return self._socket is not None

    async def request(self, method: str, path: str, params: Params | None = None) -> Any:
        sock = self._socket
        if sock is not None and asyncio.current_task() is not sock.reader:
            return await sock.request(method, path, params)
        return await self._over_http(method, path, params)

    async def _over_http(self, method: str, path: str, params: Params | None = None,
                         body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        try:
            r = await self._http.request(method, path, params=params, json=body,
                                         timeout=timeout)
        except httpx.TransportError as exc:
            raise AriUnavailable(f"{method} {path}: {exc!r}") from exc
        _raise_for(method, path, r.status_code, r.text)
        if not r.content:
            return None
        return r.json()

    async def ignore_gone(self, method: str, path: str, params: Params | None = None) -> None:
        """A request made while hanging up or cleaning up: a 404 there is normal."""
        try:
            await self.request(method, path, params)
        except AriNotFound:
            log.debug("%s %s: already gone", method, path)

    # informational
    async def info(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/asterisk/info")
        return result

    async def channels(self) -> list[Channel]:
        return [Channel.parse(c) for c in await self.request("GET", "/channels")]

    async def bridges(self) -> list[Bridge]:
        return [Bridge.parse(b) for b in await self.request("GET", "/bridges")]

    async def endpoints(self, technology: str = "PJSIP") -> list[Endpoint]:
        return [Endpoint.parse(e) for e in await self.request("GET", f"/endpoints/{technology}")]

    async def application(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.request("GET", f"/applications/{self.app}")
        except AriNotFound:
            return None
        return result

    async def allow_events(self, types: Sequence[str]) -> None:
        """Let Asterisk send the app only these event types (``PUT eventFilter``, Asterisk >=
        16.3; over HTTP: a request body over the websocket hangs 22.10's socket)."""
        await self._over_http("PUT", f"/applications/{self.app}/eventFilter",
                              body={"allowed": [{"type": t} for t in types]})

    async def subscribe(self, event_sources: Sequence[str]) -> None:
        """Subscribe the app to these event sources (``channel:ID``, ``deviceState:NAME``):
        one request, or several when the list would not fit in one request line."""
        for chunk in subscription_chunks(event_sources):
            await self.request("POST", f"/applications/{self.app}/subscription",
                               {"eventSource": ",".join(chunk)})

    async def subscribe_channel(self, channel_id: str) -> None:
        await self.subscribe([f"channel:{channel_id}"])

    # channels
    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def play(self, channel_id: str, playback_id: str, media: Sequence[str]) -> None:
        await self.request("POST", f"/channels/{channel_id}/play/{playback_id}",
                           {"media": ",".join(media)})

    async def playback_state(self, playback_id: str) -> str | None:
        """'queued', 'playing', 'done', ...; None once Asterisk no longer has it."""
        try:
            found = await self.request("GET", f"/playbacks/{playback_id}")
        except AriNotFound:
            return None
        return str(found.get("state", "")) if isinstance(found, dict) else None

    async def stop_playback(self, playback_id: str) -> None:
        await self.ignore_gone("DELETE", f"/playbacks/{playback_id}")

    async def originate(self, channel_id: str, endpoint: str, app_args: str, caller_id: str,
                        timeout: int) -> None:
        await self.request("POST", f"/channels/{channel_id}", {
            "endpoint": endpoint, "app": self.app, "appArgs": app_args,
            "callerId": caller_id, "timeout": timeout,
        })

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.ignore_gone("DELETE", f"/channels/{channel_id}", {"reason": reason})

    async def continue_in_dialplan(self, channel_id: str, context: str, extension: str,
                                   priority: int = 1) -> None:
        await self.request("POST", f"/channels/{channel_id}/continue",
                           {"context": context, "extension": extension, "priority": priority})

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/variable",
                           {"variable": name, "value": value})

    # bridges
    async def create_bridge(self, bridge_id: str, bridge_type: str = "mixing") -> None:
        await self.request("POST", f"/bridges/{bridge_id}",
                           {"type": bridge_type, "name": bridge_id})

    async def bridge(self, bridge_id: str) -> Bridge:
        return Bridge.parse(await self.request("GET", f"/bridges/{bridge_id}"))

    async def play_to_bridge(self, bridge_id: str, playback_id: str,
                             media: Sequence[str]) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/play/{playback_id}",
                           {"media": ",".join(media)})

    async def start_moh(self, bridge_id: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/moh")

    async def add_to_bridge(self, bridge_id: str, channel_ids: Sequence[str]) -> None:
        """Always over HTTP, and given longer: Asterisk answers it only once each channel's
        own thread has moved it, and a channel's thread plays a prompt to its end before it
        takes the next command — a caller adopted after an app restart may still be hearing
        a prompt the old app started (its id lost with it): up to the greeting's 13 s
        (measured: 0.4-2.3 s for adopted waiting callers, over 10 s for adopted callers
        still in the greeting). Over the websocket, which Asterisk serves one request at a
        time, every other call's requests would wait behind it."""
        path = f"/bridges/{bridge_id}/addChannel"
        params = {"channel": ",".join(channel_ids)}
        try:
            if self._moves is None:
                await self._over_http("POST", path, params, timeout=MOVE_TIMEOUT)
            else:
                status, body = await self._moves.request("POST", path, params, MOVE_TIMEOUT)
                _raise_for("POST", path, status, body.decode(errors="replace"))
        except AriNotFound:
            raise
        except AriHttpError as exc:
            # Asterisk answers 400 "Channel not found" (not 404) when a channel to add has
            # just hung up: the channel is gone, like any 404, and its StasisEnd is coming
            if exc.status == 400 and "not found" in str(exc).lower():
                raise AriNotFound("POST", path, exc.status, str(exc)) from exc
            raise

    async def record_bridge(self, bridge_id: str, name: str, fmt: str = "wav") -> None:
        await self.request("POST", f"/bridges/{bridge_id}/record",
                           {"name": name, "format": fmt, "ifExists": "overwrite",
                            "beep": "false", "terminateOn": "none"})

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self.ignore_gone("DELETE", f"/bridges/{bridge_id}")
        except AriHttpError as exc:
            if exc.status != 409:  # 409: already torn down and out of the app
                raise


# --- events ------------------------------------------------------------------------------

EventHandler = Callable[[AriEvent], Awaitable[None]]
ConnectHandler = Callable[[], Awaitable[None]]


class EventStream:
    """The events websocket, kept open: reconnects with capped backoff and reports each
    (re)connection so the app can resync (ARI does not replay events missed meanwhile)."""

    def __init__(self, base_url: str, user: str, password: str, app: str,
                 on_event: EventHandler, on_connect: ConnectHandler,
                 on_disconnect: Callable[[], None] | None = None,
                 min_delay: float = 0.1, max_delay: float = 2.0,
                 rest: AriClient | None = None) -> None:
        ws_base = base_url.rstrip("/").replace("http", "ws", 1)
        self.url = f"{ws_base}/ari/events?app={app}&subscribeAll=false"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._on_event = on_event
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self.min_delay, self.max_delay = min_delay, max_delay
        self.connected = asyncio.Event()
        self._stopping = False
        self._ws: Any = None
        # the client whose requests go over this socket while it is up (None: HTTP only)
        self._rest = rest
        self.connections = 0  # opened so far; every one after the first is a reconnection

    async def run(self) -> None:
        """Keep the socket open until :meth:`stop`."""
        delay = self.min_delay
        while not self._stopping:
            try:
                async with connect(self.url, additional_headers=self._headers,
                                   open_timeout=5, ping_interval=5, ping_timeout=5,
                                   max_size=2**22) as ws:
                    self._ws = ws
                    log.info("ARI events connected: %s", self.url.split("?")[0])
                    self.connections += 1
                    if self.connections > 1:
                        METRICS.ari_reconnected()
                    delay = self.min_delay
                    self.connected.set()
                    await self._on_connect()
                    await self._carry_rest(ws)
                    async for message in ws:
                        await self._dispatch(message)
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                if self._stopping:
                    break
                log.warning("ARI events unavailable (%s); retrying in %.1f s", exc, delay)
            finally:
                self._ws = None
                if self._rest is not None:
                    self._rest.drop_socket()
                if self.connected.is_set() and self._on_disconnect is not None:
                    self._on_disconnect()
                self.connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def _carry_rest(self, ws: Any) -> None:
        """From now on the client's requests go over this socket, if this Asterisk can."""
        if self._rest is None:
            return
        try:
            version = str(((await self._rest.info()).get("system") or {}).get("version", ""))
        except AriError as exc:
            log.warning("cannot read Asterisk's version (%s); REST stays on HTTP", exc)
            return
        if rest_over_socket(version):
            self._rest.use_socket(ws.send, asyncio.current_task())
            log.info("ARI requests over the websocket (Asterisk %s)", version)
        else:
            log.info("ARI requests over HTTP (Asterisk %s has no REST over websocket)", version)

    async def _dispatch(self, message: str | bytes) -> None:
        try:
            raw = jsoncodec.loads(message)
        except ValueError:
            log.error("ARI sent a message that is not JSON: %r", message[:200])
            return
        if not isinstance(raw, dict):
            return
        if raw.get("type") == "RESTResponse":
            if self._rest is not None:
                self._rest.on_response(raw)
            return
        try:
            await self._on_event(AriEvent(str(raw.get("type", "")), raw))
        except Exception:
            # one bad event must not take the socket (and every other call) down
            log.exception("handling ARI event %s failed", raw.get("type"))

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            await self._ws.close()
