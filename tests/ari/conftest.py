"""A stand-in for Asterisk's HTTP side: records requests, answers canned JSON.

It replaces only the network peer; the client under test is the real
AriRest over a real aiohttp session and socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.ari.rest import AriRest

FIXTURES = Path(__file__).parent / "fixtures"
USERNAME = "hotline"
PASSWORD = "s3cret-ari-password"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    body: Any
    authorization: str | None


@dataclass
class FakeAri:
    """Answers ``(method, path)`` with a canned (status, body); 204 otherwise."""

    requests: list[Recorded] = field(default_factory=list)
    responses: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    # Requests to these paths wait until ``release`` is set (timeout tests).
    stall: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def answer(self, method: str, path: str, status: int, body: Any = None) -> None:
        self.responses[(method, path)] = (status, body)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append(Recorded(request.method, request.path, request.raw_path, dict(request.query), body,
                                      request.headers.get("Authorization")))
        if request.path in self.stall:
            await self.release.wait()
        status, payload = self.responses.get((request.method, request.path), (204, None))
        if payload is None:
            return web.Response(status=status)
        return web.json_response(payload, status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
async def fake_ari() -> AsyncIterator[tuple[FakeAri, TestServer]]:
    fake = FakeAri()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        yield fake, server
    finally:
        fake.release.set()
        await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def rest(fake_ari: tuple[FakeAri, TestServer], session: aiohttp.ClientSession) -> AriRest:
    _, server = fake_ari
    return AriRest(session, str(server.make_url("/ari")), USERNAME, PASSWORD, timeout_s=0.5)


@pytest.fixture
def fake(fake_ari: tuple[FakeAri, TestServer]) -> FakeAri:
    return fake_ari[0]
