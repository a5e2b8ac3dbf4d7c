"""The engine against Asterisk's own app_queue, side by side on the same sandbox (issue 7).

  make bench
  .venv/bin/python -m tests.bench.versus_app_queue [--runs 20] [--concurrency 1 50 200] ...

The same scenarios run once routed by the engine and once by app_queue
(queue "bench", deploy/asterisk/queues.conf: strategy leastrecent, the
engine's ring timeout, wrap-up and music), ringing the same advocates'
phones (PJSIP/1001@carrier ...) on the sandbox's simulated PSTN:

1. one caller waits; an advocate becomes available -> their phone rings;
2. 1, 50 and 200 callers arrive at once with as many advocates free ->
   each call's advocate rings (the bench line skips the menu on both sides;
   three bursts a level, the sides taking turns);
3. calls answered and talked: CPU seconds per answered call of the engine
   plus Asterisk (app_queue: Asterisk), from /proc, and the engine's memory;
4. the Redis matcher alone (tests/bench/matcher.py, driven from C by
   matcher_driver.c) against redis-benchmark's rate for a trivial script.

It prints one table, writes the plot to tests/bench/versus_app_queue.png
(with the bench extra's matplotlib), and stops by itself. Loopback only.
Scenarios 1-3 set the engine's and app_queue's advocates as they need them;
both start from every advocate away (paused).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

from ivr.ari.rest import AriRest, ari_session
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import RoutingSettings, load_settings

from . import matcher, scenarios
from .procstat import memory
from .report import Results, SideResults, load_average, plot, table
from .sandbox_state import hang_up_everything
from .sides import AppQueueSide, EngineSide, roster

PLOT = Path(__file__).with_name("versus_app_queue.png")
# The whole run stops by itself well within the ten minutes.
DEADLINE_S = 540


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def run_calls(args: argparse.Namespace, results: Results) -> None:
    # Both sides ring and wrap up as a production engine does by default
    # (the sandbox's own settings shorten both for the tests).
    defaults = RoutingSettings.model_fields
    settings = load_settings(SANDBOX_CONFIG, routing={"advocate_ring_s": defaults["advocate_ring_s"].default,
                                                      "wrap_up_s": defaults["wrap_up_s"].default})
    sandbox = Sandbox(settings, SANDBOX_CONFIG)
    sandbox.up()
    advocates = roster(max(max(args.concurrency), args.cpu_calls))
    rng = random.Random(args.seed)
    async with ari_session(limit=400) as http:
        phones = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        ari = AriRest(http, f"{settings.ari.url}/ari", settings.ari.username,
                      settings.ari.password.get_secret_value())
        await phones.ready()
        await hang_up_everything(ari)
        await asyncio.gather(*(phones.script(a.number, never_answer=True) for a in advocates))
        engine = EngineSide(settings, advocates, http, profile=args.profile_engine)
        app_queue = AppQueueSide(settings, sandbox, advocates, http)
        sides = (engine, app_queue)
        asterisk_pid = app_queue.pid
        results.cpu_processes = {"engine": ("engine", "asterisk"), "app_queue": ("asterisk",)}
        try:
            await app_queue.start()
            await engine.start()
            for side in sides if 1 in args.scenarios else ():
                progress(f"1. {side.name}: advocate available -> ring, {args.runs} runs")
                results.sides[side.name].available_to_ring_s = await scenarios.available_to_ring(
                    side, phones, ari, advocates[0], args.runs, rng)
            for callers in args.concurrency if 2 in args.scenarios else ():
                # A burst's median moves with the machine's state from one
                # minute to the next: the sides take turns, burst by burst.
                turns, rounds = (1, args.single_rounds) if callers == 1 else (args.burst_rounds, 1)
                for turn in range(turns):
                    for side in sides:
                        progress(f"2. {side.name}: {callers} concurrent callers x {rounds}"
                                 + (f", burst {turn + 1} of {turns}" if turns > 1 else ""))
                        measured = await scenarios.arrival_to_ring(
                            side, phones, ari, advocates, callers, rounds, settings.routing.advocate_ring_s)
                        arrivals = results.sides[side.name].arrivals
                        arrivals[callers] = arrivals.get(callers, scenarios.Arrivals()) + measured
            for side in sides if 3 in args.scenarios else ():
                progress(f"3. {side.name}: {args.cpu_calls} calls answered, {args.talk_s:g} s each")
                pids = {"asterisk": asterisk_pid, "redis": int(sandbox.redis.pidfile.read_text())}
                if side is engine:
                    pids["engine"] = engine.pid
                results.sides[side.name].cpu = await scenarios.cpu_per_answered_call(
                    side, phones, ari, advocates, args.cpu_calls, args.talk_s, pids)
            results.engine_memory = memory(engine.pid)
        finally:
            await engine.stop()
            await hang_up_everything(ari)
            await phones.reset()
            await app_queue.staff([])


def run_matcher(args: argparse.Namespace, results: Results) -> None:
    server = matcher.sandbox_server()
    progress(f"4. matcher: {args.matcher_advocates} advocates, {args.matcher_calls} calls, "
             f"{args.matcher_seconds:g} s")
    asyncio.run(matcher.populate(server, advocates=args.matcher_advocates, calls=args.matcher_calls,
                                 queues=args.matcher_queues))
    results.matcher = matcher.measure(server, advocates=args.matcher_advocates, queues=args.matcher_queues,
                                      seconds=args.matcher_seconds, processes=args.matcher_processes,
                                      concurrency=args.matcher_concurrency, client=args.matcher_client)
    results.matcher_clients = args.matcher_processes * args.matcher_concurrency
    results.redis_us_per_script = results.matcher.redis_us_per_script
    # About as long as the matcher ran, at the tens of thousands a second Redis answers.
    results.trivial = matcher.trivial_script_limit(server, results.matcher_clients,
                                                   requests=int(20_000 * args.matcher_seconds))
    asyncio.run(matcher.cleanup(server))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20, help="scenario 1: runs per side")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200], help="scenario 2: callers at once")
    p.add_argument("--single-rounds", type=int, default=10, help="scenario 2: rounds of the 1-caller level")
    p.add_argument("--burst-rounds", type=int, default=3,
                   help="scenario 2: bursts per side at each level above one caller, the sides taking turns")
    p.add_argument("--cpu-calls", type=int, default=50, help="scenario 3: calls answered per side")
    p.add_argument("--talk-s", type=float, default=3.0, help="scenario 3: seconds each answered call lasts")
    p.add_argument("--matcher-advocates", type=int, default=1000)
    p.add_argument("--matcher-calls", type=int, default=10000)
    p.add_argument("--matcher-queues", type=int, default=20)
    p.add_argument("--matcher-seconds", type=float, default=5.0)
    p.add_argument("--matcher-client", choices=sorted(matcher.CLIENTS), default="c",
                   help="scenario 4: c, tests/bench/matcher_driver.c (the matcher's own rate), or python, "
                        "RoutingStore on redis-py (what one engine process drives)")
    p.add_argument("--matcher-processes", type=int, default=1)
    p.add_argument("--matcher-concurrency", type=int, default=8)
    p.add_argument("--scenarios", type=int, nargs="+", default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    p.add_argument("--plot", type=Path, default=PLOT)
    p.add_argument("--profile-engine", type=Path, metavar="SVG",
                   help="run the engine under py-spy (pip install py-spy) and write its flame graph here")
    p.add_argument("--seed", type=int, default=7)
    return p


def main(argv: list[str] | None = None) -> Results:
    args = parser().parse_args(argv)
    results = Results(date=time.strftime("%Y-%m-%d %H:%M"), load_at_start=load_average(),
                      sides={"engine": SideResults(), "app_queue": SideResults()}, cpu_processes={})
    started = time.monotonic()
    if {1, 2, 3} & set(args.scenarios):
        asyncio.run(asyncio.wait_for(run_calls(args, results), DEADLINE_S))
    if 4 in args.scenarios:
        run_matcher(args, results)
    print(table(results))
    if plot(results, args.plot):
        print(f"plot: {args.plot}")
    else:
        print("plot skipped: matplotlib is not installed (pip install -e '.[bench]')")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return results


if __name__ == "__main__":
    main()
