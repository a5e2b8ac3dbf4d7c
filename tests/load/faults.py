"""Injecting the faults of a load run, at their time, one after another."""

from __future__ import annotations

import asyncio
import logging
import time

from ivr.sandbox.control import Sandbox
from ivr.sandbox.proxy import TcpProxy

from .engine_proc import EngineProcess
from .outcomes import Window
from .plan import Fault

log = logging.getLogger("load.faults")


class FaultInjector:
    def __init__(self, sandbox: Sandbox, engine: EngineProcess, ari_proxy: TcpProxy | None) -> None:
        self._sandbox = sandbox
        self._engine = engine
        self._ari_proxy = ari_proxy
        self.done: list[dict[str, object]] = []
        self.asterisk_down: list[Window] = []  # calls ending in these windows died with Asterisk
        self.engine_back_at: float | None = None  # when the last killed engine was running again

    async def run(self, faults: tuple[Fault, ...], t0: float) -> None:
        for fault in faults:
            delay = t0 + fault.at_s - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            started = time.time()
            log.warning("injecting %s", fault)
            await self.inject(fault)
            took = time.time() - started
            self.done.append({"kind": fault.kind, "at_s": started - t0, "for_s": fault.for_s, "took_s": took})
            log.warning("%s over after %.1f s", fault.kind, took)

    async def inject(self, fault: Fault) -> None:
        match fault.kind:
            case "kill-engine":
                await self._engine.kill()
                await asyncio.sleep(fault.for_s)  # the engine is down this long
                await self._engine.start()
                self.engine_back_at = time.time()
            case "restart-redis":
                await asyncio.to_thread(self._sandbox.restart_redis)
            case "redis-down":
                await asyncio.to_thread(self._sandbox.stop_redis)
                try:
                    await asyncio.sleep(fault.for_s)
                finally:
                    await asyncio.to_thread(self._sandbox.start_redis)
            case "restart-asterisk" | "crash-asterisk":
                started = time.time()
                try:
                    await asyncio.to_thread(self._sandbox.restart_asterisk, crash=fault.kind == "crash-asterisk")
                finally:
                    self.asterisk_down.append(Window(started, time.time()))
            case "drop-ari":
                assert self._ari_proxy is not None, "drop-ari needs the engine's ARI behind the proxy"
                await self._ari_proxy.block(b"/ari/events")
                try:
                    await asyncio.sleep(fault.for_s)
                finally:
                    self._ari_proxy.unblock()
