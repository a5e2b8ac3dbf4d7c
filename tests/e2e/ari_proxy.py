"""A man in the middle between the engine and the sandbox's ARI.

REST requests and the WebSockets (the events, and the request socket the
engine sends REST requests on) pass through unchanged, so the engine runs
against the real Asterisk; ``inject`` slips extra text messages into the
event stream, in order with the real events, which is the only way to feed
the engine malformed events by the path real ones take. ``fail`` answers
chosen requests with an error status in Asterisk's stead, as a busy or
restarting Asterisk does, whether they come over HTTP or on the WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from ivr.ari.stream import requests_app

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade"}


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    status: int
    left: int  # matching requests still to fail


class AriProxy:
    def __init__(self, upstream: str) -> None:
        self._upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._engines: list[web.WebSocketResponse] = []
        self._lock = asyncio.Lock()  # injected and forwarded messages never interleave mid-send
        self.url = ""
        self.opened: Counter[str] = Counter()  # WebSockets the engine opened through us, by application
        self.socket_requests = 0  # REST requests the engine sent on them
        self._faults: list[Fault] = []
        self.faulted: list[str] = []  # "METHOD /ari/path" of each request failed by ``fail``

    async def start(self) -> str:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/ari/events", self._events)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def inject(self, messages: list[str]) -> None:
        async with self._lock:
            for ws in self._engines:
                for message in messages:
                    await ws.send_str(message)

    def fail(self, method: str, path: str, *, status: int = 503, times: int = 1) -> None:
        """Answer the next `times` `method` requests whose path (``/ari/...``,
        without the query) matches the regex `path` with `status`, not passing them on."""
        self._faults.append(Fault(method, re.compile(path), status, times))

    def _fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fault.left > 0 and fault.method == method and fault.path.search(path):
                fault.left -= 1
                self.faulted.append(f"{method} {path}")
                return fault
        return None

    async def _events(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        downstream = web.WebSocketResponse()
        await downstream.prepare(request)
        headers = {"Authorization": request.headers.get("Authorization", "")}
        app = request.query.get("app", "")
        # Injected messages go down the events sockets only, not the request socket.
        events = not app.endswith(requests_app(""))
        async with self._session.ws_connect(self._upstream + request.path_qs, headers=headers) as upstream:
            self.opened[app] += 1
            if events:
                self._engines.append(downstream)
            engine_gone = asyncio.create_task(self._close_when_gone(downstream, upstream))
            try:
                async for message in upstream:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    async with self._lock:
                        await downstream.send_str(message.data)
            finally:
                if events:
                    self._engines.remove(downstream)
                engine_gone.cancel()
        await downstream.close()
        return downstream

    async def _close_when_gone(self, downstream: web.WebSocketResponse,
                               upstream: aiohttp.ClientWebSocketResponse) -> None:
        # The engine's REST requests over the socket, passed on; this ends when it leaves.
        async for message in downstream:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.socket_requests += 1
                request = json.loads(message.data)
                uri = str(request.get("uri", "")).split("?", 1)[0]
                fault = self._fault_for(str(request.get("method")), f"/ari/{uri}")
                if fault is None:
                    await upstream.send_str(message.data)
                    continue
                answer = {"type": "RESTResponse", "request_id": request.get("request_id"),
                          "status_code": fault.status, "reason_phrase": "Injected fault",
                          "message_body": json.dumps({"message": "injected fault"})}
                async with self._lock:
                    await downstream.send_str(json.dumps(answer))
        await upstream.close()

    async def _rest(self, request: web.Request) -> web.Response:
        assert self._session is not None
        fault = self._fault_for(request.method, request.path)
        if fault is not None:
            return web.json_response({"message": "injected fault"}, status=fault.status)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(request.method, self._upstream + request.path_qs, headers=headers,
                                         data=await request.read()) as response:
            body = await response.read()
            kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=response.status, body=body, headers=kept)
