"""The engine under load: a real `hotline run` process, so it can be SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

# Counters read from the engine's /metrics for the report, summed over their labels.
COUNTERS = {"received": "hotline_calls_received_total", "offered": "hotline_calls_offered_total",
            "answered": "hotline_calls_answered_total", "abandoned": "hotline_calls_abandoned_total",
            "fallbacks": "hotline_fallbacks_total"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class EngineProcess:
    def __init__(self, env: dict[str, str], log_path: Path, http: aiohttp.ClientSession) -> None:
        self.port = free_port()
        self._env = {**os.environ, **env, "HOTLINE_ENGINE__HTTP_PORT": str(self.port)}
        self._log_path = log_path
        self._http = http
        self._proc: asyncio.subprocess.Process | None = None
        self.lives: list[dict[str, object]] = []  # one per process started: pid, RSS, counters

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_s: float = 60.0) -> None:
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "from ivr.cli import main; main()", "run", env=self._env, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=log)
        finally:
            log.close()
        await self._healthy(timeout_s)
        self.lives.append({"pid": self._proc.pid, "rss_start_mb": rss_mb(self._proc.pid), "rss_end_mb": 0.0})

    async def _healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self._proc is not None
            if self._proc.returncode is not None:
                raise RuntimeError(f"the engine exited at start ({self._proc.returncode}); see {self._log_path}")
            try:
                async with self._http.get(f"{self.base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the engine was not healthy within {timeout_s:.0f} s; see {self._log_path}")
            await asyncio.sleep(0.2)

    async def scrape(self) -> None:
        """Keep this process's latest counters and memory for the report."""
        if self._proc is None or self._proc.returncode is not None:
            return
        try:
            async with self._http.get(f"{self.base}/metrics") as response:
                page = await response.text()
        except aiohttp.ClientError:
            return
        life = self.lives[-1]
        for name, metric in COUNTERS.items():
            life[name] = _sum(page, metric)
        life["rss_end_mb"] = rss_mb(self._proc.pid)

    async def kill(self) -> None:
        await self.scrape()
        assert self._proc is not None
        self.lives[-1]["killed"] = True
        self._proc.send_signal(signal.SIGKILL)
        await self._proc.wait()

    async def stop(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        await self.scrape()
        self._proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._proc.wait(), 15)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


def _sum(page: str, name: str) -> float:
    total = 0.0
    for line in page.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rpartition(" ")[2])
    return total
