"""The one ARI client: its synchronous probes (lab, CLI) and the typed requests that replaced raw
``client.request`` calls elsewhere, over ``httpx.MockTransport``."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from ari_app import client as client_module
from ari_app.client import AriClient, AriNotFound, AriUnavailable
from ivr import jsoncodec
from ivr.config import Settings

APP = "verifyline"


def client_answering(status: int, seen: list[httpx.Request], body: object = None) -> AriClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body) if body is not None else httpx.Response(status)

    return AriClient("http://127.0.0.1:8088", "verifyline", "secret", APP,
                     transport=httpx.MockTransport(handle),
                     probe_transport=httpx.MockTransport(handle))


def test_given_settings_when_client_is_made_from_them_then_it_uses_their_url_and_app(tmp_path):
    settings = Settings(home=tmp_path, ari_port=18088, ari_password="pw")

    client = AriClient.from_settings(settings)

    assert client.base_url == "http://127.0.0.1:18088"
    assert client.app == settings.app_name


def test_given_ari_answers_when_info_is_probed_then_credentials_are_sent_and_body_parsed():
    seen: list[httpx.Request] = []
    client = client_answering(200, seen, {"system": {"version": "22.1.0"}})

    info = client.probe_info()

    assert info.ok
    assert info.body == {"system": {"version": "22.1.0"}}
    assert seen[0].url.path == "/ari/asterisk/info"
    assert seen[0].headers["authorization"].startswith("Basic ")


def test_given_wrong_credentials_when_info_is_probed_then_the_status_says_so():
    info = client_answering(401, [], {"message": "Authentication required"}).probe_info()

    assert not info.ok
    assert info.status == 401


def test_given_nothing_listens_when_probed_then_no_status_and_no_exception():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = AriClient("http://127.0.0.1:1", "u", "p", APP,
                       probe_transport=httpx.MockTransport(refuse))

    info = client.probe_info()

    assert info.status is None
    assert "refused" in info.error
    assert not client.port_answers()
    assert not client.app_registered()


def test_given_any_http_answer_when_port_is_probed_then_it_answers_without_credentials():
    seen: list[httpx.Request] = []

    assert client_answering(401, seen).port_answers()
    assert "authorization" not in seen[0].headers


def test_given_app_listed_or_not_when_registration_is_probed_then_only_200_counts():
    seen: list[httpx.Request] = []

    assert client_answering(200, seen, {"name": APP}).app_registered()
    assert not client_answering(404, seen).app_registered()
    assert [r.url.path for r in seen] == [f"/ari/applications/{APP}"] * 2


async def test_given_desks_when_subscribing_to_device_states_then_one_request_lists_them():
    seen: list[httpx.Request] = []
    client = client_answering(200, seen, {"name": APP})

    await client.subscribe(["deviceState:PJSIP/desk1", "deviceState:PJSIP/desk2"])
    await client.aclose()

    assert seen[0].method == "POST"
    assert seen[0].url.path == f"/ari/applications/{APP}/subscription"
    assert seen[0].url.params["eventSource"] == "deviceState:PJSIP/desk1,deviceState:PJSIP/desk2"


async def test_given_200_desks_when_subscribing_to_device_states_then_each_request_line_fits():
    seen: list[httpx.Request] = []
    client = client_answering(200, seen, {"name": APP})
    sources = [f"deviceState:PJSIP/bg{i}" for i in range(1, 201)]

    await client.subscribe(sources)
    await client.aclose()

    # Asterisk answers "400 Request line too long" past 4096 bytes (it did at 204 desks)
    assert len(seen) > 1
    assert all(len(f"POST {r.url.raw_path.decode()} HTTP/1.1") < 4096 for r in seen)
    assert [s for r in seen for s in r.url.params["eventSource"].split(",")] == sources


async def test_given_a_bridge_when_music_and_a_prompt_are_started_then_typed_requests_go_out():
    seen: list[httpx.Request] = []
    client = client_answering(204, seen)

    await client.start_moh("c1-hold")
    await client.play_to_bridge("c1-bridge", "p1", ["sound:a", "sound:b"])
    await client.aclose()

    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/ari/bridges/c1-hold/moh"), ("POST", "/ari/bridges/c1-bridge/play/p1")]
    assert seen[1].url.params["media"] == "sound:a,sound:b"


async def test_given_a_channel_gone_when_added_to_a_bridge_then_not_found() -> None:
    # Asterisk 22 answers addChannel with 400 "Channel not found" (not 404) when the caller
    # hung up a moment before: that is a channel gone, like any 404
    import pytest

    from ari_app.client import AriHttpError, AriNotFound
    seen: list[httpx.Request] = []
    gone = client_answering(400, seen, {"message": "Channel not found"})
    with pytest.raises(AriNotFound):
        await gone.add_to_bridge("b1", ["c1", "c1-desk1"])
    other = client_answering(400, seen, {"message": "Bridge is not a mixing bridge"})
    with pytest.raises(AriHttpError) as refused:
        await other.add_to_bridge("b1", ["c1"])
    assert not isinstance(refused.value, AriNotFound)


async def test_given_a_channel_gone_when_the_bridge_is_made_then_it_is_destroyed_again() -> None:

    from ari_app.adapter import AriTelephony
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/addChannel"):
            return httpx.Response(400, json={"message": "Channel not found"})
        return httpx.Response(204)

    client = AriClient("http://127.0.0.1:8088", "verifyline", "secret", APP,
                       transport=httpx.MockTransport(handle))
    made = await AriTelephony(client).create_bridge("c1-bridge", ["c1", "c1-desk1"])

    assert made is False  # the channel's hang-up decides what happens to the call
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/ari/bridges/c1-bridge"), ("POST", "/ari/bridges/c1-bridge/addChannel"),
        ("DELETE", "/ari/bridges/c1-bridge")]


# --- REST over the events websocket ------------------------------------------------------


class FakeSocket:
    """The events websocket as the client sees it: what it sends, and Asterisk's answers
    handed back the way the socket's reader hands them (``client.on_response``)."""

    def __init__(self, client: AriClient, status: int = 200, body: str = "") -> None:
        self.client, self.status, self.body = client, status, body
        self.sent: list[dict[str, object]] = []

    async def send(self, message: str) -> None:
        import asyncio
        import json

        request = json.loads(message)
        self.sent.append(request)
        answer = {"type": "RESTResponse", "request_id": request["request_id"],
                  "status_code": self.status, "message_body": self.body}
        asyncio.get_running_loop().call_soon(self.client.on_response, answer)


