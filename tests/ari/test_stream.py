"""EventStream and RequestSocket against a stand-in ARI WebSocket that drops and refuses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.ari.errors import AriUnavailable
from ivr.ari.events import ChannelDtmfReceived, Event, StasisStart, UnknownEvent
from ivr.ari.socket_requests import NotConnected, SocketRequests
from ivr.ari.stream import Backoff, EventStream, RequestSocket, events_url

from .conftest import PASSWORD, USERNAME, load_fixture
from .waiting import TIMEOUT_S, Journal

STASIS_START = json.dumps(load_fixture("stasis_start"))
DTMF = json.dumps(load_fixture("channel_dtmf_received"))
TALKING = json.dumps(load_fixture("channel_talking_started"))
CALLER_NUMBER = "+15555550123"


@dataclass
class Script:
    """What the server does on one connection: send these, then close or hold."""

    messages: list[str | bytes] = field(default_factory=list)
    hold: bool = True
    status: int | None = None  # refuse the handshake with this HTTP status


@dataclass
class FakeEvents:
    scripts: list[Script] = field(default_factory=list)
    connections: Journal = field(default_factory=Journal)
    sent: Journal = field(default_factory=Journal)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        script = self.scripts.pop(0) if self.scripts else Script()
        self.connections.add((dict(request.query), request.headers.get("Authorization")))
        if script.status is not None:
            return web.Response(status=script.status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for message in script.messages:
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
        self.sent.add(len(self.connections.items))
        if script.hold:
            async for _ in ws:
                pass
        await ws.close()
        return ws


@pytest.fixture
async def events_server() -> AsyncIterator[tuple[FakeEvents, TestServer]]:
    fake = FakeEvents()
    app = web.Application()
    app.router.add_get("/ari/events", fake.handle)
    server = TestServer(app)
    await server.start_server()
    try:
        yield fake, server
    finally:
        await server.close()


class Harness:
    """Runs one EventStream and records everything it reports."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, backoff: Backoff | None = None,
                 healthy_after_s: float = 10.0, connect_timeout_s: float = 5.0) -> None:
        self.log = Journal()       # "connected" marks and event types, in order
        self.states = Journal()
        self.delays = Journal()
        self.gate: asyncio.Event | None = None
        self.fail_reconcile = 0
        self.raise_on: set[str] = set()
        self.stream = EventStream(
            session, base_url, USERNAME, PASSWORD, "hotline", self.handler,
            on_connected=self.on_connected, on_state=self.states.add,
            backoff=backoff or Backoff(0.01, 0.05, rng=lambda: 1.0), healthy_after_s=healthy_after_s,
            connect_timeout_s=connect_timeout_s, sleep=self.sleep)
        self.events: list[Event] = []

    async def handler(self, event: Event) -> None:
        self.events.append(event)
        self.log.add(event.type)
        if event.type in self.raise_on:
            raise ValueError("bug in the app")

    async def on_connected(self) -> None:
        self.log.add("connected")
        if self.fail_reconcile:
            self.fail_reconcile -= 1
            raise RuntimeError("ARI went away during reconciliation")
        if self.gate is not None:
            await self.gate.wait()

    async def sleep(self, delay: float) -> None:
        self.delays.add(delay)
        await asyncio.sleep(0)


def running(harness: Harness) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    return running_task(harness.stream.run(), "event-stream")


