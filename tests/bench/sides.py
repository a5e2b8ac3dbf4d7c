"""The two systems the bench compares, behind the same few operations.

``EngineSide`` is this project's engine, run as a process of its own (so its
CPU time is its own) with a roster of bench advocates and a line that skips
the menu. ``AppQueueSide`` is Asterisk's app_queue, queue ``bench`` of
deploy/asterisk/queues.conf, reached through the line of
deploy/asterisk/extensions_bench.conf. Both ring the same advocates' phones
(PJSIP/1001@carrier ...) on the sandbox's simulated PSTN.

An advocate becomes available through each system's own control: the
engine's HTTP API (``POST /advocates/{id}/available``), and for app_queue an
unpause of the member over ARI (``QUEUE_MEMBER(bench,paused,...) = 0``, the
same set_member_paused as AMI's QueuePause), both one HTTP request on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from ivr.sandbox.control import ETC_IN_ROOT, Sandbox
from ivr.settings import REPO, Settings
from routing import Keys, QueueSpec, RoutingStore
from tests.e2e.conftest import eventually

ENGINE_DID = "18883737998"  # lines.entries -> the menu entry "bench": straight to the queue
APP_QUEUE_DID = "18883737999"  # deploy/asterisk/extensions_bench.conf
QUEUE = "bench"  # deploy/asterisk/queues.conf
ENGINE_PREFIX = "hlbench:"
ENGINE_QUEUE = "english"  # where the bench entry's callers (English, "other") wait
MEMBERS_FILE = "queues_bench_members.conf"
# Appended to the real menu for the bench engine only: callers on the bench
# line skip the menu, as app_queue's callers do.
BENCH_ENTRY = '\n[entries.bench]\nlanguage = "en"\ncall_type = "other"\nfinish = true\n'


@dataclass(frozen=True)
class Advocate:
    id: str
    number: str  # the phone on the simulated PSTN
    token: str

    @property
    def endpoint(self) -> str:
        return f"PJSIP/{self.number}@carrier"


def roster(n: int) -> list[Advocate]:
    return [Advocate(f"bench{i:03d}", str(1000 + i), f"bench-token-{i:03d}") for i in range(1, n + 1)]


class EngineSide:
    name = "engine"
    did = ENGINE_DID

    def __init__(self, settings: Settings, advocates: Sequence[Advocate], http: aiohttp.ClientSession,
                 profile: Path | None = None) -> None:
        self.settings = settings
        self.profile = profile  # py-spy's flame graph of the engine, written when it stops
        self.advocates = list(advocates)
        self.http = http
        self.state_dir = settings.sandbox.state_dir
        self.log_path = self.state_dir / "bench-engine.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.api = ""
        self._api_slots = asyncio.Semaphore(10)
        self._redis = aioredis.Redis.from_url(settings.redis.url, decode_responses=True,
                                              password=_secret(settings.redis.password))
        queues = [QueueSpec(q.name, q.skills) for q in settings.routing.queues]
        self.keys = Keys(ENGINE_PREFIX)
        self.store = RoutingStore(self._redis, queues, self.keys)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        # The bench's own prefix on the sandbox's Redis; never on a live server.
        keys = [key async for key in self._redis.scan_iter(match=f"{ENGINE_PREFIX}*", count=1000)]
        if keys:
            await self._redis.delete(*keys)
        menu = self.state_dir / "bench-menu.toml"
        menu.write_text(self.settings.menu.path.read_text() + BENCH_ENTRY)
        env = {**os.environ,
               "HOTLINE_ENGINE__INSTANCE_ID": "bench-engine", "HOTLINE_ENGINE__HTTP_PORT": "0",
               "HOTLINE_ENGINE__LOG_LEVEL": "INFO",  # as in production
               "HOTLINE_REDIS__KEY_PREFIX": ENGINE_PREFIX,
               # As queues.conf was rendered from the same settings.
               "HOTLINE_ROUTING__ADVOCATE_RING_S": str(self.settings.routing.advocate_ring_s),
               "HOTLINE_ROUTING__WRAP_UP_S": str(self.settings.routing.wrap_up_s),
               "HOTLINE_LINES__ENTRIES": json.dumps({ENGINE_DID: "bench"}),
               "HOTLINE_MENU__PATH": str(menu),
               "HOTLINE_ADVOCATES": json.dumps([
                   {"id": a.id, "name": a.id, "endpoint": a.endpoint, "skills": ["en"],
                    "token_sha256": hashlib.sha256(a.token.encode()).hexdigest()} for a in self.advocates])}
        command = [str(Path(sys.executable).parent / "hotline"), "run"]
        if self.profile is not None:
            # Its CPU and memory figures are then py-spy's, not the engine's.
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", "250",
                       "--format", "flamegraph" if self.profile.suffix == ".svg" else "raw",
                       "--output", str(self.profile), "--", *command]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=log, cwd=REPO, env=env)
        port = await _engine_port(self.log_path, self.process)
        self.api = f"http://127.0.0.1:{port}"
        await self._wait_connected()
        await asyncio.gather(*(self._post(a, "away") for a in self.advocates))

    async def _wait_connected(self) -> None:
        async def connected() -> bool:
            async with self.http.get(f"{self.api}/healthz") as response:
                return response.status == 200 and bool((await response.json()).get("ari"))
        await eventually(connected, 20, "the bench engine connected to ARI")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # py-spy writes its flame graph on SIGINT, and passes it on to the engine.
            self.process.send_signal(signal.SIGINT if self.profile else signal.SIGTERM)
            try:
                await asyncio.to_thread(self.process.wait, 15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        await self._redis.aclose()

    async def _post(self, advocate: Advocate, action: str) -> None:
        # Setting 200 advocates at once is the bench's doing, not advocates': a
        # few at a time, so the engine's event loop never lags its Redis timeouts.
        async with self._api_slots, self.http.post(f"{self.api}/advocates/{advocate.id}/{action}",
                                  headers={"Authorization": f"Bearer {advocate.token}"}) as response:
            if response.status != 200:
                raise RuntimeError(f"engine: {action} {advocate.id}: {response.status} {await response.text()}")

    async def make_available(self, advocate: Advocate) -> None:
        await self._post(advocate, "available")

    async def staff(self, available: Iterable[Advocate], among: Sequence[Advocate] | None = None) -> None:
        """Exactly these advocates available, the others (of `among`, default all) away,
        once no phone rings."""
        await self.settle()
        chosen = {a.id for a in available}
        await asyncio.gather(*(self._post(a, "available" if a.id in chosen else "away")
                               for a in (among or self.advocates)))

    async def settle(self, timeout_s: float = 30) -> None:
        """Wait until no advocate rings or is on a call (cancelled offers give them back)."""
        deadline = time.monotonic() + timeout_s
        while any(a.state in {"ringing", "on_call"} for a in await self.store.list_advocates()):
            if time.monotonic() > deadline:
                raise TimeoutError("engine: advocates still ringing after the callers left")
            await asyncio.sleep(0.05)

    async def waiting(self) -> int:
        return len(await self.store.waiting(ENGINE_QUEUE))

    async def pair(self, callers: Sequence[dict], rings: Sequence[dict]) -> list[tuple[dict, dict]]:
        """(caller, the ring their call caused): the engine's Redis records name the advocate."""
        number = {a.id: a.number for a in self.advocates}
        ring_at = {r["number"]: r for r in rings}
        async with self._redis.pipeline(transaction=False) as pipe:
            for caller in callers:
                pipe.get(self.keys.sip_call(caller["sip_call_id"]))
            call_ids = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id in call_ids:
                pipe.hget(self.keys.call(call_id or ""), "advocate")
            advocates = await pipe.execute()
        return [(caller, ring_at[number[advocate]]) for caller, advocate in zip(callers, advocates)
                if advocate in number and number[advocate] in ring_at]