def test_given_asterisk_versions_then_rest_over_the_socket_only_from_the_releases_that_have_it():
    from ari_app.client import rest_over_socket

    assert [rest_over_socket(v) for v in (
        "22.10.1+dfsg+~cs6.17.60671434-1", "22.4.0", "22.3.0", "21.9.0", "21.8.2", "20.14.1",
        "20.13.0", "18.26.0", "23.0.0", "GIT-master-abc", "")] == [
        True, True, False, True, False, True, False, False, True, False, False]


async def test_given_the_socket_attached_when_a_request_is_made_then_it_goes_as_a_rest_request():
    seen: list[httpx.Request] = []
    client = client_answering(500, seen)  # HTTP would fail: nothing may go that way
    sock = FakeSocket(client, 200, '{"id": "c1-hold", "channels": ["c1"]}')
    client.use_socket(sock.send, reader=None)

    bridge = await client.bridge("c1-hold")
    await client.originate("c1-desk1", "PJSIP/desk1", "desk", '"A" <1>', 20)

    assert bridge.channels == ("c1",)
    assert sock.sent[0] == {"type": "RESTRequest", "request_id": "1", "method": "GET",
                            "uri": "bridges/c1-hold"}
    assert sock.sent[1]["uri"] == "channels/c1-desk1"
    assert {q["name"]: q["value"] for q in sock.sent[1]["query_strings"]} == {  # type: ignore
        "endpoint": "PJSIP/desk1", "app": APP, "appArgs": "desk", "callerId": '"A" <1>',
        "timeout": "20"}
    assert seen == []


