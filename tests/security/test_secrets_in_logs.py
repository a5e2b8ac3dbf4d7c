"""Secrets stay out of logs and error messages when connections fail.

A refused ARI login, an unreachable Asterisk or Redis, a Redis URL that
carries its password: what the operator reads names the failure, never the
password.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.app import running_engine
from ivr.ari.errors import AriError
from ivr.ari.rest import AriRest
from ivr.cli import SANDBOX_CONFIG
from ivr.logs import redact_url
from ivr.settings import load_settings
from stream_attempts import attempt_events_stream

ARI_PASSWORD = "ari-pw-5f1e93c7"
REDIS_PASSWORD = "redis-pw-0b7d2a94"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def refusing_ari() -> AsyncIterator[str]:
    """An ARI that refuses every login, as Asterisk does a wrong password."""
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"message": "Authentication required"}, status=401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    server = TestServer(app)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/ari"
    finally:
        await server.close()


async def test_a_refused_ari_login_is_logged_by_status_without_the_password(refusing_ari, caplog):
    caplog.set_level(logging.DEBUG)

    await attempt_events_stream(refusing_ari, "hotline", ARI_PASSWORD, attempts=2)

    assert "handshake refused with HTTP 401" in caplog.text
    assert ARI_PASSWORD not in caplog.text


async def test_an_unreachable_asterisk_is_logged_without_the_password(caplog):
    caplog.set_level(logging.DEBUG)

    await attempt_events_stream(f"http://127.0.0.1:{free_port()}/ari", "hotline", ARI_PASSWORD, attempts=2)

    assert "connection failed" in caplog.text
    assert ARI_PASSWORD not in caplog.text


async def test_a_refused_ari_request_raises_an_error_without_the_password(refusing_ari):
    async with aiohttp.ClientSession() as session:
        rest = AriRest(session, refusing_ari, "hotline", ARI_PASSWORD)
        with pytest.raises(AriError) as caught:
            await rest.list_channels()

    assert "401" in str(caught.value)
    assert ARI_PASSWORD not in "".join(traceback.format_exception(caught.value))
    assert ARI_PASSWORD not in repr(rest)


async def test_an_unreachable_redis_stops_the_engine_without_showing_the_password_in_its_url(
        monkeypatch: pytest.MonkeyPatch, caplog):
    for name in [n for n in os.environ if n.upper().startswith("HOTLINE_")]:
        monkeypatch.delenv(name)
    caplog.set_level(logging.DEBUG)
    # No Asterisk either: the engine that gives up hands nobody to the fallback.
    settings = load_settings(SANDBOX_CONFIG, redis={"url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0",
                                                    "password": None, "outage_hold_s": 0.5, "probe_s": 0.2},
                             engine={"http_port": 0}, ari={"url": f"http://127.0.0.1:{free_port()}"})

    with pytest.raises(SystemExit) as caught:
        async with running_engine(settings):
            pass

    assert "unavailable at start-up" in str(caught.value) and "***" in str(caught.value)
    assert REDIS_PASSWORD not in "".join(traceback.format_exception(caught.value))
    assert REDIS_PASSWORD not in caplog.text


@pytest.mark.parametrize("url, shown", [
    ("redis://:pw-1@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://hotline:pw-1@127.0.0.1:6379/0", "redis://hotline:***@127.0.0.1:6379/0"),
    ("rediss://10.0.0.2:6380/1?password=pw-1&ssl_cert_reqs=none",
     "rediss://10.0.0.2:6380/1?password=***&ssl_cert_reqs=none"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("http://hotline@127.0.0.1:8088", "http://hotline@127.0.0.1:8088"),
])
def test_a_password_in_a_url_is_redacted(url, shown):
    assert redact_url(url) == shown


def test_an_unparseable_url_is_not_shown_at_all():
    assert redact_url("redis://:pw-1@[::1") == "<unparseable URL>"
