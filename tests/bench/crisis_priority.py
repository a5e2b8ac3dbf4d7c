"""Time from a crisis call's arrival to its advocate ringing, with 20 calls waiting.

  .venv/bin/python -m tests.bench.crisis_priority [--runs 5] [--waiting 20]

Runs against the sandbox (brought up if needed) with an engine of its own.
Each run: every advocate is away; 20 callers choose "report a tip" and wait
in the English queue; then a caller chooses "help right now". The clock
starts at the crisis call's arrival in the queue (its arrival_ms, written
by the engine when the menu finishes). As soon as the bench sees the call
waiting, one advocate goes available through the HTTP API, as an advocate
ending a call would; the clock stops when that advocate's simulated phone
sees the INVITE. The bench checks that the call offered is the crisis call,
not one of the 20 that waited longer.

Two figures per run: arrival -> ring (includes the bench noticing the call,
polling Redis every 5 ms) and advocate available -> ring (the engine's own
part: API, Lua matcher over the 21 waiting calls, offer, originate, INVITE).
All timestamps come from this machine's clock.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from ivr.app import running_engine
from ivr.ari.rest import AriRest
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import load_settings

from tests.e2e.conftest import eventually

from .sandbox_state import clear_prefix, hang_up_everything

PREFIX = "hlbench:"
ADVOCATES = ("ana", "luis", "mei", "sam")
TIP, CRISIS = "12", "11"


async def measure(runs: int, waiting: int) -> list[tuple[float, float]]:
    settings = load_settings(SANDBOX_CONFIG, engine={"instance_id": "bench-crisis", "http_port": 0,
                                                     "log_level": "WARNING"},
                             redis={"key_prefix": PREFIX})
    Sandbox(settings, SANDBOX_CONFIG).up()
    results = []
    async with aiohttp.ClientSession() as http:
        ari = AriRest(http, f"{settings.ari.url}/ari", settings.ari.username,
                      settings.ari.password.get_secret_value())
        phones = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        for _ in range(runs):
            await _clean(ari, phones, settings)
            async with running_engine(settings) as engine:
                await eventually(lambda: _connected(engine), 10, "engine connected to ARI")
                results.append(await _one_run(engine, http, phones, settings.lines.toll_free, waiting))
        await _clean(ari, phones, settings)
    return results


async def _one_run(engine, http: aiohttp.ClientSession, phones: PhonesClient, toll_free: str,
                   waiting: int) -> tuple[float, float]:
    base = f"http://127.0.0.1:{engine.http_port}/advocates"
    for advocate in ADVOCATES:
        await _post(http, f"{base}/{advocate}/away", advocate)
    for i in range(waiting):
        await phones.place_call(f"+1555555{i:04d}", toll_free, dtmf=TIP)
    await eventually(lambda: _waiting(engine, waiting), 90, f"{waiting} tips waiting")
    tips = set(await engine.store.waiting("english"))
    await phones.mark()
    await phones.place_call("+15555559999", toll_free, dtmf=CRISIS)

    deadline = time.monotonic() + 60
    while True:
        fresh = [c for c in await engine.store.waiting("english") if c not in tips]
        if fresh:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the crisis call never reached the queue")
        await asyncio.sleep(0.005)
    (crisis,) = fresh
    record = await engine.store.get_call(crisis)
    assert record is not None and record["call_type"] == "crisis", record
    available_at = time.time()
    await _post(http, f"{base}/luis/available", "luis")
    ring = await phones.wait_for(lambda e: e["number"] == "1002" and e["kind"] == "ringing", 10,
                                 what="luis's phone ringing")
    offered = await engine.store.get_call(crisis)
    assert offered is not None and offered["state"] in {"offered", "bridged"} and offered["advocate"] == "luis", \
        f"the crisis call was not the one offered: {offered}"
    assert len(await engine.store.waiting("english")) == waiting  # the tips are all still waiting
    return ring["time"] - int(record["arrival_ms"]) / 1000, ring["time"] - available_at


async def _post(http: aiohttp.ClientSession, url: str, advocate: str) -> None:
    async with http.post(url, headers={"Authorization": f"Bearer sandbox-token-{advocate}"}) as response:
        assert response.status == 200, await response.text()


async def _waiting(engine, n: int) -> bool:
    return len(await engine.store.waiting("english")) >= n


async def _connected(engine) -> bool:
    return engine.stream.connected


async def _clean(ari: AriRest, phones: PhonesClient, settings) -> None:
    await phones.reset()
    await hang_up_everything(ari, 20)
    await clear_prefix(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--waiting", type=int, default=20)
    args = parser.parse_args()
    results = asyncio.run(measure(args.runs, args.waiting))
    arrival = sorted(a * 1000 for a, _ in results)
    engine = sorted(e * 1000 for _, e in results)
    print(f"crisis call behind {args.waiting} waiting calls, {len(results)} runs:")
    print(f"  arrival -> ring:   median {statistics.median(arrival):.1f} ms, worst {arrival[-1]:.1f} ms, "
          f"best {arrival[0]:.1f} ms")
    print(f"  available -> ring: median {statistics.median(engine):.1f} ms, worst {engine[-1]:.1f} ms, "
          f"best {engine[0]:.1f} ms")


if __name__ == "__main__":
    main()