async def test_given_the_socket_when_asterisk_answers_404_then_not_found_as_over_http():
    import pytest

    from ari_app.client import AriNotFound
    client = client_answering(500, [])
    client.use_socket(FakeSocket(client, 404, '{"message": "Channel not found"}').send, None)

    with pytest.raises(AriNotFound):
        await client.answer("gone")
    await client.hangup("gone")  # a hang-up of a channel gone is no error


async def test_given_a_request_waiting_when_the_socket_closes_then_it_fails_as_unavailable():
    import asyncio

    import pytest

    from ari_app.client import AriUnavailable
    client = client_answering(500, [])
    sent: list[str] = []

    async def send(message: str) -> None:
        sent.append(message)  # Asterisk never answers

    client.use_socket(send, None)
    waiting = asyncio.ensure_future(client.answer("c1"))
    while not sent:
        await asyncio.sleep(0)
    client.drop_socket()

    with pytest.raises(AriUnavailable):
        await waiting
    assert not client.over_socket


async def test_given_the_socket_when_its_own_reader_makes_a_request_then_it_goes_over_http():
    # the reader cannot wait for an answer it is the one to read: HTTP, never a deadlock
    import asyncio

    seen: list[httpx.Request] = []
    client = client_answering(204, seen)
    sock = FakeSocket(client, 204)

    async def reader() -> None:
        await client.answer("c1")

    task = asyncio.ensure_future(reader())
    client.use_socket(sock.send, task)
    await task

    assert [(r.method, r.url.path) for r in seen] == [("POST", "/ari/channels/c1/answer")]
    assert sock.sent == []


async def test_given_the_app_events_when_the_filter_is_set_then_asterisk_gets_an_allow_list():
    import json

    from ari_app.stasis import EVENTS
    seen: list[httpx.Request] = []
    client = client_answering(200, seen, {"name": APP})

    await client.allow_events(EVENTS)

    assert (seen[0].method, seen[0].url.path) == (
        "PUT", f"/ari/applications/{APP}/eventFilter")
    allowed = [t["type"] for t in json.loads(seen[0].content)["allowed"]]
    assert "StasisStart" in allowed and "RESTResponse" in allowed
    assert "ChannelVarset" not in allowed  # half of what Asterisk sent before, read by nobody


async def test_given_the_socket_when_channels_are_added_to_a_bridge_then_that_goes_over_http():
    # Asterisk answers addChannel only once each channel has moved (seconds, for a caller
    # adopted after a restart) and serves a socket's requests one at a time: over the
    # socket, every other call would wait behind it
    seen: list[httpx.Request] = []
    client = client_answering(204, seen)
    sock = FakeSocket(client, 204)
    client.use_socket(sock.send, reader=None)

    await client.create_bridge("c1-bridge")
    await client.add_to_bridge("c1-bridge", ["c1", "c1-desk1"])

    assert [m["uri"] for m in sock.sent] == ["bridges/c1-bridge"]
    assert [(r.method, r.url.path, r.url.params["channel"]) for r in seen] == [
        ("POST", "/ari/bridges/c1-bridge/addChannel", "c1,c1-desk1")]
    # ...given longer than the longest prompt an adopted caller may still be hearing (found
    # under load: 10 s timed out for callers adopted in the 13 s greeting, and the call
    # waited as if Asterisk were down, blocking the queue behind it)
    from ari_app.client import MOVE_TIMEOUT
    from ivr import prompts
    assert seen[0].extensions["timeout"]["read"] == MOVE_TIMEOUT
    assert 2 * prompts.seconds("en/greeting") < MOVE_TIMEOUT


# --- addChannel's own keep-alive HTTP (no transport given: a real socket on loopback) -------


class LoopbackAri:
    """A stand-in for Asterisk's HTTP server on a loopback port: answers each request with
    the next of ``answers`` (raw bytes), records each request's head, and counts
    connections."""

    def __init__(self, answers: list[bytes], close_after_each: bool = False,
                 silent: bool = False) -> None:
        self.answers = answers
        self.close_after_each = close_after_each
        self.silent = silent
        self.heads: list[str] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> AriClient:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return AriClient(f"http://127.0.0.1:{port}", "verifyline", "secret", APP)

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for writer in self.writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            if self.silent:
                await reader.read()  # reads, never answers
            while self.answers:
                self.heads.append((await reader.readuntil(b"\r\n\r\n")).decode())
                writer.write(self.answers.pop(0))
                await writer.drain()
                if self.close_after_each:
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()


