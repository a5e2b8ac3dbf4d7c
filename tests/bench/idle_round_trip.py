"""What a round trip to Redis costs the engine when both were quiet, against back to back.

  .venv/bin/python -m tests.bench.idle_round_trip [--trips 300] [--quiet-ms 10]

Scenario 2 with one caller crosses between processes where app_queue stays
in one: Asterisk hands the engine the call, the engine asks Redis and hears
back, then asks Asterisk to ring. On an idle machine each crossing wakes a
process that was asleep. This measures that wake-up where it can be told
apart: the engine's own Redis client (``ivr.app.redis_for``) and its
enqueue script, each round trip either right after the previous one or
after ``--quiet-ms`` of nothing, as a lone caller finds the hotline.

Runs on the sandbox's redis-server (brought up if needed) under a key prefix
of its own, which it deletes.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ivr.app import redis_for
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.settings import load_settings
from routing import AdvocateState, Keys, QueueSpec, RoutingStore, WaitingCall

from .matcher import clear_prefix
from .stats import Summary

PREFIX = "hlbench-idle:"
QUEUE = QueueSpec("english", frozenset({"en"}))
ADVOCATE = "a1"


@dataclass(frozen=True)
class RoundTrips:
    """Round trips in seconds: back to back, and after the quiet gap."""

    hot: Summary
    after_quiet: Summary


async def _time(trips: range, quiet_s: float, setup: Callable[[int], Awaitable[object]],
                trip: Callable[[int], Awaitable[object]],
                undo: Callable[[int], Awaitable[object]]) -> Summary:
    took = []
    for i in trips:
        await setup(i)
        if quiet_s:
            await asyncio.sleep(quiet_s)
        started = time.perf_counter()
        await trip(i)
        took.append(time.perf_counter() - started)
        await undo(i)
    return Summary.of(took)


async def measure(trips: int, quiet_s: float, redis: Mapping[str, object] | None = None) -> dict[str, RoundTrips]:
    """The trivial script's and the enqueue-with-an-offer's round trips, `trips`
    of each both ways, on the sandbox's Redis unless `redis` settings say otherwise."""
    settings = load_settings(SANDBOX_CONFIG, redis={**(redis or {}), "key_prefix": PREFIX})
    client = redis_for(settings)
    store = RoutingStore(client, [QUEUE], Keys(PREFIX))
    try:
        await clear_prefix(client, PREFIX)
        trivial = await client.script_load("return 1")
        await store.upsert_advocate(ADVOCATE, ADVOCATE, "PJSIP/1001@carrier", QUEUE.skills,
                                    frozenset({"advocate"}), "0" * 64)

        async def nothing(i: int) -> None:
            return None

        async def evalsha(i: int) -> None:
            await client.evalsha(trivial, 0)

        async def free(i: int) -> None:
            await store.set_state(ADVOCATE, AdvocateState.AVAILABLE)

        # The lone caller's enqueue: an advocate is free, so the script offers the call.
        async def enqueue(i: int) -> None:
            call = WaitingCall(f"c{i}", QUEUE.name, 5, int(time.time() * 1000), "bench-idle")
            if len(await store.enqueue(call, {}, 60)) != 1:
                raise RuntimeError("the free advocate was not offered the call")

        async def undo(i: int) -> None:
            await store.offer_failed(f"c{i}", ADVOCATE)  # the advocate goes away
            await store.abandon(f"c{i}")

        # An ended call's id stays known until its hash expires: each trip has its own i.
        hot, quiet = range(trips), range(trips, 2 * trips)

        return {
            "trivial": RoundTrips(await _time(hot, 0, nothing, evalsha, nothing),
                                  await _time(quiet, quiet_s, nothing, evalsha, nothing)),
            "enqueue": RoundTrips(await _time(hot, 0, free, enqueue, undo),
                                  await _time(quiet, quiet_s, free, enqueue, undo)),
        }
    finally:
        await clear_prefix(client, PREFIX)
        await client.aclose()


def main(argv: list[str] | None = None) -> dict[str, RoundTrips]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=300)
    parser.add_argument("--quiet-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    Sandbox(load_settings(SANDBOX_CONFIG), SANDBOX_CONFIG).up()
    results = asyncio.run(measure(args.trips, args.quiet_ms / 1000))
    for name, label in (("trivial", "EVALSHA of 'return 1'"), ("enqueue", "enqueue, offered at once")):
        hot, quiet = results[name].hot, results[name].after_quiet
        print(f"{label:28s} back to back: median {hot.median * 1e3:.2f} ms, p95 {hot.p95 * 1e3:.2f} ms; "
              f"after {args.quiet_ms:g} ms quiet: median {quiet.median * 1e3:.2f} ms, p95 {quiet.p95 * 1e3:.2f} ms "
              f"({args.trips} each)")
    return results


if __name__ == "__main__":
    main()
