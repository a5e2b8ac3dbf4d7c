"""An offer made while no engine ran reaches the engine that adopts the call,
found by the load test's kill-engine fault: released before the adoption, it
ended the call in Redis and sent the caller to the backup destination."""

from __future__ import annotations


import aiohttp
import redis.asyncio as aioredis

from ivr.app import running_engine
from ivr.sandbox.phones_client import PhonesClient
from routing import AdvocateState, RoutingStore
from routing.keys import Keys

from .conftest import BACKUP_PHONE, PHONES, TEST_PREFIX, eventually, settings_with
from .test_call_flow import CALLER, ROUTE_S, TOLL_FREE, answered_at
from .test_engine_restart import doomed_engine
from .test_survive_redis import the_bridged_call


async def test_an_advocate_freed_while_no_engine_ran_takes_the_call_the_next_engine_adopts(
        phones: PhonesClient, http: aiohttp.ClientSession, redis_client: aioredis.Redis):
    async with doomed_engine(http):
        await phones.place_call(CALLER, TOLL_FREE, dtmf="12")

        async def waiting() -> bool:
            return await redis_client.zcard(f"{TEST_PREFIX}q:english:waiting") == 1
        await eventually(waiting, ROUTE_S, "the caller waiting")
    # No engine runs: the offer to ana is published to nobody.
    settings = settings_with(engine={"instance_id": "doomed"})
    store = RoutingStore(redis_client, [], Keys(TEST_PREFIX))
    offers = await store.set_state("ana", AdvocateState.AVAILABLE)
    assert [o.owner for o in offers] == ["doomed"]

    # The same engine, restarted (a fixed instance id, as under systemd).
    async with running_engine(settings) as engine:
        await phones.wait_for(answered_at(PHONES["ana"]), ROUTE_S, what="ana answering the adopted call")
        assert await eventually(lambda: the_bridged_call(engine), 5, "the adopted call bridged")
    assert not any(e["number"] == BACKUP_PHONE for e in await phones.seen_until_now())
