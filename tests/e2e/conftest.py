"""End-to-end fixtures: the real sandbox (Asterisk 22, Redis, the phones app).

The session brings the sandbox up (building it the first time) and leaves
it running for the next run. Each test gets a clean slate: its own Redis key
prefix emptied, no channel left over, phone scripts reset, and an engine of
its own that stops when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
import redis.asyncio as aioredis

from ivr.app import Running, running_engine
from ivr.ari.errors import AriNotFound
from ivr.ari.rest import AriRest, ari_session
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import Settings, load_settings

from .ari_proxy import AriProxy
from .browser import Browser

T = TypeVar("T")

TEST_PREFIX = "hltest:"
TOKENS = {"ana": "sandbox-token-ana", "luis": "sandbox-token-luis", "mei": "sandbox-token-mei",
          "sam": "sandbox-token-sam"}
PHONES = {"ana": "1001", "luis": "1002", "mei": "1003", "sam": "1004"}
BACKUP_PHONE = "1999"


def sandbox_queues(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The sandbox's queue list with ``changes[name]`` merged into queue ``name``
    (a settings override replaces the whole list)."""
    queues = tomllib.loads(SANDBOX_CONFIG.read_text())["routing"]["queues"]
    return [{**queue, **changes.get(queue["name"], {})} for queue in queues]


def settings_with(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "engine": {"instance_id": f"pytest-{os.getpid()}", "http_port": 0, "log_level": "DEBUG"},
        "routing": {"advocate_ring_s": 3, "wrap_up_s": 1},
        "redis": {"key_prefix": TEST_PREFIX},
    }
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return load_settings(SANDBOX_CONFIG, **base)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return settings_with()


@pytest.fixture(scope="session")
def sandbox(settings: Settings) -> Sandbox:
    box = Sandbox(settings, SANDBOX_CONFIG)
    box.up()
    return box


@pytest.fixture
async def ari_proxy(settings: Settings, sandbox: Sandbox) -> AsyncIterator[AriProxy]:
    """A proxy on the engine's ARI path (tests/e2e/ari_proxy.py); an engine
    uses it when the test's engine_settings point ari.url at it."""
    proxy = AriProxy(settings.ari.url)
    await proxy.start()
    yield proxy
    await proxy.close()


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout_s: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy, within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:.1f} s: {what}")
        await asyncio.sleep(0.05)


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """``eventually`` for a plain condition on the test's own objects."""
    async def probe() -> bool:
        return check()
    await eventually(probe, timeout_s, what)


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with ari_session() as session:  # ARI's, the phones' and the engine's API
        yield session


@pytest.fixture
async def ari(settings: Settings, http: aiohttp.ClientSession) -> AriRest:
    return AriRest(http, f"{settings.ari.url}/ari", settings.ari.username, settings.ari.password.get_secret_value())


@pytest.fixture
async def redis_client(settings: Settings, sandbox: Sandbox) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(settings.redis.url, decode_responses=True,
                                     password=settings.redis.password.get_secret_value())
    yield client
    await client.aclose()


@pytest.fixture
async def phones(settings: Settings, http: aiohttp.ClientSession, ari: AriRest,
                 redis_client: aioredis.Redis) -> AsyncIterator[PhonesClient]:
    """The simulated PSTN, with nothing left from an earlier test."""
    client = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
    await client.ready()
    await client.reset()
    for channel in await ari.list_channels():
        try:
            await ari.hangup(channel.id)
        except AriNotFound:
            pass
    await eventually(lambda: _no_channels(ari), 10, "leftover channels gone")
    # Test data only: SCAN on the sandbox's Redis, never on a live server.
    keys = [key async for key in redis_client.scan_iter(match=f"{TEST_PREFIX}*", count=1000)]
    if keys:
        await redis_client.delete(*keys)
    await client.mark()
    yield client


async def _no_channels(ari: AriRest) -> bool:
    return not await ari.list_channels()


class EngineApi:
    """The engine's HTTP API, as an advocate or supervisor would use it."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{port}"

    async def request(self, method: str, path: str, advocate: str | None = None,
                      token: str | None = None, json: Any = None) -> tuple[int, Any]:
        headers = {}
        if advocate or token:
            headers["Authorization"] = f"Bearer {token or TOKENS[advocate]}"
        async with self.http.request(method, self.base + path, headers=headers, json=json) as response:
            body = await response.json(content_type=None) if response.content_type == "application/json" \
                else await response.text()
            return response.status, body

    async def act(self, advocate: str, action: str) -> dict[str, Any]:
        status, body = await self.request("POST", f"/advocates/{advocate}/{action}", advocate)
        assert status == 200, body
        return body

    async def metrics(self) -> str:
        return (await self.request("GET", "/metrics"))[1]


@pytest.fixture
async def engine(engine_settings: Settings, phones: PhonesClient,
                 caplog: pytest.LogCaptureFixture) -> AsyncIterator[Running]:
    async with running_engine(engine_settings) as running:
        await eventually(lambda: _connected(running), 10, "engine connected to ARI")
        yield running
    # Every task ends on its cancel when the engine stops: one that carried
    # on (a cancel lost in a request) held the stop for ivr.tasks' 10 s and
    # acted on calls meanwhile.
    stuck = [r.getMessage() for r in caplog.get_records("teardown") if "did not stop" in r.getMessage()]
    assert not stuck, stuck


@pytest.fixture
def engine_settings() -> Settings:
    """Override in a test module to run its engine with other settings."""
    return settings_with()


async def _connected(running: Running) -> bool:
    # And its REST requests on their socket, which tests count on from the first call.
    requests = running.socket_requests
    return running.stream.connected and (requests is None or requests.attached)


@pytest.fixture
async def api(engine: Running, http: aiohttp.ClientSession) -> EngineApi:
    return EngineApi(http, engine.http_port)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text page: 0 when the sample
    is absent (a counter not yet moved), an AssertionError when the metric
    itself is not on the page (renamed: a "== 0" check must not pass then)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    declared = False
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
            declared = declared or name == family or name.startswith(f"{family}_")
            continue
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        metric, _, label_text = sample.partition("{")
        if metric != name:
            continue
        got = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if got == want:
            return float(value)
    assert declared, f"no metric {name} on the page"
    return 0.0


@pytest.fixture
async def browser(sandbox: Sandbox) -> AsyncIterator[Browser]:
    """A headless Chromium of its own for the test."""
    started = await Browser.start()
    yield started
    await started.quit()
