"""The shipped configs keep ARI, Redis and the engine's API on loopback, and
Redis behind a password: parsed from the files as they are shipped."""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ivr.sandbox.control import Sandbox, render
from ivr.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "hotline.example.toml"
SANDBOX = ROOT / "deploy" / "sandbox" / "hotline.toml"
ASTERISK = ROOT / "deploy" / "asterisk"
REDIS_CONF = ROOT / "deploy" / "redis" / "redis.conf"


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redis_directives(path: Path) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            directives[words[0].lower()] = words[1:]
    return directives


@pytest.mark.parametrize("path", [EXAMPLE, SANDBOX], ids=["example", "sandbox"])
def test_the_engine_reaches_ari_and_redis_and_serves_its_api_on_loopback(path: Path):
    settings = tomllib.loads(path.read_text())

    assert loopback(urlsplit(settings["ari"]["url"]).hostname)
    assert loopback(urlsplit(settings["redis"]["url"]).hostname)
    assert loopback(settings["engine"].get("http_host", "127.0.0.1"))
    assert settings["redis"]["password"], "Redis AUTH"
    assert all(loopback(proxy) for proxy in settings.get("api", {}).get("trusted_proxies", []))


@pytest.mark.parametrize("path", [EXAMPLE, SANDBOX], ids=["example", "sandbox"])
def test_asterisk_serves_ari_only_on_the_loopback_address_the_engine_uses(path: Path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("HOTLINE_")]:
        monkeypatch.delenv(name)
    settings = load_settings(path, engine={"sandbox": True})  # the example's sample passwords
    values = Sandbox(settings, path).config_values()

    http = render((ASTERISK / "http.conf").read_text(), values, source="http.conf")

    binds = re.findall(r"^\s*(tls)?bindaddr\s*=\s*(\S+)", http, re.MULTILINE)
    assert binds and all(loopback(address) for _, address in binds)
    assert not re.search(r"^\s*tlsenable\s*=\s*yes", http, re.MULTILINE)


def test_no_asterisk_config_holds_a_password_of_its_own():
    # ARI's password comes from settings (@{ARI_PASSWORD}); nothing else may hard-wire one.
    for path in ASTERISK.glob("*.conf"):
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*(password|secret)\s*=\s*(\S+)", line)
            if match:
                assert match.group(2).startswith("@{"), f"{path.name}: {line}"


def test_the_example_redis_listens_on_loopback_only_with_a_password():
    directives = redis_directives(REDIS_CONF)

    assert directives["bind"] and all(loopback(a.lstrip("-")) for a in directives["bind"])
    assert directives["protected-mode"] == ["yes"]
    assert directives["requirepass"] and directives["requirepass"][0]
    example = tomllib.loads(EXAMPLE.read_text())["redis"]
    assert directives["port"] == [str(urlsplit(example["url"]).port)]
