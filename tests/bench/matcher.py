"""The Redis matcher alone: decisions per second and their latency, against Redis's own limit.

  .venv/bin/python -m tests.bench.matcher [--advocates 1000] [--calls 10000] [--queues 20] [--seconds 5]

Runs on the sandbox's redis-server (brought up if needed), under a key
prefix of its own. 1,000 advocates, each with three of the 20 queues'
skills, and 10,000 calls waiting across the queues. Every advocate is
ringing or away, so each decision is one advocate becoming available
(``RoutingStore.set_state``, the script ``set_state.lua`` and its matching
loop over the advocate's queues): it is offered the best waiting call at
once. The advocate's phone then "fails" (``offer_failed``): they go away and
the call is first in line again, so the queues stay full and the next
decision finds the same work. The latency is the decision's own round trip
as the client sees it.

The C driver runs in rounds: every advocate decides (timed), then every
offer fails (not timed; no decision is made while the calls go back), so
the decisions' rate is the matcher's alone, over the deciding phases. The
whole run's rate, putting the calls back included (two scripts per
decision), is reported beside it. A round takes one call per advocate out
of the queues before putting them back: between 9,000 and 10,000 calls wait
throughout.

The limit is ``redis-benchmark``'s rate for a trivial script (``EVALSHA`` of
``return 1``) on the same server with as many connections, from C: what
Redis itself allows whatever the script does.

The decisions come from ``matcher_driver.c`` (``--client c``, the default):
hiredis from C, one thread per connection, as cheap a client as
redis-benchmark, so the rate is the matcher's. It is compiled on first use
(gcc and Debian's libhiredis-dev, which ``make bench`` installs).
``--client python`` drives the same decisions through ``RoutingStore`` with
redis-py asyncio instead: what one engine process can drive (about a tenth
of Redis's trivial-script rate here, whatever the scripts do).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import multiprocessing
import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio as aioredis

from routing import AdvocateState, Keys, QueueSpec, RoutingStore, WaitingCall
from routing.advocates import allowed_sources
from routing.scripts import script_source

from .stats import Summary

PREFIX = "hlbench-matcher:"
SKILLS_PER_ADVOCATE = 3
OWNER = "bench-matcher"
DRIVER_SOURCE = Path(__file__).with_name("matcher_driver.c")
DRIVER_PACKAGES = "gcc libc6-dev libhiredis-dev"  # Debian's, as the Makefile installs them
# In the checkout (build/ is git-ignored): each worktree runs the driver built from its own source.
DRIVER_BUILD_DIR = Path(__file__).resolve().parents[2] / "build" / "bench"
CLIENTS = {"c": "C driver (hiredis)", "python": "redis-py asyncio"}


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    password: str | None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self, **kwargs) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url, password=self.password, decode_responses=True, **kwargs)


@dataclass(frozen=True)
class MatcherResult:
    decisions: int
    seconds: float  # deciding: the C driver's deciding phases; the Python client's whole run
    wall_seconds: float  # the whole run, putting the calls back included
    latencies_s: list[float]  # each decision's round trip, sorted
    redis_us_per_script: float  # Redis's own time per script call, both scripts (INFO commandstats)
    client: str  # a key of CLIENTS: which client drove the decisions

    @property
    def per_s(self) -> float:
        """Decisions per second of deciding."""
        return self.decisions / self.seconds

    @property
    def per_s_with_restore(self) -> float:
        """Decisions per second over the whole run, each with the offer_failed that undoes it."""
        return self.decisions / self.wall_seconds


@dataclass(frozen=True)
class TrivialResult:
    per_s: float
    p99_ms: float


def _queues(n: int) -> list[QueueSpec]:
    return [QueueSpec(f"q{i:02d}", frozenset({f"s{i:02d}"})) for i in range(n)]


def _advocate_ids(n: int) -> list[str]:
    return [f"a{i:05d}" for i in range(n)]


async def clear_prefix(client: aioredis.Redis, prefix: str = PREFIX) -> None:
    """Delete every key under a bench's own `prefix` on the sandbox's Redis; never on a live server."""
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start:start + 1000])


async def populate(server: Server, *, advocates: int, calls: int, queues: int, seed: int = 7) -> None:
    """A fresh prefix: every advocate away, `calls` calls waiting across the queues."""
    rng = random.Random(seed)
    specs = _queues(queues)
    client = server.client()
    try:
        await clear_prefix(client)
        store = RoutingStore(client, specs, Keys(PREFIX))
        for advocate in _advocate_ids(advocates):
            skills = frozenset(rng.sample([next(iter(q.skills)) for q in specs], SKILLS_PER_ADVOCATE))
            await store.upsert_advocate(advocate, advocate, f"PJSIP/{advocate}@carrier", skills,
                                        frozenset({"advocate"}), f"{int(advocate[1:]):064x}")
            await store.set_state(advocate, AdvocateState.AWAY)
        now_ms = int(time.time() * 1000)
        batch = []
        for i in range(calls):
            # One call in ten is a crisis call: the matcher's best-of-queues choice has priorities to weigh.
            call = WaitingCall(f"c{i:06d}", specs[i % queues].name, 9 if i % 10 == 0 else 5,
                               now_ms - rng.randrange(600_000), OWNER)
            batch.append(store.enqueue(call, {}, 3600))
            if len(batch) == 50:
                await asyncio.gather(*batch)
                batch = []
        await asyncio.gather(*batch)
    finally:
        await client.aclose()


async def _drive(server: Server, advocates: list[str], queues: int, concurrency: int,
                 seconds: float) -> list[float]:
    """Decisions by `concurrency` tasks, each cycling through its own advocates."""
    client = server.client(max_connections=concurrency + 2)
    store = RoutingStore(client, _queues(queues), Keys(PREFIX))
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(mine: list[str]) -> None:
        while True:
            for advocate in mine:
                if time.perf_counter() >= deadline:
                    return
                started = time.perf_counter()
                offers = await store.set_state(advocate, AdvocateState.AVAILABLE)
                latencies.append(time.perf_counter() - started)
                if len(offers) != 1:
                    raise RuntimeError(f"advocate {advocate} became available and got {len(offers)} offers")
                await store.offer_failed(offers[0].call_id, advocate)

    try:
        await asyncio.gather(*(worker(advocates[i::concurrency]) for i in range(concurrency)))
    finally:
        await client.aclose()
    return latencies


def _drive_process(args: tuple[Server, list[str], int, int, float]) -> list[float]:
    return asyncio.run(_drive(*args))


def _drive_python(server: Server, ids: list[str], queues: int, seconds: float, processes: int,
                  concurrency: int) -> tuple[list[float], float]:
    """Decisions from `processes` redis-py processes of `concurrency` tasks each, each
    followed by its offer_failed (no rounds: the Python client's rate is the whole run's)."""
    jobs = [(server, ids[p::processes], queues, concurrency, seconds) for p in range(processes)]
    started = time.perf_counter()
    if processes == 1:
        parts = [_drive_process(jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(_drive_process, jobs)
    elapsed = time.perf_counter() - started
    # Process start-up is not decision time: the rate is over the driving window.
    return [x for part in parts for x in part], min(elapsed, seconds)


def build_driver(build_dir: Path = DRIVER_BUILD_DIR) -> Path:
    """matcher_driver.c compiled into `build_dir`, again only when the source is newer."""
    binary = build_dir / "matcher_driver"
    if binary.exists() and binary.stat().st_mtime >= DRIVER_SOURCE.stat().st_mtime:
        return binary
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(f"no C compiler for {DRIVER_SOURCE.name}: apt-get install {DRIVER_PACKAGES} "
                           "(make installs them)")
    build_dir.mkdir(parents=True, exist_ok=True)
    # Compiled aside and renamed: a concurrent run never executes half a binary.
    partial = build_dir / f"matcher_driver.{os.getpid()}.partial"
    built = subprocess.run([compiler, "-std=c11", "-O2", "-Wall", "-Wextra", "-o", str(partial),
                            str(DRIVER_SOURCE), "-lhiredis", "-lpthread"], capture_output=True, text=True)
    if built.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"cannot compile {DRIVER_SOURCE.name}: apt-get install {DRIVER_PACKAGES} "
                           f"(make installs them)\n{built.stderr}")
    partial.replace(binary)
    return binary


def _drive_c(server: Server, admin: redis.Redis, ids: list[str], connections: int,
             seconds: float) -> tuple[list[float], float, float]:
    """Decisions from matcher_driver.c, `connections` connections: their round trips,
    the deciding phases' seconds and the whole run's."""
    driver = build_driver()
    keys = Keys(PREFIX)
    # SCRIPT LOAD of the very text RoutingStore sends, so the SHAs are the engine's.
    set_state, offer_failed = (admin.script_load(script_source(name))
                               for name in ("set_state", "offer_failed"))
    env = dict(os.environ)
    env.pop("REDISCLI_AUTH", None)
    if server.password:
        env["REDISCLI_AUTH"] = server.password  # not on the command line, where ps shows it
    run = subprocess.run(
        [str(driver), "--host", server.host, "--port", str(server.port), "--seconds", str(seconds),
         "--connections", str(connections), "--set-state", set_state, "--offer-failed", offer_failed,
         "--prefix", keys.prefix, "--advocate-key", keys.advocate(""), "--call-key", keys.call(""),
         "--ringing-key", keys.ringing(),
         "--allowed", ",".join(sorted(allowed_sources(AdvocateState.AVAILABLE))), *ids],
        env=env, capture_output=True, text=True, timeout=seconds + 60)
    if run.returncode != 0:
        raise RuntimeError(f"matcher driver failed (exit {run.returncode}): {run.stderr.strip()}")
    header, *samples = run.stdout.splitlines()
    _, decisions, _, deciding, _, wall, _, _rounds = header.split()
    if int(decisions) != len(samples):
        raise RuntimeError(f"matcher driver reported {decisions} decisions and {len(samples)} latencies")
    return [int(ns) / 1e9 for ns in samples], float(deciding), float(wall)


def measure(server: Server, *, advocates: int, queues: int, seconds: float, processes: int,
            concurrency: int, client: str = "c") -> MatcherResult:
    """Drive decisions for `seconds` from `processes` x `concurrency` connections: the C
    driver's threads, or `processes` redis-py processes of `concurrency` tasks each."""
    if client not in CLIENTS:
        raise ValueError(f"client is one of {sorted(CLIENTS)}, not {client!r}")
    ids = _advocate_ids(advocates)
    with redis.Redis(host=server.host, port=server.port, password=server.password) as admin:
        admin.config_resetstat()  # the sandbox's Redis: its command statistics start again
        if client == "c":
            latencies, deciding, wall = _drive_c(server, admin, ids, processes * concurrency, seconds)
        else:
            latencies, wall = _drive_python(server, ids, queues, seconds, processes, concurrency)
            deciding = wall
        evalsha = admin.info("commandstats").get("cmdstat_evalsha", {})
    return MatcherResult(len(latencies), deciding, wall, sorted(latencies),
                         float(evalsha.get("usec_per_call", "nan")), client)


