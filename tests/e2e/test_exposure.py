"""The running sandbox as an attacker on the network would meet it: Redis wants
its password and listens on loopback, ARI refuses a wrong password, and the
engine's log of that refusal carries no password."""

from __future__ import annotations

import logging
import re

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError

from ivr.sandbox.control import ETC_IN_ROOT
from stream_attempts import attempt_events_stream

WRONG_PASSWORD = "not-the-ari-password-3c61"


async def test_the_sandbox_redis_refuses_clients_without_the_password(settings, sandbox):
    client = aioredis.Redis(host="127.0.0.1", port=settings.sandbox.redis_port, socket_connect_timeout=2,
                            retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises((AuthenticationError, ResponseError), match="(?i)auth"):
            await client.get("anything")
    finally:
        await client.aclose()


async def test_the_sandbox_redis_listens_on_loopback_in_protected_mode(redis_client):
    config = await redis_client.config_get("bind")
    assert config["bind"].split() == ["127.0.0.1"]
    assert (await redis_client.config_get("protected-mode"))["protected-mode"] == "yes"


def test_the_sandbox_asterisk_binds_ari_to_loopback(settings, sandbox):
    http_conf = (settings.sandbox.root / ETC_IN_ROOT.lstrip("/") / "http.conf").read_text()
    assert re.findall(r"^bindaddr\s*=\s*(\S+)", http_conf, re.MULTILINE) == ["127.0.0.1"]


async def test_ari_refuses_a_wrong_password_and_the_log_does_not_show_it(settings, sandbox, caplog):
    caplog.set_level(logging.DEBUG)

    await attempt_events_stream(f"{settings.ari.url}/ari", settings.ari.username, WRONG_PASSWORD, attempts=1,
                                app="hotline-exposure-test")

    assert "handshake refused with HTTP 401" in caplog.text
    assert WRONG_PASSWORD not in caplog.text
