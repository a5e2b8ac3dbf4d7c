"""deploy/redis/redis.conf on a real redis-server: after a crash (SIGKILL),
Redis comes back with every write it acknowledged, never with an older
snapshot, which the engine would take for current data."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis

from ivr.settings import REPO
from tests.conftest import START_TIMEOUT_S, free_port, wait_for_ping

REDIS_CONF = REPO / "deploy" / "redis" / "redis.conf"

PASSWORD = "persistence-test"


def start(directory: Path, port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(["redis-server", str(REDIS_CONF), "--port", str(port), "--dir", str(directory),
                               "--requirepass", PASSWORD],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # PING answers LOADING until the append-only file is read back.
    assert wait_for_ping(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", server, START_TIMEOUT_S), "redis-server up"
    return server


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
