"""The engine's idle HTTP connections to ARI close before Asterisk closes them.

Asterisk closes a connection idle for ``session_keep_alive``; a request sent
on it as it closes fails without reaching Asterisk. So the client lets go first.
"""

from __future__ import annotations

import asyncio
import re

from aiohttp import web

from ivr.ari import rest
from ivr.settings import REPO

from .waiting import TIMEOUT_S


def test_the_client_lets_idle_connections_go_well_before_asterisk_does():
    conf = (REPO / "deploy" / "asterisk" / "http.conf").read_text()
    match = re.search(r"^session_keep_alive\s*=\s*(\d+)", conf, re.MULTILINE)
    assert match, "deploy/asterisk/http.conf sets session_keep_alive"
    # Seconds to spare: both are timers on machines that may be busy.
    assert rest.ARI_KEEPALIVE_S * 1000 <= int(match.group(1)) - 2000


async def test_an_idle_connection_is_closed_by_the_client_after_its_keepalive(monkeypatch, unused_tcp_port):
    peers: list[tuple[str, int]] = []
    transports: list[asyncio.BaseTransport] = []

    async def handler(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        transports.append(request.transport)
        return web.json_response([])

    async def closed_by_the_client() -> None:
        while not transports[0].is_closing():
            await asyncio.sleep(0.02)

    app = web.Application()
    app.router.add_get("/ari/channels", handler)
    # The server would keep a connection far longer: only the client closes it.
    runner = web.AppRunner(app, keepalive_timeout=60)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    monkeypatch.setattr(rest, "ARI_KEEPALIVE_S", 0.2)
    try:
        async with rest.ari_session() as session:
            ari = rest.AriRest(session, f"http://127.0.0.1:{unused_tcp_port}/ari", "u", "p")
            await ari.list_channels()
            await ari.list_channels()  # at once: the same connection
            await asyncio.wait_for(closed_by_the_client(), TIMEOUT_S)
            await ari.list_channels()  # after the keep-alive: a new one
    finally:
        await runner.cleanup()
    assert peers[0] == peers[1] and peers[2] != peers[0]