@contextlib.asynccontextmanager
async def running_task(coro: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """`coro` running as a task, cancelled and awaited on exit."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT_S)


def base_url(server: TestServer) -> str:
    return str(server.make_url("/ari"))


def test_events_url_subscribes_to_our_app_only() -> None:
    assert str(events_url("https://pbx.example:8089/ari/", "hotline")) == \
        "wss://pbx.example:8089/ari/events?app=hotline&subscribeAll=false"


def test_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.1, 5.0, rng=lambda: 1.0)

    delays = [backoff.next_delay() for _ in range(8)]
    backoff.reset()

    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert backoff.next_delay() == pytest.approx(0.1)


def test_backoff_jitter_stays_within_half_and_all_of_the_step() -> None:
    low = Backoff(1.0, 5.0, rng=lambda: 0.0)

    assert low.next_delay() == pytest.approx(0.5)
    assert low.next_delay() == pytest.approx(1.0)


async def test_stream_reconnects_after_a_drop_and_reconciles_again(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession) -> None:
    fake, server = events_server
    fake.scripts = [Script([STASIS_START], hold=False), Script([DTMF])]
    harness = Harness(session, base_url(server))

    async with running(harness):
        log = await harness.log.wait_len(4)
        states = await harness.states.wait_len(3)

        assert harness.stream.connected
    assert log == ["connected", "StasisStart", "connected", "ChannelDtmfReceived"]
    assert states[:3] == [True, False, True]
    assert harness.delays.items == [pytest.approx(0.01)]
    assert isinstance(harness.events[0], StasisStart)
    assert isinstance(harness.events[1], ChannelDtmfReceived)
    query, authorization = fake.connections.items[0]
    assert query == {"app": "hotline", "subscribeAll": "false"}
    assert authorization == aiohttp.encode_basic_auth(USERNAME, PASSWORD)
    assert harness.states.items[-1] is False
    assert not harness.stream.connected


async def test_no_event_is_delivered_before_reconciliation_finishes(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession) -> None:
    fake, server = events_server
    fake.scripts = [Script([STASIS_START, DTMF])]
    harness = Harness(session, base_url(server))
    harness.gate = asyncio.Event()

    async with running(harness):
        await harness.log.wait_for("connected")
        await fake.sent.wait_len(1)
        assert harness.log.items == ["connected"]

        harness.gate.set()

        assert await harness.log.wait_len(3) == ["connected", "StasisStart", "ChannelDtmfReceived"]


async def test_failed_reconciliation_drops_the_connection_and_retries(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession) -> None:
    fake, server = events_server
    fake.scripts = [Script([STASIS_START]), Script([DTMF])]
    harness = Harness(session, base_url(server))
    harness.fail_reconcile = 1

    async with running(harness):
        log = await harness.log.wait_len(3)

    # The first connection's StasisStart is never handed on: the next
    # reconciliation pass picks that call up from ARI's channel list.
    assert log == ["connected", "connected", "ChannelDtmfReceived"]
    assert len(fake.connections.items) == 2


async def test_malformed_messages_are_skipped_without_logging_payloads(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    broken = load_fixture("stasis_start")
    del broken["channel"]["id"]
    fake, server = events_server
    fake.scripts = [Script(["{not json " + CALLER_NUMBER, b"\x00binary", json.dumps(broken), TALKING, DTMF])]
    harness = Harness(session, base_url(server))

    with caplog.at_level(logging.DEBUG, logger="ivr.ari.stream"):
        async with running(harness):
            log = await harness.log.wait_len(3)

    assert log == ["connected", "ChannelTalkingStarted", "ChannelDtmfReceived"]
    assert isinstance(harness.events[0], UnknownEvent)
    assert "malformed StasisStart event" in caplog.text
    assert "not JSON" in caplog.text
    assert CALLER_NUMBER not in caplog.text


async def test_a_failing_handler_does_not_stop_the_stream(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    fake, server = events_server
    fake.scripts = [Script([STASIS_START, DTMF])]
    harness = Harness(session, base_url(server))
    harness.raise_on.add("StasisStart")

    async with running(harness):
        log = await harness.log.wait_len(3)

    assert log == ["connected", "StasisStart", "ChannelDtmfReceived"]
    assert "handler failed on StasisStart" in caplog.text


def refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/ari"


async def test_unreachable_asterisk_is_retried_with_growing_capped_delays(
        session: aiohttp.ClientSession) -> None:
    harness = Harness(session, refused_url(), backoff=Backoff(0.1, 0.5, rng=lambda: 1.0))

    async with running(harness):
        delays = await harness.delays.wait_len(5)

    assert delays[:5] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    assert harness.log.items == []
    assert harness.states.items == []


async def test_a_handshake_that_never_comes_is_given_up_and_retried(
        session: aiohttp.ClientSession, caplog) -> None:
    # An Asterisk that accepts the connection and then says nothing (hung,
    # or a proxy in between): each try ends at connect_timeout_s.
    accepted = Journal()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.add(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    harness = Harness(session, f"http://127.0.0.1:{port}/ari", connect_timeout_s=0.1)
    try:
        async with running(harness) as task:
            await accepted.wait_len(2)
        assert task.cancelled()  # stopped while connecting, it ends
    finally:
        server.close()
    assert harness.log.items == [] and harness.states.items == []
    assert "ARI events: connection failed: TimeoutError" in caplog.text


async def test_refused_credentials_are_retried_and_never_logged(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    fake, server = events_server
    fake.scripts = [Script(status=401), Script([DTMF])]
    harness = Harness(session, base_url(server))

    async with running(harness):
        log = await harness.log.wait_len(2)

    assert log == ["connected", "ChannelDtmfReceived"]
    assert "handshake refused with HTTP 401" in caplog.text
    assert PASSWORD not in caplog.text


async def test_a_healthy_connection_resets_the_backoff(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession) -> None:
    fake, server = events_server
    fake.scripts = [Script(hold=False), Script(hold=False), Script(hold=False), Script()]
    harness = Harness(session, base_url(server), healthy_after_s=0.0)

    async with running(harness):
        delays = await harness.delays.wait_len(3)

    assert delays == pytest.approx([0.01, 0.01, 0.01])


async def test_short_lived_connections_keep_backing_off(
        events_server: tuple[FakeEvents, TestServer], session: aiohttp.ClientSession) -> None:
    fake, server = events_server
    fake.scripts = [Script(hold=False), Script(hold=False), Script(hold=False), Script()]
    harness = Harness(session, base_url(server), healthy_after_s=60.0)

    async with running(harness):
        delays = await harness.delays.wait_len(3)

    assert delays == pytest.approx([0.01, 0.02, 0.04])



# -- RequestSocket ------------------------------------------------------------


@dataclass
class FakeRequests:
    """Asterisk's side of a request socket: answers each RESTRequest with its
    URI echoed, after the junk an application may also be sent. A request
    for ``drop`` closes the connection unanswered, once."""

    junk: list[str] = field(default_factory=lambda: ["not json", json.dumps({"type": "ApplicationRegistered"})])
    drop: str | None = None
    connections: Journal = field(default_factory=Journal)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.connections.add(dict(request.query))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for message in self.junk:
            await ws.send_str(message)
        async for message in ws:
            asked = json.loads(message.data)
            if asked["uri"] == self.drop:
                self.drop = None
                break
            await ws.send_str(json.dumps({
                "type": "RESTResponse", "request_id": asked["request_id"], "status_code": 200,
                "reason_phrase": "OK", "message_body": json.dumps({"uri": asked["uri"]})}))
        await ws.close()
        return ws


async def served(fake: FakeRequests) -> TestServer:
    app = web.Application()
    app.router.add_get("/ari/events", fake.handle)
    server = TestServer(app)
    await server.start_server()
    return server


async def until_attached(requests: SocketRequests) -> None:
    async def attached() -> None:
        while not requests.attached:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(attached(), TIMEOUT_S)


@contextlib.asynccontextmanager
async def request_socket(session: aiohttp.ClientSession, fake: FakeRequests,
                         requests: SocketRequests) -> AsyncIterator[Journal]:
    """A RequestSocket to `fake`, running; the journal of its reconnection delays."""
    server = await served(fake)
    delays = Journal()

    async def sleep(delay: float) -> None:
        delays.add(delay)
        await asyncio.sleep(0)

    socket = RequestSocket(session, base_url(server), USERNAME, PASSWORD, "hotline", requests,
                           backoff=Backoff(0.01, 0.05, rng=lambda: 1.0), sleep=sleep)
    try:
        async with running_task(socket.run(), "request-socket"):
            yield delays
    finally:
        await server.close()


async def test_requests_go_on_a_socket_of_their_own_application(session: aiohttp.ClientSession,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    fake, requests = FakeRequests(), SocketRequests()
    caplog.set_level(logging.DEBUG, logger="ivr.ari.stream")
    async with request_socket(session, fake, requests):
        await until_attached(requests)
        response = await requests.request("GET", "/channels", {}, None, TIMEOUT_S, "GET /channels")

    assert response.status == 200 and response.json() == {"uri": "channels"}
    # An application no channel enters: the engine's own is left to the events socket.
    assert fake.connections.items == [{"app": "hotline-requests", "subscribeAll": "false"}]
    assert "skipping a message that is not JSON (8 chars)" in caplog.text
    assert "skipping a message that is no RESTResponse" in caplog.text
    assert not requests.attached  # stopping gave the socket up


async def test_a_dropped_request_socket_fails_its_requests_and_connects_again(
        session: aiohttp.ClientSession) -> None:
    fake, requests = FakeRequests(drop="channels/held/variable"), SocketRequests()
    async with request_socket(session, fake, requests) as delays:
        await until_attached(requests)
        with pytest.raises(AriUnavailable):
            await requests.request("POST", "/channels/held/variable", {}, None, TIMEOUT_S, "set_var")
        with pytest.raises(NotConnected):  # until the new socket answers its trial: HTTP
            await requests.request("GET", "/channels", {}, None, TIMEOUT_S, "GET /channels")

        await fake.connections.wait_len(2)
        await until_attached(requests)
        response = await requests.request("GET", "/channels", {}, None, TIMEOUT_S, "GET /channels")

    assert response.status == 200
    assert delays.items == [pytest.approx(0.01)]
