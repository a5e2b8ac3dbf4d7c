"""Time from an advocate becoming available to the waiting call ringing at their phone.

  .venv/bin/python -m tests.bench.ring_latency [--runs 20]

Runs against the sandbox (brought up if needed) with an engine of its own.
Each run: a caller waits in the queue, the advocate goes available through
the HTTP API, and the clock stops when the advocate's simulated phone sees
the INVITE arrive (its StasisStart). Both timestamps come from this
machine's clock. The run includes the API request, the Lua matcher, the
pub/sub offer, the originate and the SIP INVITE over loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp

from ivr.app import running_engine
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import load_settings

from tests.e2e.conftest import eventually

from .sandbox_state import clear_prefix

PREFIX = "hlbench:"


async def measure(runs: int) -> list[float]:
    settings = load_settings(SANDBOX_CONFIG, engine={"instance_id": "bench-ring", "http_port": 0,
                                                     "log_level": "WARNING"},
                             redis={"key_prefix": PREFIX}, routing={"advocate_ring_s": 10})
    Sandbox(settings, SANDBOX_CONFIG).up()
    await clear_prefix(settings)
    latencies = []
    async with running_engine(settings) as engine, aiohttp.ClientSession() as http:
        phones = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        await phones.script("1001", never_answer=True)
        api = f"http://127.0.0.1:{engine.http_port}/advocates/ana"
        auth = {"Authorization": "Bearer sandbox-token-ana"}
        await http.post(f"{api}/away", headers=auth)
        for _ in range(runs):
            await phones.mark()
            call = await phones.place_call("+15555550142", settings.lines.toll_free, dtmf="12")
            await eventually(lambda: engine.store.waiting("english"), 30, "the call in the queue")
            started = time.time()
            async with http.post(f"{api}/available", headers=auth) as response:
                assert response.status == 200, await response.text()
            ring = await phones.wait_for(lambda e: e["number"] == "1001" and e["kind"] == "ringing", 10,
                                         what="the advocate's phone ringing")
            latencies.append(ring["time"] - started)
            await phones.hangup(call["id"])
            await phones.wait_for(lambda e: e["call"] == call["id"] and e["kind"] == "ended", 10,
                                  what="the caller gone")
            # the cancelled offer gave ana back
            await eventually(lambda: _in_state(http, api, auth, "available"), 10, "ana available again")
            await http.post(f"{api}/away", headers=auth)
        await phones.reset()
    return latencies


async def _in_state(http, api: str, auth: dict, state: str) -> bool:
    async with http.get(api, headers=auth) as response:
        return (await response.json())["state"] == state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    latencies = asyncio.run(measure(args.runs))
    ms = sorted(x * 1000 for x in latencies)
    print(f"advocate available -> call rings at the advocate, {len(ms)} runs: "
          f"median {statistics.median(ms):.1f} ms, worst {ms[-1]:.1f} ms, best {ms[0]:.1f} ms")
    print("all (ms): " + " ".join(f"{x:.1f}" for x in ms))


if __name__ == "__main__":
    main()
