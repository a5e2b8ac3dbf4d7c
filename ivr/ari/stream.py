"""The ARI event WebSocket, kept open for as long as the engine runs.

Asterisk sends our application's events, in order, over one WebSocket. If it
drops (Asterisk restarted, network blip), events sent meanwhile are lost for
good, so after every (re)connection the engine's ``on_connected``
reconciliation pass runs (it compares ARI's channels and bridges with what
the engine believes) before any further event is handed on. The messages
that arrive meanwhile wait in the socket's buffer, in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

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


class EventStream:
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
                 requests: SocketRequests | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._session = session
        self._url = events_url(base_url, app)
        self._headers = {"Authorization": aiohttp.encode_basic_auth(username, password)}
        self._handler = handler
        self._on_connected = on_connected
        self._on_state = on_state
        self._on_skipped = on_skipped
        self._backoff = backoff or Backoff()
        # A connection that lived this long resets the backoff; one that
        # drops at once (e.g. auth accepted, then app replaced) does not.
        self._healthy_after_s = healthy_after_s
        self._heartbeat_s = heartbeat_s
        self._connect_timeout_s = connect_timeout_s
        self._sleep = sleep
        self._connected = False
        # REST requests over this socket (ivr.ari.socket_requests), once reconciled.
        self._requests = requests

    @property
    def connected(self) -> bool:
        return self._connected

    async def run(self) -> None:
        """Connect, deliver, reconnect; returns only by cancellation."""
        try:
            while True:
                if await self._connect_once() >= self._healthy_after_s:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                log.info("ARI events: reconnecting in %.2fs", delay)
                await self._sleep(delay)
        finally:
            self._set_connected(False)

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
                log.info("ARI events: connected to %s", self._url.with_query(None))
                self._set_connected(True)
                if await self._reconcile():
                    # Only now: the pump reads the responses. Reconciliation's own requests went over HTTP.
                    trial = None
                    if self._requests is not None:
                        trial = asyncio.create_task(self._requests.attach(ws), name="ari-socket-trial")
                    try:
                        await self._pump(ws)
                    finally:
                        if trial is not None:
                            trial.cancel()
                    log.warning("ARI events: connection closed (close code %s)", ws.close_code)
        except aiohttp.WSServerHandshakeError as exc:
            # 401 here is a wrong ARI password; the message names the status only.
            log.error("ARI events: WebSocket handshake refused with HTTP %s", exc.status)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            log.warning("ARI events: connection failed: %s", type(exc).__name__)
        finally:
            if self._requests is not None:
                self._requests.detach()
            self._set_connected(False)
        return 0.0 if connected_at is None else time.monotonic() - connected_at

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
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await self._deliver(message.data)
            elif message.type == aiohttp.WSMsgType.ERROR:
                log.warning("ARI events: WebSocket error: %s", type(ws.exception()).__name__)
                return
            else:
                log.debug("ARI events: ignoring %s message", message.type.name)

    async def _deliver(self, text: str) -> None:
        # Never log the payload: it holds caller numbers.
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            log.warning("ARI events: skipping a message that is not JSON (%d chars)", len(text))
            self._skipped("not_json")
            return
        if self._requests is not None and isinstance(raw, dict) and raw.get("type") == "RESTResponse":
            self._requests.resolve(raw)
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
