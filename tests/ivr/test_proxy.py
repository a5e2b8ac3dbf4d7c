"""The fault tests' TCP relay (ivr/sandbox/proxy.py) holding back one reply and
blocking, against an echo server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ivr.sandbox.proxy import TcpProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    async with TcpProxy("127.0.0.1", server.sockets[0].getsockname()[1]) as relay:
        yield relay
    server.close()
    await server.wait_closed()


async def _ask(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> bytes:
    reader, writer = stream
    writer.write(request)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(request)), 10)


async def test_the_reply_to_the_marked_request_comes_late_once_and_whole(proxy: TcpProxy):
    one = await asyncio.open_connection("127.0.0.1", proxy.port)
    other = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _ask(one, b"hello") == b"hello"
    proxy.delay_reply(b"ENQUEUE", 0.3)
    assert await _ask(other, b"PING") == b"PING"  # not marked: not held
    assert proxy.delayed == 0

    started = time.monotonic()
    assert await _ask(one, b"EVALSHA ENQUEUE") == b"EVALSHA ENQUEUE"
    assert time.monotonic() - started >= 0.3
    assert proxy.delayed == 1

    assert await _ask(one, b"EVALSHA ENQUEUE") == b"EVALSHA ENQUEUE"  # once only
    assert proxy.delayed == 1
    for _, writer in (one, other):
        writer.close()


async def test_a_marked_first_request_delays_its_reply_too(proxy: TcpProxy):
    # The first bytes of a connection are read before the relay starts.
    proxy.delay_reply(b"AUTH", 0.2)
    started = time.monotonic()
    stream = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _ask(stream, b"AUTH secret") == b"AUTH secret"
    assert time.monotonic() - started >= 0.2
    assert proxy.delayed == 1
    stream[1].close()


async def test_a_blocked_request_on_a_connection_made_before_cuts_it(proxy: TcpProxy):
    # aiohttp upgrades a kept-alive HTTP connection to a WebSocket: the
    # marker comes in a later request, not the first bytes.
    kept = await asyncio.open_connection("127.0.0.1", proxy.port)
    other = await asyncio.open_connection("127.0.0.1", proxy.port)
    assert await _ask(kept, b"POST /ari/channels") == b"POST /ari/channels"
    assert await proxy.block(b"/ari/events") == 0  # no connection's first bytes hold it

    kept[1].write(b"GET /ari/events?app=hotline")
    assert await asyncio.wait_for(kept[0].read(), 10) == b""  # cut, nothing passed on
    assert await _ask(other, b"GET /ari/channels") == b"GET /ari/channels"  # the others carry on
    refused = await asyncio.open_connection("127.0.0.1", proxy.port)
    refused[1].write(b"GET /ari/events?app=hotline-requests")
    assert await asyncio.wait_for(refused[0].read(), 10) == b""
    proxy.unblock()
    for _, writer in (kept, other, refused):
        writer.close()
