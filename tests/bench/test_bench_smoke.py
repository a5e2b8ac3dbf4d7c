"""`make bench`'s pieces still run: each in a tiny configuration, so a change
that breaks the bench fails here rather than on the day someone measures."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest
import redis

from tests.bench import idle_round_trip, matcher, versus_app_queue
from tests.bench.report import SIDES


@pytest.mark.parametrize("client", sorted(matcher.CLIENTS))
def test_matcher_bench_makes_decisions_and_keeps_the_queues_full(redis_url, client):
    url = urlparse(redis_url)
    server = matcher.Server(url.hostname, url.port, None)
    asyncio.run(matcher.populate(server, advocates=50, calls=200, queues=20))

    result = matcher.measure(server, advocates=50, queues=20, seconds=1, processes=1, concurrency=4,
                             client=client)

    assert result.client == client and result.decisions > 0 and len(result.latencies_s) == result.decisions
    waiting = redis.Redis.from_url(redis_url).zcard  # every offer failed back: all 200 still wait
    assert sum(waiting(f"{matcher.PREFIX}q:q{i:02d}:waiting") for i in range(20)) == 200
    asyncio.run(matcher.cleanup(server))


# Not skipped without redis-benchmark: make installs redis-tools, and
# trivial_script_limit fails naming the package if it is missing.
def test_trivial_script_limit_is_measured_with_redis_benchmark(redis_url):
    url = urlparse(redis_url)
    limit = matcher.trivial_script_limit(matcher.Server(url.hostname, url.port, None), 2, requests=2000)
    assert limit.per_s > 0 and limit.p99_ms > 0


@pytest.mark.sandbox
def test_versus_app_queue_runs_every_scenario_on_both_sides(tmp_path, capsys):
    results = versus_app_queue.main([
        "--runs", "1", "--concurrency", "1", "--single-rounds", "1", "--cpu-calls", "1", "--talk-s", "1",
        "--matcher-advocates", "50", "--matcher-calls", "200", "--matcher-seconds", "1",
        "--plot", str(tmp_path / "bench.png")])

    for side in SIDES:
        measured = results.sides[side]
        assert len(measured.available_to_ring_s) == 1, side
        assert len(measured.arrivals[1].latencies_s) == 1, side
        assert measured.cpu is not None and measured.cpu.answered == 1, side
    assert results.matcher is not None and results.matcher.decisions > 0
    table = capsys.readouterr().out
    assert "1. advocate available -> ring" in table and "4. Redis matcher alone" in table


def test_idle_round_trips_are_timed_both_ways_and_leave_nothing_behind(redis_url):
    results = asyncio.run(idle_round_trip.measure(3, 0.001, redis={"url": redis_url, "password": None}))

    assert sorted(results) == ["enqueue", "trivial"]
    for trips in results.values():
        assert trips.hot.n == trips.after_quiet.n == 3 and trips.hot.median > 0 and trips.after_quiet.median > 0
    assert redis.Redis.from_url(redis_url).keys(f"{idle_round_trip.PREFIX}*") == []
