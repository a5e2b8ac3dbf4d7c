"""deploy/redis/redis.conf on a real redis-server: after a crash (SIGKILL),
Redis comes back with every write it acknowledged, never with an older
snapshot, which the engine would take for current data."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from ivr.settings import REPO

REDIS_CONF = REPO / "deploy" / "redis" / "redis.conf"

PASSWORD = "persistence-test"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(["redis-server", str(REDIS_CONF), "--port", str(port), "--dir", str(directory),
                               "--requirepass", PASSWORD],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with redis.Redis(port=port, password=PASSWORD) as client:
                if client.info("persistence")["loading"] == 0:
                    return server
        except redis.ConnectionError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def test_a_redis_killed_comes_back_with_every_acknowledged_write(tmp_path: Path):
    port = free_port()
    server = start(tmp_path, port)
    try:
        with redis.Redis(port=port, password=PASSWORD, decode_responses=True) as client:
            assert client.config_get("save")["save"] == ""
            assert client.config_get("appendfsync")["appendfsync"] == "always"
            for n in range(100):
                client.hset("hltest:adv:ana", mapping={"state": "on_call", "n": n})
    finally:
        server.send_signal(signal.SIGKILL)  # a crash: no save on the way down
        server.wait()

    server = start(tmp_path, port)
    try:
        with redis.Redis(port=port, password=PASSWORD, decode_responses=True) as client:
            assert client.hgetall("hltest:adv:ana") == {"state": "on_call", "n": "99"}
    finally:
        server.terminate()
        server.wait()
