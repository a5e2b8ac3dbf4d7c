"""Time from asking for an interpreter to caller, advocate and interpreter bridged.

  .venv/bin/python -m tests.bench.interpreter_join [--runs 20]

Against the sandbox: one caller connected to advocate ana; each run asks for
a Vietnamese interpreter through the API, and the clock (the engine's own,
from the request reaching the call to the interpreter's ChannelEnteredBridge)
stops when three parties share the bridge; then the interpreter is removed.
Most of the time is the provider's keying: account, PIN and language code
with the pauses of the sandbox provider's template.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import aiohttp

from ivr.app import running_engine
from ivr.call_states import Connected
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import Sandbox
from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import load_settings

from tests.e2e.conftest import eventually

from .sandbox_state import clear_prefix


async def measure(runs: int) -> list[float]:
    settings = load_settings(SANDBOX_CONFIG, engine={"instance_id": "bench-interpreter", "http_port": 0,
                                                     "log_level": "WARNING"},
                             redis={"key_prefix": "hlbench:"})
    Sandbox(settings, SANDBOX_CONFIG).up()
    await clear_prefix(settings)
    joins = []
    async with running_engine(settings) as engine, aiohttp.ClientSession() as http:
        phones = PhonesClient(http, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        auth = {"Authorization": "Bearer sandbox-token-ana"}
        base = f"http://127.0.0.1:{engine.http_port}"
        await http.post(f"{base}/advocates/ana/login", headers=auth)
        await phones.mark()
        call = await phones.place_call("+15555550143", settings.lines.toll_free, dtmf="12")
        connected = await eventually(lambda: _connected(engine), 30, "the call connected")
        for _ in range(runs):
            async with http.post(f"{base}/calls/{connected.key}/interpreter", headers=auth,
                                 json={"language": "vie"}) as response:
                assert response.status == 202, await response.text()
            state = connected.state
            joined = await eventually(lambda: _joined(state), 30, "the interpreter joined")
            joins.append(joined)
            await http.delete(f"{base}/calls/{connected.key}/interpreter", headers=auth)
            await eventually(lambda: _alone(state), 10, "the interpreter gone")
        await phones.hangup(call["id"])
        await http.post(f"{base}/advocates/ana/logout", headers=auth)
    return joins


async def _connected(engine):
    return next((c for c in engine.engine.calls.values() if isinstance(c.state, Connected)), None)


async def _joined(state: Connected):
    return state.interpreting is not None and state.interpreting.join_seconds


async def _alone(state: Connected):
    return state.interpreting is None or state.interpreting.leg is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    joins = sorted(asyncio.run(measure(parser.parse_args().runs)))
    print(f"interpreter request -> three parties bridged, {len(joins)} runs: "
          f"median {statistics.median(joins):.2f} s, worst {joins[-1]:.2f} s, best {joins[0]:.2f} s")


if __name__ == "__main__":
    main()
