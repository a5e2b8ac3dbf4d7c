"""The ARI WebSockets, kept open for as long as the engine runs.

Two sockets, each reconnected forever with backoff:

- ``EventStream``: Asterisk sends our application's events, in order. If it
  drops (Asterisk restarted, network blip), events sent meanwhile are lost
  for good, so after every (re)connection the engine's ``on_connected``
  reconciliation pass runs (it compares ARI's channels and bridges with
  what the engine believes) before any further event is handed on. The
  messages that arrive meanwhile wait in the socket's buffer, in order.
- ``RequestSocket``: the engine's REST requests (ivr.ari.socket_requests).
  Asterisk carries out one socket's requests one after another, holds some
  of them while their channel plays a prompt or sends digits, and answers
  no WebSocket ping while it holds one. On the events socket, a hold longer
  than the heartbeat dropped it: events lost, the application unregistered
  until it was back (new callers met the dialplan's fallback), a
  reconciliation pass. On a socket of its own, the same hold drops only
  that socket, and the events never wait behind a request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from yarl import URL

from ivr.ari.errors import MalformedEvent
from ivr.ari.events import Event, parse_event
from ivr.ari.socket_requests import SocketRequests

log = logging.getLogger(__name__)


class Backoff:
    """Exponential backoff with jitter: initial, doubling, up to a cap.

    Each delay is drawn between half and all of the current step, so that
    engines restarted together do not reconnect in lockstep.
    """

    def __init__(self, initial_s: float = 0.1, cap_s: float = 5.0, *,
                 rng: Callable[[], float] = random.random) -> None:
        self._initial_s = initial_s
        self._cap_s = cap_s
        self._rng = rng
        self._step_s = initial_s

    def next_delay(self) -> float:
        delay = self._step_s * (0.5 + 0.5 * self._rng())
        self._step_s = min(self._cap_s, self._step_s * 2)
        return delay

    def reset(self) -> None:
        self._step_s = self._initial_s


def events_url(base_url: str, app: str) -> URL:
    """The events WebSocket URL for an ARI base URL like http://host:8088/ari."""
    url = URL(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(url.scheme, url.scheme)
    return url.with_scheme(scheme).joinpath("events").with_query(app=app, subscribeAll="false")


def requests_app(app: str) -> str:
    """The application the request socket registers: Asterisk opens a
    WebSocket only for one. No channel ever enters it."""
    return f"{app}-requests"


class KeptSocket:
    """An ARI WebSocket connected, served by ``_serve`` until it closes, and
    connected again after a backoff, until cancelled."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, username: str, password: str, app: str, *,
                 name: str, backoff: Backoff | None, healthy_after_s: float, heartbeat_s: float,
                 connect_timeout_s: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._session = session
        self._url = events_url(base_url, app)
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._name = name  # starts each log line: "ARI events", "ARI requests"
        self._backoff = backoff or Backoff()
        # A connection that lived this long resets the backoff; one that
        # drops at once (e.g. auth accepted, then app replaced) does not.
        self._healthy_after_s = healthy_after_s
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._sleep = sleep

    async def run(self) -> None:
        """Connect, serve, reconnect; returns only by cancellation."""
        try:
            while True:
                if await self._connect_once() >= self._healthy_after_s:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                log.info("%s: reconnecting in %.2fs", self._name, delay)
                await self._sleep(delay)
        finally:
            self._closed()

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The connection's life, up to its close."""
        raise NotImplementedError

    def _closed(self) -> None:
        """The connection is gone (or was never made)."""

    async def _texts(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[str]:
        """The socket's text messages, until it closes or fails."""
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                yield message.data
            elif message.type == aiohttp.WSMsgType.ERROR:
                log.warning("%s: WebSocket error: %s", self._name, type(ws.exception()).__name__)
                return
            else:
                log.debug("%s: ignoring %s message", self._name, message.type.name)

    async def _connect_once(self) -> float:
        """One connection's lifetime: how long it was up (0 if never)."""
        connected_at = None
        try:
            # Bounded here, not by the session's timeout, which may be long.
            # asyncio.timeout, not wait_for: a stop (cancel) that comes as the
            # connection is made must end this task, not be lost (Python 3.11).
            async with asyncio.timeout(self._connect_timeout_s):
                ws = await self._session.ws_connect(self._url, headers=self._headers,
                                                    heartbeat=self._heartbeat_s)
            async with ws:
                connected_at = time.monotonic()
                log.info("%s: connected to %s", self._name, self._url.with_query(None))
                await self._serve(ws)
                log.warning("%s: connection closed (close code %s)", self._name, ws.close_code)
        except aiohttp.WSServerHandshakeError as exc:
            # 401 here is a wrong ARI password; the message names the status only.
            log.error("%s: WebSocket handshake refused with HTTP %s", self._name, exc.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("%s: connection failed: %s", self._name, type(exc).__name__)
        finally:
            self._closed()
        return 0.0 if connected_at is None else time.monotonic() - connected_at


class EventStream(KeptSocket):
    """Delivers ARI events to ``handler`` until cancelled, reconnecting forever.

    ``handler`` must return quickly (the dispatcher only enqueues): while it
    runs, no further event is read. ``on_connected`` runs after each
    successful connection, before further events; if it fails, the
    connection is dropped and retried, since delivering events on top of an
    unreconciled state would be worse than waiting. ``on_state`` reports
    connected/disconnected transitions (for a metric); ``on_skipped`` the
    reason for each message skipped here (not_json, malformed, handler_error).
    """

    def __init__(self, session: aiohttp.ClientSession, base_url: str, username: str, password: str, app: str,
                 handler: Callable[[Event], Awaitable[None]], *,
                 on_connected: Callable[[], Awaitable[None]] | None = None,
                 on_state: Callable[[bool], None] | None = None,
                 on_skipped: Callable[[str], None] | None = None,
                 backoff: Backoff | None = None,
                 healthy_after_s: float = 10.0,
                 heartbeat_s: float = 10.0,
                 connect_timeout_s: float = 5.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(session, base_url, username, password, app, name="ARI events", backoff=backoff,
                         healthy_after_s=healthy_after_s, heartbeat_s=heartbeat_s,
                         connect_timeout_s=connect_timeout_s, sleep=sleep)
        self._handler = handler
        self._on_connected = on_connected
        self._on_state = on_state
        self._on_skipped = on_skipped
        self._connected = False

    @property
    def connected(self) -> bool:
        return self._connected

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._set_connected(True)
        if await self._reconcile():
            await self._pump(ws)

    def _closed(self) -> None:
        self._set_connected(False)

    async def _reconcile(self) -> bool:
        if self._on_connected is None:
            return True
        try:
            await self._on_connected()
        except Exception:
            log.exception("ARI events: reconciliation after connecting failed; dropping the connection")
            return False
        return True

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for text in self._texts(ws):
            await self._deliver(text)

    async def _deliver(self, text: str) -> None:
        # Never log the payload: it holds caller numbers.
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            log.warning("ARI events: skipping a message that is not JSON (%d chars)", len(text))
            self._skipped("not_json")
            return
        try:
            event = parse_event(raw)
        except MalformedEvent as exc:
            # Field names and pydantic's words only, but as many as the message had: bounded.
            log.warning("ARI events: skipping %.300s", exc)
            self._skipped("malformed")
            return
        try:
            await self._handler(event)
        except Exception:
            log.exception("ARI events: handler failed on %s for channels %s", event.type, event.channel_ids())
            self._skipped("handler_error")

    def _skipped(self, reason: str) -> None:
        if self._on_skipped is not None:
            self._on_skipped(reason)

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if self._on_state is not None:
            try:
                self._on_state(connected)
            except Exception:
                log.exception("ARI events: on_state callback failed")


class RequestSocket(KeptSocket):
    """The socket ``requests`` sends REST requests on, for application
    ``requests_app(app)``: tried with a ping on each connection, given up
    (its requests in flight failed, new ones over HTTP) when it closes."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, username: str, password: str, app: str,
                 requests: SocketRequests, *,
                 backoff: Backoff | None = None,
                 healthy_after_s: float = 10.0,
                 heartbeat_s: float = 10.0,
                 connect_timeout_s: float = 5.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        super().__init__(session, base_url, username, password, requests_app(app), name="ARI requests",
                         backoff=backoff, healthy_after_s=healthy_after_s, heartbeat_s=heartbeat_s,
                         connect_timeout_s=connect_timeout_s, sleep=sleep)
        self._requests = requests

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        # The trial's ping is answered through the pump below.
        trial = asyncio.create_task(self._requests.attach(ws), name="ari-socket-trial")
        try:
            await self._pump(ws)
        finally:
            trial.cancel()

    def _closed(self) -> None:
        self._requests.detach()

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for text in self._texts(ws):
            try:
                raw = json.loads(text)
            except (ValueError, RecursionError):
                log.warning("ARI requests: skipping a message that is not JSON (%d chars)", len(text))
                continue
            if isinstance(raw, dict) and raw.get("type") == "RESTResponse":
                self._requests.resolve(raw)
            else:
                # Asterisk's own notices to the application; no channel is ever in it.
                log.debug("ARI requests: skipping a message that is no RESTResponse")
