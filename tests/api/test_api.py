"""The engine's HTTP API against a real Redis: tokens, roles, and 4xx that say why."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivr.api import STATE_ACTIONS, Api, Authenticator, RosterEntry
from ivr.openapi import OPENAPI
from metrics.hotline import HotlineMetrics
from routing.keys import Keys
from routing.queues import QueueSpec, WaitingCall
from routing.store import RoutingStore

QUEUES = (QueueSpec("english", frozenset({"en"})),)
TOKENS = {"ana": "token-ana", "luis": "token-luis", "sam": "token-sam"}


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RoutingStore]:
    client = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1", decode_responses=True)
    await client.flushdb()
    store = RoutingStore(client, queues=QUEUES, keys=Keys("api:"))
    for advocate in TOKENS:
        roles = {"advocate", "supervisor"} if advocate == "sam" else {"advocate"}
        await store.upsert_advocate(advocate, advocate.title(), f"PJSIP/{advocate}@carrier",
                                    frozenset({"en"}), frozenset(roles), sha(TOKENS[advocate]))
    yield store
    await client.aclose()


def make_app(store: RoutingStore):
    roster = [RosterEntry(a, sha(t), a == "sam") for a, t in TOKENS.items()]
    return Api(store, Authenticator(roster), HotlineMetrics(), ["english"], health=lambda: {"ari": True}).app()


@pytest.fixture
async def client(store: RoutingStore) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(store))) as test_client:
        yield test_client


def bearer(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[who]}"}


@pytest.mark.parametrize("headers, why", [
    ({}, "missing bearer token"),
    ({"Authorization": "Basic abc"}, "missing bearer token"),
    ({"Authorization": "Bearer not-a-token"}, "unknown token"),
])
async def test_requests_without_a_valid_token_get_401_saying_why(client, headers, why):
    response = await client.post("/advocates/ana/login", headers=headers)
    assert response.status == 401
    assert why in (await response.json())["error"]


async def test_an_advocate_acts_on_their_own_record_only(client):
    response = await client.post("/advocates/ana/away", headers=bearer("luis"))
    assert response.status == 403
    assert "own advocate" in (await response.json())["error"]


async def test_login_away_and_logout_change_the_advocates_state(client, store):
    for action, state in (("login", "available"), ("away", "away"), ("logout", "offline")):
        response = await client.post(f"/advocates/ana/{action}", headers=bearer("ana"))
        assert response.status == 200
        assert (await response.json())["state"] == state
        assert str((await store.get_advocate("ana")).state) == state


async def test_ending_wrap_up_when_not_in_wrap_up_is_a_conflict(client):
    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"))
    assert response.status == 409
    assert "not in wrap-up" in (await response.json())["error"]


async def test_unknown_action_and_unknown_advocate_are_404(client):
    response = await client.post("/advocates/ana/dance", headers=bearer("ana"))
    assert response.status == 404 and "unknown action 'dance'" in (await response.json())["error"]
    response = await client.get("/advocates/nobody", headers=bearer("sam"))
    assert response.status == 404 and "no advocate 'nobody'" in (await response.json())["error"]


async def test_only_supervisors_list_everyone(client):
    assert (await client.get("/advocates", headers=bearer("ana"))).status == 403
    response = await client.get("/advocates", headers=bearer("sam"))
    assert response.status == 200
    assert sorted(a["id"] for a in await response.json()) == ["ana", "luis", "sam"]


async def test_a_call_record_never_shows_the_caller_reference(client, store):
    await store.enqueue(WaitingCall("c1", "english", 5, 1_000, "e1"),
                        {"caller_ref": "0123456789abcdef", "language": "en"}, 60)
    assert (await client.get("/calls/c1", headers=bearer("ana"))).status == 403
    response = await client.get("/calls/c1", headers=bearer("sam"))
    body = await response.json()
    assert body["language"] == "en" and "caller_ref" not in body
    assert "0123456789abcdef" not in await response.text()
    assert (await client.get("/calls/c2", headers=bearer("sam"))).status == 404


async def test_metrics_read_queues_and_advocates_from_redis(client, store):
    await store.set_state("luis", "available")
    await store.enqueue(WaitingCall("c9", "english", 5, 1_000, "e1"), {}, 60)  # luis takes it
    await store.enqueue(WaitingCall("c10", "english", 5, 2_000, "e1"), {}, 60)
    page = await (await client.get("/metrics")).text()
    assert 'hotline_queue_depth{queue="english"} 1.0' in page
    assert 'hotline_advocates{state="ringing"} 1.0' in page
    assert "hotline_redis_up 1.0" in page


async def test_metrics_say_when_redis_is_unreachable():
    dead = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True, socket_connect_timeout=0.2)
    async with TestClient(TestServer(make_app(RoutingStore(dead, queues=QUEUES, keys=Keys("x:"))))) as c:
        page = await (await c.get("/metrics")).text()
    assert "hotline_redis_up 0.0" in page
    await dead.aclose()


async def test_every_served_route_is_in_the_openapi_document(client):
    served = set()
    for route in client.app.router.routes():
        path = route.resource.canonical
        # one route serves every state action; the document lists each
        served |= {path.replace("{action}", a) for a in STATE_ACTIONS} if "{action}" in path else {path}
    assert served == set(OPENAPI["paths"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=40), advocate=st.text(min_size=1, max_size=20),
       action=st.sampled_from(["login", "away", "logout", "available", "end-wrap-up", "x"]))
async def test_no_request_ever_gets_a_5xx(client, token, advocate, action):
    response = await client.post(f"/advocates/{advocate}/{action}".replace("?", "%3F").replace("#", "%23"),
                                 headers={"Authorization": f"Bearer {token}"} if token.isprintable() else {})
    assert response.status < 500