class AppQueueSide:
    name = "app_queue"
    did = APP_QUEUE_DID

    def __init__(self, settings: Settings, sandbox: Sandbox, advocates: Sequence[Advocate],
                 http: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.advocates = list(advocates)
        self.http = http
        self.ari = f"{settings.ari.url}/ari"
        self.auth = {"Authorization": aiohttp.encode_basic_auth(settings.ari.username,
                                                                settings.ari.password.get_secret_value())}

    @property
    def pid(self) -> int:
        return int(self.sandbox.asterisk.pidfile.read_text())

    def cli(self, command: str) -> str:
        root = self.settings.sandbox.root
        return subprocess.run(["chroot", str(root), "/usr/sbin/asterisk", "-C", f"{ETC_IN_ROOT}/asterisk.conf",
                               "-rx", command], capture_output=True, text=True, check=True).stdout

    async def start(self) -> None:
        # Each member's state is their phone's (queues.conf, extensions_pstn.conf).
        members = "".join(f"member => {a.endpoint},0,{a.id},{_phone_state(a)}\n" for a in self.advocates)
        etc = self.settings.sandbox.root / ETC_IN_ROOT.lstrip("/")
        (etc / MEMBERS_FILE).write_text(members)
        # Loaded afresh, never reloaded: a reload keeps each member's last call,
        # and a bench run started within the wrap-up time (queues.conf) of the
        # previous run's answered calls would find every member still in wrap-up.
        # (An Asterisk started before queues.conf existed has app_queue declined.)
        self.cli("module unload app_queue.so")
        self.cli("module load app_queue.so")
        self.cli("dialplan reload")
        shown = self.cli(f"queue show {QUEUE}")
        if "'leastrecent'" not in shown or self.advocates[-1].id not in shown:
            raise RuntimeError(f"app_queue: queue {QUEUE} not loaded as expected:\n{shown}")
        await asyncio.gather(*(self._paused(a, True) for a in self.advocates))
        # No phone rings now (the bench hung every channel up): every lamp idle.
        await asyncio.gather(*(self._set_global(f"DEVICE_STATE({_phone_state(a)})", "NOT_INUSE")
                               for a in self.advocates))

    async def stop(self) -> None:
        pass

    async def _set_global(self, variable: str, value: str) -> None:
        # ARI sets a "global variable" named like a function by writing the function.
        async with self.http.post(f"{self.ari}/asterisk/variable", headers=self.auth,
                                  params={"variable": variable, "value": value}) as response:
            if response.status != 204:
                raise RuntimeError(f"app_queue: {variable} = {value}: {response.status} {await response.text()}")

    async def _paused(self, advocate: Advocate, paused: bool) -> None:
        # set_member_paused, as AMI's QueuePause does.
        await self._set_global(f"QUEUE_MEMBER({QUEUE},paused,{advocate.endpoint})", "1" if paused else "0")

    async def make_available(self, advocate: Advocate) -> None:
        await self._paused(advocate, False)

    async def staff(self, available: Iterable[Advocate], among: Sequence[Advocate] | None = None) -> None:
        chosen = {a.id for a in available}
        await asyncio.gather(*(self._paused(a, a.id not in chosen) for a in (among or self.advocates)))

    async def settle(self, timeout_s: float = 30) -> None:
        pass  # a caller hanging up ends app_queue's ring of the member with it

    async def waiting(self) -> int:
        async with self.http.get(f"{self.ari}/channels", headers=self.auth) as response:
            channels = await response.json()
        return sum(1 for c in channels if c.get("dialplan", {}).get("app_name") == "Queue")

    async def pair(self, callers: Sequence[dict], rings: Sequence[dict]) -> list[tuple[dict, dict]]:
        """(caller, the ring their call caused): the advocate's display carries the SIP Call-ID."""
        by_call_id = {c["sip_call_id"]: c for c in callers}
        pairs = []
        for ring in rings:
            match = re.match(r"Hotline (\S+) <", ring.get("caller_id_seen", ""))
            if match and match.group(1) in by_call_id:
                pairs.append((by_call_id[match.group(1)], ring))
        return pairs


def _phone_state(advocate: Advocate) -> str:
    return f"Custom:phone{advocate.number}"


async def _engine_port(log_path: Path, process: subprocess.Popen[bytes], timeout_s: float = 30) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bench engine exited at start; see {log_path}")
        found = re.search(r"API on [0-9.]+:(\d+)", log_path.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the bench engine did not start within {timeout_s:.0f} s; see {log_path}")


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None
