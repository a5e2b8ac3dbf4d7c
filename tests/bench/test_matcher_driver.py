"""The matcher bench's C driver (tests/bench/matcher_driver.c) against a real
redis-server: it makes the routing scripts' real decisions, counts only
those that got their one offer, and leaves the queues as it found them.

It needs gcc and libhiredis-dev (the Makefile's apt step installs both for
`make test` and `make bench`); without them these tests fail, naming the
packages, rather than skip: the driver calls set_state and offer_failed
outside RoutingStore, so a change to those scripts' KEYS or ARGV must fail
here, not on the day someone measures.
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlparse

import pytest
import redis

from routing import Keys
from tests.bench import matcher

ADVOCATES, CALLS, QUEUES = 50, 200, 5
KEYS = Keys(matcher.PREFIX)


@pytest.fixture
def server(redis_url):
    url = urlparse(redis_url)
    server = matcher.Server(url.hostname, url.port, None)
    yield server
    asyncio.run(matcher.cleanup(server))


@pytest.fixture
def admin(redis_url):
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        yield client


def waiting(admin: redis.Redis) -> int:
    return sum(admin.zcard(KEYS.waiting(f"q{i:02d}")) for i in range(QUEUES))


def test_every_decision_is_one_offer_and_the_queues_are_left_full(server, admin):
    asyncio.run(matcher.populate(server, advocates=ADVOCATES, calls=CALLS, queues=QUEUES))

    result = matcher.measure(server, advocates=ADVOCATES, queues=QUEUES, seconds=1, processes=1,
                             concurrency=4, client="c")

    assert result.client == "c" and result.decisions > 0 and len(result.latencies_s) == result.decisions
    # Whole rounds: every advocate decided once per round, and only the deciding phases timed.
    assert result.decisions % ADVOCATES == 0
    # Speed is make bench's to measure: here, that the driver ran its second and timed every decision.
    assert result.wall_seconds > 0.9 and 0 < result.seconds < result.wall_seconds
    assert all(x > 0 for x in result.latencies_s)
    # measure() reset the statistics: set_state and offer_failed once each per decision, none refused.
    evalsha = admin.info("commandstats")["cmdstat_evalsha"]
    assert evalsha["calls"] == 2 * result.decisions
    assert evalsha["failed_calls"] == 0 and evalsha["rejected_calls"] == 0
    assert waiting(admin) == CALLS
    assert admin.zcard(KEYS.ringing()) == 0
    states = {admin.hget(KEYS.advocate(a), "state") for a in matcher._advocate_ids(ADVOCATES)}
    assert states == {"away"}


def test_an_advocate_finding_no_call_stops_the_driver_uncounted(server):
    asyncio.run(matcher.populate(server, advocates=ADVOCATES, calls=0, queues=QUEUES))

    with pytest.raises(RuntimeError, match=r"became available and got \{'ok'\}, not one offer"):
        matcher.measure(server, advocates=ADVOCATES, queues=QUEUES, seconds=1, processes=1, concurrency=4)


def test_an_error_reply_stops_the_driver(server, admin):
    asyncio.run(matcher.populate(server, advocates=ADVOCATES, calls=CALLS, queues=QUEUES))
    admin.delete(KEYS.advocate("a00000"))
    admin.set(KEYS.advocate("a00000"), "not a hash")  # set_state's HMGET on it is a WRONGTYPE error

    with pytest.raises(RuntimeError, match="set_state for advocate a00000: WRONGTYPE"):
        matcher.measure(server, advocates=ADVOCATES, queues=QUEUES, seconds=1, processes=1, concurrency=4)


def test_the_driver_is_compiled_again_only_when_its_source_is_newer(tmp_path):
    binary = matcher.build_driver(tmp_path)
    built_at = binary.stat().st_mtime_ns

    assert matcher.build_driver(tmp_path).stat().st_mtime_ns == built_at
    source_at = matcher.DRIVER_SOURCE.stat().st_mtime
    os.utime(binary, (source_at - 60, source_at - 60))
    assert matcher.build_driver(tmp_path).stat().st_mtime > source_at - 60
    assert os.access(binary, os.X_OK)
