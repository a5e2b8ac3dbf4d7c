"""No trace of who called: calls from known numbers through the whole flow over
real SIP, then every log line, the Redis data (at rest, on the wire and on
pub/sub), the metrics page, every API answer and the advocates' displays are
searched for those numbers in every common spelling. Per-call Redis data
must expire within ``routing.call_ttl_s``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from privacy.number_formats import occurrences

from ivr.adoption import HEARTBEAT_TTL_S
from ivr.ari.rest import AriRest
from ivr.cli import SANDBOX_CONFIG
from ivr.sandbox.control import STATE_IN_ROOT
from ivr.sandbox.phones_client import PhonesClient
from routing.daily import DAY_TTL_S

from .conftest import PHONES, TEST_PREFIX, TOKENS, EngineApi, eventually, settings_with
from .test_call_flow import ROUTE_S, TOLL_FREE, answered_at

SPANISH_LINE = "18883737889"
# One caller number per delivery format the carrier may use, and a relay provider.
ENGLISH_CALLER = "+15555550123"      # E.164: answered, with the interpreter operator
SPANISH_CALLER = "15555550124"       # country code without "+": Spanish line, answered
ABANDONING_CALLER = "5555550125"     # national: hangs up while waiting
RELAY_PROVIDER = "18005550711"       # routing.relay.numbers: a relay call, answered
NUMBERS = [ENGLISH_CALLER, SPANISH_CALLER, ABANDONING_CALLER, RELAY_PROVIDER]

CALL_TTL_S = 900
# Interpreter PINs long enough to be searched for without chance matches.
PINS = ("48151623420", "27182818284")
SANDBOX_SECRETS = ("sandbox-ari-password", "sandbox-redis-password", "sandbox-hmac-key", *TOKENS.values())

# Keys that are not about one call, and may therefore live without a TTL.
PERMANENT = ("advocates", "adv:", "tokens", "ringing", "q:", "epoch")


def _providers_with_long_pins() -> list[dict[str, Any]]:
    providers = tomllib.loads(SANDBOX_CONFIG.read_text())["interpreters"]["providers"]
    return [{**provider, "pin": pin} for provider, pin in zip(providers, PINS, strict=True)]


@pytest.fixture
def engine_settings():
    return settings_with(routing={"call_ttl_s": CALL_TTL_S},
                         interpreters={"providers": _providers_with_long_pins()})


@contextlib.asynccontextmanager
async def recording_redis(settings) -> AsyncIterator[tuple[list[str], list[str]]]:
    """Every command Redis runs (MONITOR, scripts' inner calls included) and
    every message published under the test prefix, while the block runs."""
    commands: list[str] = []
    published: list[str] = []
    client = aioredis.Redis.from_url(settings.redis.url, decode_responses=True,
                                     password=settings.redis.password.get_secret_value())
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{TEST_PREFIX}*")

    async def monitor() -> None:
        async with client.monitor() as m:
            async for command in m.listen():
                commands.append(command["command"])

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                published.append(f"{message['channel']} {message['data']}")

    tasks = [asyncio.create_task(monitor()), asyncio.create_task(listen())]
    try:
        yield commands, published
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pubsub.aclose()
        await client.aclose()


async def redis_dump(client: aioredis.Redis) -> dict[str, tuple[str, int, Any]]:
    """Every key (sandbox Redis only: SCAN) with its type, TTL and whole value."""
    dump = {}
    async for key in client.scan_iter(count=1000):
        kind = await client.type(key)
        read = {"hash": client.hgetall, "string": client.get, "set": client.smembers,
                "list": lambda k: client.lrange(k, 0, -1),
                "zset": lambda k: client.zrange(k, 0, -1, withscores=True),
                "stream": lambda k: client.xrange(k)}[kind]
        dump[key] = (kind, await client.ttl(key), await read(key))
    return dump


def ttl_problems(dump: dict[str, tuple[str, int, Any]]) -> list[str]:
    problems = []
    for key, (kind, ttl, _) in dump.items():
        if not key.startswith(TEST_PREFIX):
            continue
        name = key[len(TEST_PREFIX):]
        if name.startswith(("call:", "sip:")):
            if not 0 < ttl <= CALL_TTL_S:
                problems.append(f"{key} ({kind}): TTL {ttl}, want 1..{CALL_TTL_S}")
        elif name.endswith(":answered"):
            if not 0 < ttl <= 3600:
                problems.append(f"{key} ({kind}): TTL {ttl}, want 1..3600")
        elif name.startswith("engine:"):
            if not 0 < ttl <= HEARTBEAT_TTL_S:
                problems.append(f"{key} ({kind}): TTL {ttl}, want 1..{HEARTBEAT_TTL_S}")
        elif name.startswith("day:"):
            if not 0 < ttl <= DAY_TTL_S:
                problems.append(f"{key} ({kind}): TTL {ttl}, want 1..{DAY_TTL_S}")
        elif not name.startswith(PERMANENT):
            problems.append(f"{key} ({kind}): a key nobody listed in routing/keys.py (TTL {ttl})")
    return problems


async def hotline_call_of(engine, phones: PhonesClient, phone_call: str) -> str:
    """The hotline's id of a caller's call, found by their shared SIP Call-ID."""
    async def probe() -> str | None:
        sip_call_id = (await phones.call(phone_call))["sip_call_id"]
        return sip_call_id and await engine.store.call_for_sip_id(sip_call_id)
    return await eventually(probe, ROUTE_S, f"the hotline call of {phone_call}")


async def state_of(engine, call_id: str, state: str) -> bool:
    return (await engine.store.get_call(call_id) or {}).get("state") == state


async def three_party_bridge(ari: AriRest, call_id: str) -> bool:
    return any(call_id in b.channels and len(b.channels) == 3 for b in await ari.list_bridges())


async def test_no_caller_number_reaches_logs_redis_metrics_api_or_displays(
        engine, api: EngineApi, phones: PhonesClient, ari: AriRest, redis_client: aioredis.Redis,
        settings, caplog):
    caplog.set_level("DEBUG")
    asterisk_log = settings.sandbox.root / STATE_IN_ROOT.lstrip("/") / "log" / "messages.log"
    # Asterisk opens it at start-up (logger.conf): a search that lost it would pass unseen.
    assert asterisk_log.exists(), f"no Asterisk log at {asterisk_log}"
    asterisk_log_start = asterisk_log.stat().st_size
    seen: list[tuple[str, str]] = []  # (where, text) of everything to search

    async with recording_redis(settings) as (commands, published):
        # Spanish line, answered by ana (the only Spanish speaker).
        await api.act("ana", "login")
        spanish = await phones.place_call(SPANISH_CALLER, SPANISH_LINE, dtmf="2")
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering the Spanish call")
        spanish_call = await hotline_call_of(engine, phones, spanish["id"])

        # "Other languages": answered by luis, the interpreter operator joins.
        await api.act("luis", "login")
        english = await phones.place_call(ENGLISH_CALLER, TOLL_FREE, dtmf="32")
        await phones.wait_for(answered_at(PHONES["luis"]), ROUTE_S, what="luis answering")
        english_call = await hotline_call_of(engine, phones, english["id"])
        await eventually(lambda: three_party_bridge(ari, english_call), 20, "the interpreter joining")

        # Nobody free: this caller waits, then hangs up (before mei, who serves
        # English too, logs in).
        abandoning = await phones.place_call(ABANDONING_CALLER, TOLL_FREE, dtmf="12")
        abandoned_call = await hotline_call_of(engine, phones, abandoning["id"])
        await eventually(lambda: state_of(engine, abandoned_call, "waiting"), ROUTE_S, "the caller waiting")

        # A relay call, answered by mei (relay skill).
        relay = await phones.place_call(RELAY_PROVIDER, TOLL_FREE, dtmf="2")
        relay_call = await hotline_call_of(engine, phones, relay["id"])
        await eventually(lambda: state_of(engine, relay_call, "waiting"), ROUTE_S, "the relay call waiting")
        seen.append(("redis while calls wait and talk", repr(await redis_dump(redis_client))))
        await phones.hangup(abandoning["id"])
        await eventually(lambda: state_of(engine, abandoned_call, "ended"), 10, "the abandoned call ended")
        await api.act("mei", "login")
        await phones.wait_for(answered_at(PHONES["mei"]), 10, what="mei answering the relay call")
        await eventually(lambda: state_of(engine, relay_call, "bridged"), 5, "the relay call connected")

        calls = [spanish_call, english_call, abandoned_call, relay_call]
        for call_id in calls:
            seen.append((f"GET /calls/{call_id}", json.dumps(await api.request("GET", f"/calls/{call_id}", "sam"))))
        for advocate in TOKENS:
            seen.append((f"GET /advocates/{advocate}",
                         json.dumps(await api.request("GET", f"/advocates/{advocate}", advocate))))
        seen.append(("GET /advocates", json.dumps(await api.request("GET", "/advocates", "sam"))))

        for call in (spanish, english, relay):
            await phones.hangup(call["id"])
        for call_id in calls:
            await eventually(lambda c=call_id: state_of(engine, c, "ended"), 10, f"call {call_id} ended")
        await eventually(lambda: _no_calls(engine), 10, "every call actor gone")

        for path in ("/metrics", "/openapi.json", "/healthz"):
            seen.append((f"GET {path}", json.dumps(await api.request("GET", path))))
        dump = await redis_dump(redis_client)
        seen.append(("redis after the calls", repr(dump)))

    seen += [("engine logs", caplog.text), ("redis commands (MONITOR)", "\n".join(commands)),
             ("redis pub/sub", "\n".join(published)),
             ("advocates' and interpreters' displays",
              "\n".join(e.get("caller_id_seen", "") for e in phones.seen if e["direction"] == "in"))]
    with asterisk_log.open("rb") as log:
        log.seek(asterisk_log_start)
        seen.append(("asterisk messages.log", log.read().decode(errors="replace")))

    # The search looks where it should: the calls did leave their traces.
    assert len(commands) > 100 and published and "connected to advocate" in caplog.text
    assert len({call for call in calls if f"{TEST_PREFIX}call:{call}" in dump}) == 4
    leaks = [f"{where}: {hit}" for where, text in seen for hit in occurrences(text, NUMBERS)]
    assert leaks == []
    secrets = [f"{where}: {secret!r}" for where, text in seen for secret in (*SANDBOX_SECRETS, *PINS)
               if secret in text]
    assert secrets == []
    assert ttl_problems(dump) == []


async def _no_calls(engine) -> bool:
    return not engine.engine.calls