NO_CONTENT = b"HTTP/1.1 204 No Content\r\nServer: Asterisk\r\nContent-Length: 0\r\n\r\n"


async def test_given_no_transport_when_channels_are_added_then_one_kept_alive_connection_serves():
    # given Asterisk's HTTP server, answering 204 twice
    ari = LoopbackAri([NO_CONTENT, NO_CONTENT])
    async with ari as client:
        # when two calls' channels are moved, one after the other
        await client.add_to_bridge("c1-bridge", ["c1", "c1-desk1"])
        await client.add_to_bridge("c2-bridge", ["c2"])
        await client.aclose()

    # then both went on one connection, as Asterisk reads them, with our credentials
    assert ari.connections == 1
    first = ari.heads[0].split("\r\n")
    assert first[0] == "POST /ari/bridges/c1-bridge/addChannel?channel=c1%2Cc1-desk1 HTTP/1.1"
    assert "Authorization: Basic dmVyaWZ5bGluZTpzZWNyZXQ=" in first
    assert ari.heads[1].startswith("POST /ari/bridges/c2-bridge/addChannel?channel=c2 ")


async def test_given_a_channel_just_gone_when_added_then_not_found_as_over_httpx():
    body = b'{"message": "Channel not found"}'
    ari = LoopbackAri([b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body)])
    async with ari as client:
        with pytest.raises(AriNotFound):
            await client.add_to_bridge("c1-bridge", ["c1"])
        await client.aclose()


async def test_given_asterisk_closed_the_idle_connection_when_added_then_tried_once_anew():
    # given a server that closes each connection after one answer (as Asterisk does after
    # session_keep_alive), the connection kept from the first request is dead
    ari = LoopbackAri([NO_CONTENT, NO_CONTENT], close_after_each=True)
    async with ari as client:
        await client.add_to_bridge("c1-bridge", ["c1"])
        await asyncio.sleep(0.05)  # the server's close reaches us (at_eof may not be seen)

        # when the next move is asked, then it is answered over a new connection
        await client.add_to_bridge("c2-bridge", ["c2"])
        await client.aclose()
    assert ari.connections == 2
    assert len(ari.heads) == 2


async def test_given_asterisk_never_answers_when_added_then_unavailable_not_a_hang(monkeypatch):
    # given a server that accepts and reads but never answers
    ari = LoopbackAri([], silent=True)
    monkeypatch.setattr("ari_app.client.MOVE_TIMEOUT", 0.2)
    async with ari as client:
        # when a move is asked, then it fails as Asterisk unreachable, within its timeout
        with pytest.raises(AriUnavailable):
            await client.add_to_bridge("c1-bridge", ["c1"])
        await client.aclose()


async def test_given_a_socket_that_never_answers_when_a_request_waits_then_unavailable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # given requests over the websocket, which Asterisk does not answer
    monkeypatch.setattr(client_module, "REQUEST_TIMEOUT", 0.05)
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    rest = client_module._SocketRest(send, None)
    # when one is made, then it fails as Asterisk unreachable once its time is up, and is
    # not left waiting for an answer
    with pytest.raises(AriUnavailable):
        await rest.request("GET", "/channels", None)
    assert len(sent) == 1 and not rest._waiting


async def test_given_a_socket_when_its_answer_comes_then_the_request_returns_its_body() -> None:
    # given a socket that answers each request with a body
    rest: client_module._SocketRest

    async def send(text: str) -> None:
        asked = jsoncodec.loads(text)
        asyncio.get_running_loop().call_soon(rest.answer, {
            "request_id": asked["request_id"], "status_code": 200,
            "message_body": '[{"id": "1796.1"}]'})

    rest = client_module._SocketRest(send, None)
    # when a request is made, then its answer is what it returns, well within the timeout
    assert await rest.request("GET", "/channels", None) == [{"id": "1796.1"}]
    assert not rest._waiting
