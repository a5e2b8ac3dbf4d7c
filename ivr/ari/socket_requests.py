"""ARI REST requests over a WebSocket (Asterisk 20.14, 21.9, 22.4 and later).

Each REST request over HTTP cost the engine about 280 us of CPU in aiohttp
(measured on the 2-core development machine; Asterisk parses the HTTP too),
a dozen of them per routed call. The same request sent as a ``RESTRequest``
message on a WebSocket, answered by a ``RESTResponse`` message on it, cost
about 120 us. So while the request socket (ivr.ari.stream.RequestSocket) is
up, ``AriRest`` sends its requests here; otherwise over HTTP.

Each new socket is tried first with a ping: until Asterisk has answered one
on it, requests keep going over HTTP, so an Asterisk too old for this (or a
proxy that passes only events) costs a warning, not the calls.

Asterisk carries out one socket's requests one after another, and a
request on a channel waits in Asterisk for that channel's own thread: a
variable set on a channel playing a prompt the engine did not stop (one a
dead engine started, found on adoption) waits for the prompt's end. Over
HTTP, each request has a thread of its own and only that call waits; on the
socket, every request of every call behind it waited too (a load test's
engine restart: 40 s of no answers, 29 callers sent to the backup line).
So when the oldest request in flight has had no answer for ``stall_after_s``
the socket counts as held up: requests go over HTTP, and a ping sent behind
the held one brings them back when it is answered, in order, after it.
Held longer than the socket's heartbeat (10 s), the socket is dropped, as
Asterisk answers no WebSocket ping meanwhile: the held requests fail as
``AriUnavailable`` and the socket is connected again. The events have a
socket of their own, which a hold does not touch.

A request that cannot be sent (no socket, not yet proven, closing, or held
up) raises ``NotConnected`` and was not seen by Asterisk, so the caller may
send it over HTTP instead. One sent when the socket drops fails with
``AriUnavailable``: whether Asterisk carried it out is unknown, as with an
HTTP connection reset.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlencode

from ivr.ari.errors import AriUnavailable

log = logging.getLogger(__name__)


class NotConnected(Exception):
    """No socket to send on: the request was not sent."""


class TextSocket(Protocol):
    """What is needed of the WebSocket (aiohttp's ClientWebSocketResponse)."""

    @property
    def closed(self) -> bool: ...

    async def send_str(self, data: str) -> None: ...


class SocketResponse:
    """A RESTResponse: the HTTP status and the body as Asterisk sent it."""

    __slots__ = ("body", "reason", "status")

    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


# Asterisk answers a request on the socket in a millisecond or two; a burst
# of 50 callers keeps the engine from reading answers for tens to hundreds
# of ms (README, Measurements). A second without one is Asterisk holding it.
STALL_AFTER_S = 1.0


class SocketRequests:
    def __init__(self, probe_timeout_s: float = 2.0, stall_after_s: float = STALL_AFTER_S,
                 on_stall: Callable[[], None] | None = None) -> None:
        self._socket: TextSocket | None = None
        self._proven = False  # Asterisk answered a request on this socket
        self._probe_timeout_s = probe_timeout_s
        self._stall_after_s = stall_after_s
        self._on_stall = on_stall
        # In the order sent (ids count up), each with when it was sent: the
        # first is the oldest still unanswered.
        self._pending: dict[str, tuple[asyncio.Future[SocketResponse], float]] = {}
        self._ids = itertools.count(1)
        self._held_up_since: float | None = None  # a held-up socket's ping not answered yet

    @property
    def attached(self) -> bool:
        return self._socket is not None and self._proven and not self._socket.closed

    @property
    def held_up(self) -> bool:
        """Requests go over HTTP until the ping sent behind a held-up one is answered."""
        return self._held_up_since is not None

    @property
    def oldest_wait_s(self) -> float:
        """How long the oldest request in flight has waited for its answer (0 if none)."""
        oldest = next(iter(self._pending.values()), None)
        return 0.0 if oldest is None else time.monotonic() - oldest[1]

    async def attach(self, socket: TextSocket) -> bool:
        """Try `socket` (its messages are being read meanwhile) with a ping;
        True if requests go there from now on, False if they stay on HTTP."""
        self._socket, self._proven, self._held_up_since = socket, False, None
        try:
            await self._send(socket, "GET", "/asterisk/ping", {}, None, self._probe_timeout_s,
                             "GET /asterisk/ping")
        except (NotConnected, AriUnavailable):
            if self._socket is socket:
                log.warning("ARI WebSocket: no answer to a REST request on it (Asterisk older than "
                            "20.14/21.9/22.4?); REST requests stay on HTTP")
            return False
        if self._socket is not socket:
            return False  # closed while the ping was out
        self._proven = True
        return True

    def detach(self) -> None:
        """The socket is gone: requests in flight fail, new ones are not sent here."""
        self._socket, self._proven, self._held_up_since = None, False, None
        pending, self._pending = self._pending, {}
        for future, _ in pending.values():
            if not future.done():
                future.set_exception(AriUnavailable("ARI WebSocket closed with the request in flight"))

    async def request(self, method: str, path: str, query: Mapping[str, str], body: Mapping[str, Any] | None,
                      timeout_s: float, where: str) -> SocketResponse:
        """Send one request (`path` as under /ari, with its leading slash); its response.

        NotConnected if it could not be sent; AriUnavailable if it was sent
        but no response came within `timeout_s` or the socket closed first.
        """
        socket = self._socket
        if socket is None or not self._proven or await self._is_held_up(socket):
            raise NotConnected
        return await self._send(socket, method, path, query, body, timeout_s, where)

    async def _is_held_up(self, socket: TextSocket) -> bool:
        if self._held_up_since is not None:
            return True
        if self.oldest_wait_s < self._stall_after_s:
            return False
        self._held_up_since = time.monotonic()
        log.warning("ARI WebSocket: a request unanswered for %g s holds up the ones behind it; "
                    "requests go over HTTP until the socket answers again", self._stall_after_s)
        if self._on_stall is not None:
            self._on_stall()
        # Not awaited, and no timeout: it is answered when the held request
        # is, minutes later if need be (HTTP serves meanwhile), or failed
        # when the socket goes (detach).
        try:
            _, probe = await self._post(socket, "GET", "/asterisk/ping", {}, None)
        except NotConnected:
            return True  # closing: detach() follows and clears the hold-up
        probe.add_done_callback(lambda answer: self._answered_again(socket, answer))
        return True

    def _answered_again(self, socket: TextSocket, probe: asyncio.Future[SocketResponse]) -> None:
        if probe.cancelled() or probe.exception() is not None:
            return
        if self._socket is socket and self._held_up_since is not None:
            log.info("ARI WebSocket: answering again after %.1f s; requests back on it",
                     time.monotonic() - self._held_up_since)
            self._held_up_since = None

    async def _send(self, socket: TextSocket, method: str, path: str, query: Mapping[str, str],
                    body: Mapping[str, Any] | None, timeout_s: float, where: str) -> SocketResponse:
        request_id, future = await self._post(socket, method, path, query, body)
        try:
            # Not asyncio.wait_for: before Python 3.12 it returns the
            # future's outcome when that comes in the same loop turn as
            # a cancel of this task (the engine stopping closes the
            # socket under its requests), and the cancel is lost.
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError:
            raise AriUnavailable(f"{where}: no response over the ARI WebSocket within {timeout_s:g} s") from None
        finally:
            self._pending.pop(request_id, None)

    async def _post(self, socket: TextSocket, method: str, path: str, query: Mapping[str, str],
                    body: Mapping[str, Any] | None) -> tuple[str, asyncio.Future[SocketResponse]]:
        """Send a request: its id, and the future its response completes (pending until then)."""
        if socket.closed:
            raise NotConnected
        request_id = str(next(self._ids))
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id, "method": method,
                                   "uri": path.lstrip("/") + (f"?{urlencode(query)}" if query else "")}
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(body)
        future: asyncio.Future[SocketResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (future, time.monotonic())
        try:
            await socket.send_str(json.dumps(message))
        except (ConnectionError, RuntimeError) as exc:
            # aiohttp refuses to send on a closing socket: nothing reached Asterisk.
            self._pending.pop(request_id, None)
            raise NotConnected from exc
        except BaseException:
            self._pending.pop(request_id, None)
            raise
        return request_id, future

    def resolve(self, message: Mapping[str, Any]) -> None:
        """A RESTResponse read from the socket: complete its request."""
        future, _ = self._pending.pop(str(message.get("request_id", "")), (None, 0.0))
        if future is None or future.done():
            # Timed out meanwhile, or not ours: nobody waits for it.
            log.debug("ARI WebSocket: response to no pending request; skipped")
            return
        status = message.get("status_code")
        body = message.get("message_body")
        if not isinstance(status, int):
            future.set_exception(AriUnavailable("ARI WebSocket: response without a status code"))
            return
        future.set_result(SocketResponse(status, str(message.get("reason_phrase") or ""),
                                         body if isinstance(body, str) else ""))
