"""Shared fixtures: one real redis-server for the whole test session.

It runs on a free loopback port with persistence off, in a temporary
directory; folders that need Redis take ``redis_url`` and flush their own
database or key prefix.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

# Property tests share the machine with a real Asterisk, phones and Redis:
# an example's time says nothing about the code under test, so no deadline
# and no "too slow" check. The inputs stay random: that is their point.
settings.register_profile("hotline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hotline")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


START_TIMEOUT_S = 10.0


def wait_for_ping(url: str, process: subprocess.Popen, timeout_s: float) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.02)  # polling the condition, bounded by the deadline
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir: Path = tmp_path_factory.mktemp("redis")
    # The free port can be taken between our probe and redis binding it;
    # try a few ports before giving up.
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--logfile", str(workdir / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        if wait_for_ping(url, process, START_TIMEOUT_S):
            break
        process.terminate()
        process.wait(timeout=5)
    else:
        log = (workdir / "redis.log").read_text() if (workdir / "redis.log").exists() else ""
        pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT_S}s\n{log}")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
