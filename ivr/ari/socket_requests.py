"""ARI REST requests over the events WebSocket (Asterisk 20.14, 21.9, 22.4 and later).

Each REST request over HTTP cost the engine about 280 us of CPU in aiohttp
(measured on the 2-core development machine; Asterisk parses the HTTP too),
a dozen of them per routed call. The same request sent as a ``RESTRequest``
message on the events WebSocket, answered by a ``RESTResponse`` message on
it, cost about 120 us. So while the events socket is up and reconciled,
``AriRest`` sends its requests here; otherwise over HTTP.

The socket carries responses in order with events, so the stream hands this
channel the socket only once its reconciliation pass is over and events are
being read: a request sent earlier would wait for a response nobody reads.
Asterisk must also be allowed to send ``RESTResponse`` through the
application's event filter (``ivr.engine.EVENTS``).

Each new socket is tried first with a ping: until Asterisk has answered one
on it, requests keep going over HTTP, so an Asterisk too old for this (or a
proxy that passes only events) costs a warning, not the calls.

A request that cannot be sent (no socket, not yet proven, or closing) raises
``NotConnected`` and was not seen by Asterisk, so the caller may send it over
HTTP instead. One sent when the socket drops fails with ``AriUnavailable``:
whether Asterisk carried it out is unknown, as with an HTTP connection reset.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Mapping
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

    __slots__ = ("status", "reason", "body")

    def __init__(self, status: int, reason: str, body: str) -> None:
        self.status = status
        self.reason = reason
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SocketRequests:
    def __init__(self, probe_timeout_s: float = 2.0) -> None:
        self._socket: TextSocket | None = None
        self._proven = False  # Asterisk answered a request on this socket
        self._probe_timeout_s = probe_timeout_s
        self._pending: dict[str, asyncio.Future[SocketResponse]] = {}
        self._ids = itertools.count(1)

    @property
    def attached(self) -> bool:
        return self._socket is not None and self._proven and not self._socket.closed

    async def attach(self, socket: TextSocket) -> bool:
        """Try `socket` (its messages are being read meanwhile) with a ping;
        True if requests go there from now on, False if they stay on HTTP."""
        self._socket, self._proven = socket, False
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
        self._socket, self._proven = None, False
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(AriUnavailable("ARI WebSocket closed with the request in flight"))

    async def request(self, method: str, path: str, query: Mapping[str, str], body: Mapping[str, Any] | None,
                      timeout_s: float, where: str) -> SocketResponse:
        """Send one request (`path` as under /ari, with its leading slash); its response.

        NotConnected if it could not be sent; AriUnavailable if it was sent
        but no response came within `timeout_s` or the socket closed first.
        """
        socket = self._socket
        if socket is None or not self._proven:
            raise NotConnected
        return await self._send(socket, method, path, query, body, timeout_s, where)

    async def _send(self, socket: TextSocket, method: str, path: str, query: Mapping[str, str],
                    body: Mapping[str, Any] | None, timeout_s: float, where: str) -> SocketResponse:
        if socket.closed:
            raise NotConnected
        request_id = str(next(self._ids))
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id, "method": method,
                                   "uri": path.lstrip("/") + (f"?{urlencode(query)}" if query else "")}
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(body)
        future: asyncio.Future[SocketResponse] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await socket.send_str(json.dumps(message))
            except (ConnectionError, RuntimeError) as exc:
                # aiohttp refuses to send on a closing socket: nothing reached Asterisk.
                raise NotConnected from exc
            try:
                # Not asyncio.wait_for: before Python 3.12 it returns the
                # future's outcome when that comes in the same loop turn as
                # a cancel of this task (the engine stopping closes the
                # socket under its requests), and the cancel is lost.
                async with asyncio.timeout(timeout_s):
                    return await future
            except TimeoutError:
                raise AriUnavailable(f"{where}: no response over the ARI WebSocket within {timeout_s:g} s") \
                    from None
        finally:
            self._pending.pop(request_id, None)

    def resolve(self, message: Mapping[str, Any]) -> None:
        """A RESTResponse read from the socket: complete its request."""
        future = self._pending.pop(str(message.get("request_id", "")), None)
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
