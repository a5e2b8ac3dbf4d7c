"""The engine's Redis client under a burst, on the session's real redis-server."""

import asyncio

import pytest
from redis import exceptions as redis_exceptions

from ivr.app import REDIS_CONNECTIONS, open_connections, redis_for
from ivr.cli import SANDBOX_CONFIG
from ivr.settings import RedisSettings, load_settings


def _client(redis_url: str):
    # The session's own redis-server, whatever HOTLINE_REDIS__* the environment sets.
    return redis_for(load_settings(SANDBOX_CONFIG).model_copy(update={"redis": RedisSettings(url=redis_url)}))


async def test_a_burst_beyond_the_pool_waits_for_a_connection_instead_of_failing(redis_url):
    client = _client(redis_url)
    try:
        # Each BLPOP holds its connection for 0.2 s: three times the pool's
        # size in flight at once, as 150 callers finishing the menu together.
        replies = await asyncio.gather(*(client.blpop(["hl:wiring:nothing"], timeout=0.2)
                                         for _ in range(3 * REDIS_CONNECTIONS)))
    finally:
        await client.aclose()
    assert replies == [None] * (3 * REDIS_CONNECTIONS)


async def test_the_pool_is_opened_at_start_up_and_a_burst_makes_no_connection(redis_url):
    client = _client(redis_url)
    admin = _client(redis_url)
    try:
        before = len(await admin.client_list())
        await open_connections(client)
        opened = len(await admin.client_list())
        # As many BLPOPs at once as the pool has connections, each holding its own for 0.1 s.
        await asyncio.gather(*(client.blpop(["hl:wiring:nothing"], timeout=0.1)
                               for _ in range(REDIS_CONNECTIONS)))
        after_burst = len(await admin.client_list())
    finally:
        await client.aclose()
        await admin.aclose()
    assert opened - before == REDIS_CONNECTIONS
    assert after_burst == opened


async def test_a_redis_that_cannot_be_reached_at_start_up_costs_a_warning_not_the_start(unused_tcp_port, caplog):
    client = _client(f"redis://127.0.0.1:{unused_tcp_port}/0")
    try:
        await open_connections(client)
    finally:
        await client.aclose()
    assert f"{REDIS_CONNECTIONS} of {REDIS_CONNECTIONS} connections not opened at start-up" in caplog.text


def test_the_engine_s_connections_send_without_losing_a_cancel(redis_url):
    # tests/routing/test_connection_cancels.py shows what that is and that it works.
    from routing.connection import _KeepsCancel
    assert issubclass(_client(redis_url).connection_pool.connection_class, _KeepsCancel)


# Runs for longer than the engine's 1 s socket timeout, then counts itself.
SLOW_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start >= 1300000
return redis.call('INCR', KEYS[1])
"""


async def test_a_script_whose_reply_comes_late_fails_and_is_not_run_again(redis_url):
    # A routing script must not run twice (routing.connection): redis-py's
    # default retries sent it again after the read's timeout, twice.
    client = _client(redis_url)
    try:
        await client.delete("hl:wiring:runs")
        with pytest.raises(redis_exceptions.TimeoutError):
            await client.eval(SLOW_SCRIPT, 1, "hl:wiring:runs")
        # Redis runs one command at a time: this read waits for the script's
        # last 0.3 s. A repeat would have been sent before the error, and
        # be running by the time of this read (each try waits out its 1 s).
        runs = await client.get("hl:wiring:runs")
    finally:
        await client.aclose()
    assert runs == "1"


async def test_a_command_that_never_reached_redis_is_sent_again_on_a_new_connection(redis_url):
    client = _client(redis_url)
    try:
        await client.delete("hl:wiring:sent")
        pool = client.connection_pool
        broken = await pool.get_connection()
        resets = []

        def reset(_data) -> None:
            resets.append(1)
            raise ConnectionResetError("reset by peer")
        broken._writer.writelines = reset  # this connection's next command finds it lost
        await pool.release(broken)
        assert await client.incr("hl:wiring:sent") == 1
        assert await client.get("hl:wiring:sent") == "1"
        assert resets == [1]
    finally:
        await client.aclose()
