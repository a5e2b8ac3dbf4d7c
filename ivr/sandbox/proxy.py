"""A loopback TCP relay that fault tests and the load tool can break on purpose.

The engine is pointed at the relay instead of Redis or ARI; the relay can
then drop the connections it carries and refuse new ones, which is what a
network fault looks like to the engine (Redis out of reach with its data
intact, the ARI events WebSocket cut while Asterisk runs on), or hold back
one reply (a server answering late). Connections are told apart by the
bytes the client sends: a connection is refused, or cut, when its first
request or a later one holds a blocked marker (aiohttp opens a WebSocket on
an idle kept-alive HTTP connection when it has one, whose first request was
some other). So ``block(b"/ari/events")`` cuts the
WebSockets (events, and requests when they go on one) and leaves the
engine's REST requests over HTTP alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# The first bytes of a connection, enough for an HTTP request line.
_HEAD_BYTES = 512


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._target = (target_host, target_port)
        self._listen = (host, port)
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task[None], bytes] = {}  # each connection's relay -> its first bytes
        self._blocked: list[bytes] = []
        self._late: tuple[bytes, float] | None = None  # see delay_reply
        self.delayed = 0  # replies held back so far

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.sockets[0].getsockname()[1]

    @property
    def url_host(self) -> str:
        return f"{self._listen[0]}:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, *self._listen)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop(lambda head: True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def block(self, marker: bytes = b"") -> int:
        """Drop the connections whose first bytes hold `marker` (every one if
        empty) and refuse such connections until ``unblock``. How many were dropped."""
        self._blocked.append(marker)
        return await self._drop(lambda head: marker in head)

    async def drop(self, marker: bytes = b"") -> int:
        """Drop the connections whose first bytes hold `marker`; new ones are accepted."""
        return await self._drop(lambda head: marker in head)

    def unblock(self) -> None:
        self._blocked.clear()

    def delay_reply(self, marker: bytes, seconds: float) -> None:
        """Hold back by `seconds` what the server sends next on the connection
        that carries the next request holding `marker`: its reply, late. Once."""
        self._late = (marker, seconds)

    def _late_for(self, request: bytes) -> float:
        """How long to hold the reply to `request` (0: not at all)."""
        if self._late is None or self._late[0] not in request:
            return 0.0
        seconds, self._late = self._late[1], None
        self.delayed += 1
        return seconds

    def _refused(self, request: bytes) -> bool:
        return any(marker in request for marker in self._blocked)

    def connections(self, marker: bytes = b"") -> int:
        return sum(1 for head in self._links.values() if marker in head)

    async def _drop(self, which: Callable[[bytes], bool]) -> int:
        relays = [relay for relay, head in self._links.items() if which(head)]
        for relay in relays:
            relay.cancel()
        await asyncio.gather(*relays, return_exceptions=True)
        return len(relays)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The relay is a task of its own: cancelling it (a drop) must not
        # cancel asyncio's connection handler, which reports that as an error.
        try:
            # The client speaks first in both protocols relayed here (Redis, HTTP).
            head = await reader.read(_HEAD_BYTES)
            if not head or self._refused(head):
                writer.close()
                return
            upstream = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        relay = asyncio.ensure_future(_relay(head, (reader, writer), upstream, self._late_for, self._refused))
        self._links[relay] = head
        try:
            await asyncio.gather(relay, return_exceptions=True)
        finally:
            del self._links[relay]


async def _relay(head: bytes, client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 late_for: Callable[[bytes], float], refused: Callable[[bytes], bool]) -> None:
    hold = late_for(head)  # seconds the next reply waits; set by a request, spent by its reply

    async def request(data: bytes) -> None:
        nonlocal hold
        if refused(data):
            raise ConnectionResetError("blocked")  # ends the pump: the connection is cut
        hold = hold or late_for(data)

    async def reply(data: bytes) -> None:
        nonlocal hold
        seconds, hold = hold, 0.0
        if seconds:
            await asyncio.sleep(seconds)

    upstream[1].write(head)
    pumps = [asyncio.ensure_future(_pump(client[0], upstream[1], request)),
             asyncio.ensure_future(_pump(upstream[0], client[1], reply))]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        # Closing is enough; waiting for it could hang on a peer that stopped reading.
        client[1].close()
        upstream[1].close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                before: Callable[[bytes], Awaitable[None]]) -> None:
    """Copy until EOF, each chunk once `before` it is done."""
    try:
        while data := await reader.read(65536):
            await before(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