def trivial_script_limit(server: Server, connections: int, requests: int = 200_000) -> TrivialResult:
    """redis-benchmark's own rate for EVALSHA of a trivial script, `connections` clients."""
    tool = shutil.which("redis-benchmark")
    if tool is None:
        raise RuntimeError("redis-benchmark not found (Debian package redis-tools)")
    with redis.Redis(host=server.host, port=server.port, password=server.password) as admin:
        digest = admin.script_load("return 1")
    auth = ["-a", server.password] if server.password else []
    out = subprocess.run([tool, "-h", server.host, "-p", str(server.port), *auth, "-n", str(requests),
                          "-c", str(connections), "--csv", "evalsha", digest, "0"],
                         capture_output=True, text=True, check=True).stdout
    row = next(r for r in csv.DictReader(io.StringIO(out)))
    return TrivialResult(float(row["rps"]), float(row["p99_latency_ms"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--advocates", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--queues", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--client", choices=sorted(CLIENTS), default="c",
                        help="c: matcher_driver.c (the matcher's own rate); python: RoutingStore on "
                             "redis-py (what an engine process drives)")
    parser.add_argument("--processes", type=int, default=1,
                        help="client processes (the C driver runs processes x concurrency threads in one)")
    parser.add_argument("--concurrency", type=int, default=8, help="connections per client process")
    args = parser.parse_args()
    server = sandbox_server()
    asyncio.run(populate(server, advocates=args.advocates, calls=args.calls, queues=args.queues))
    result = measure(server, advocates=args.advocates, queues=args.queues, seconds=args.seconds,
                     processes=args.processes, concurrency=args.concurrency, client=args.client)
    limit = trivial_script_limit(server, args.processes * args.concurrency)
    ms = Summary.of(x * 1000 for x in result.latencies_s)
    print(f"matcher, {args.advocates} advocates, {args.calls} calls waiting in {args.queues} queues, "
          f"{args.processes}x{args.concurrency} clients, {CLIENTS[result.client]}: "
          f"{result.per_s:,.0f} decisions/s ({result.per_s_with_restore:,.0f}/s with the calls put back), "
          f"median {ms.median:.2f} ms, p99 {ms.p99:.2f} ms, worst {ms.worst:.2f} ms")
    print(f"inside Redis: {result.redis_us_per_script:.1f} us per script call")
    print(f"redis-benchmark, EVALSHA of 'return 1', {args.processes * args.concurrency} clients: "
          f"{limit.per_s:,.0f}/s, p99 {limit.p99_ms:.2f} ms")
    asyncio.run(cleanup(server))


async def cleanup(server: Server) -> None:
    client = server.client()
    try:
        await clear_prefix(client)
    finally:
        await client.aclose()


def sandbox_server() -> Server:
    from ivr.cli import SANDBOX_CONFIG
    from ivr.sandbox.control import Sandbox
    from ivr.settings import load_settings

    settings = load_settings(SANDBOX_CONFIG)
    Sandbox(settings, SANDBOX_CONFIG).up()
    password = settings.redis.password.get_secret_value() if settings.redis.password else None
    return Server("127.0.0.1", settings.sandbox.redis_port, password)


if __name__ == "__main__":
    main()
