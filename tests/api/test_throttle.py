"""Throttling of unknown tokens: the pure limiter on a test clock, then the API
answering 429 with Retry-After over a real Redis."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import example, given
from hypothesis import strategies as st

from ivr.api import Api, Authenticator, RosterEntry
from ivr.openapi import OPENAPI
from ivr.settings import ApiSettings
from ivr.throttle import BadTokenThrottle, client_of
from metrics.hotline import HotlineMetrics
from routing.keys import Keys
from routing.queues import QueueSpec
from routing.store import RoutingStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, max_failures: int = 3, window_s: float = 60, max_clients: int = 100) -> BadTokenThrottle:
    return BadTokenThrottle(max_failures, window_s, max_clients, clock=clock)


# -- the limiter --------------------------------------------------------------------------


def test_a_client_is_shut_out_at_the_last_allowed_failure_until_the_oldest_leaves_the_window():
    clock = Clock()
    limiter = throttle(clock)
    assert [limiter.failed("10.0.0.1") for _ in range(2)] == [False, False]
    assert limiter.retry_after("10.0.0.1") is None
    clock.now += 10
    assert limiter.failed("10.0.0.1") is True

    assert limiter.retry_after("10.0.0.1") == pytest.approx(50)
    clock.now += 49
    assert limiter.retry_after("10.0.0.1") == pytest.approx(1)
    clock.now += 1
    assert limiter.retry_after("10.0.0.1") is None


def test_failures_spread_wider_than_the_window_never_shut_a_client_out():
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(20):
        limiter.failed("10.0.0.1")
        assert limiter.retry_after("10.0.0.1") is None
        clock.now += 30.1


def test_one_clients_failures_do_not_count_against_another():
    clock = Clock()
    limiter = throttle(clock)
    for _ in range(3):
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") is not None
    assert limiter.retry_after("10.0.0.2") is None


def test_memory_is_bounded_forgetting_the_least_recently_failing_client_first():
    clock = Clock()
    limiter = throttle(clock, max_clients=2)
    for client in ("a", "b", "a", "c"):
        limiter.failed(client)
        clock.now += 1
    assert len(limiter) == 2
    for _ in range(2):
        limiter.failed("a")
    assert limiter.retry_after("a") is not None  # a was kept: it failed after b


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), st.floats(0, 100)), max_size=200))
# Found by this test: the wait came to 60.000000000000114 (a float sum) past a 60 s window.
@example([("a", 22.876222127045263), ("a", 0.0), ("a", 0.0)])
def test_never_more_clients_than_the_bound_and_never_a_negative_wait(events):
    clock = Clock()
    limiter = throttle(clock, max_clients=4)
    for client, elapse in events:
        clock.now += elapse
        limiter.failed(client)
        assert len(limiter) <= 4
        wait = limiter.retry_after(client)
        assert wait is None or 0 < wait <= 60


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"window_s": 0}, {"max_clients": 0}])
def test_limits_must_be_positive(kwargs):
    with pytest.raises(ValueError):
        BadTokenThrottle(**{"max_failures": 3, "window_s": 60, "max_clients": 10, **kwargs})


# -- who the client is ---------------------------------------------------------------------


@pytest.mark.parametrize("peer, forwarded, trusted, client", [
    ("10.0.0.7", None, (), "10.0.0.7"),
    ("10.0.0.7", "1.2.3.4", (), "10.0.0.7"),                      # anyone can write the header
    ("127.0.0.1", "1.2.3.4", ("127.0.0.1",), "1.2.3.4"),          # our TLS proxy says who it is
    ("127.0.0.1", "6.6.6.6, 1.2.3.4", ("127.0.0.1",), "1.2.3.4"),  # the client's own claim is ignored
    ("127.0.0.1", "1.2.3.4, 10.0.0.2", ("127.0.0.1", "10.0.0.2"), "1.2.3.4"),
    ("127.0.0.1", None, ("127.0.0.1",), "127.0.0.1"),
    ("2001:db8:1:2:3:4:5:6", None, (), "2001:db8:1:2::/64"),       # one host may hold a whole /64
    ("::ffff:10.0.0.7", None, (), "10.0.0.7"),
    (None, None, (), "unknown"),
])
def test_the_client_is_the_peer_or_what_a_trusted_proxy_says(peer, forwarded, trusted, client):
    assert client_of(peer, forwarded, trusted) == client


def test_addresses_of_one_ipv6_64_share_a_counter():
    assert client_of("2001:db8::1", None, ()) == client_of("2001:db8::ffff:1", None, ())


# -- the API -------------------------------------------------------------------------------

TOKENS = {"ana": "token-ana", "sam": "token-sam"}
LIMIT = 3


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient]:
    redis = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3", decode_responses=True)
    await redis.flushdb()
    store = RoutingStore(redis, queues=(QueueSpec("english", frozenset({"en"})),), keys=Keys("throttle:"))
    for advocate, token in TOKENS.items():
        await store.upsert_advocate(advocate, advocate, f"PJSIP/{advocate}", frozenset({"en"}),
                                    frozenset({"advocate"}), sha(token))
    roster = [RosterEntry(a, sha(t), a == "sam") for a, t in TOKENS.items()]
    # The test client connects from 127.0.0.1: a trusted proxy here, so that
    # X-Forwarded-For plays the part of several clients.
    auth = Authenticator(roster, BadTokenThrottle(LIMIT, 60, 100), trusted_proxies=("127.0.0.1",))
    api = Api(store, auth, HotlineMetrics(), ["english"], health=lambda: {"ari": True})
    async with TestClient(TestServer(api.app())) as test_client:
        yield test_client
    await redis.aclose()


def as_client(address: str, token: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, "Authorization": f"Bearer {token}"}


async def test_after_too_many_unknown_tokens_every_request_gets_429_with_retry_after(client, caplog):
    for _ in range(LIMIT):
        assert (await client.get("/advocates/ana", headers=as_client("1.2.3.4", "guess"))).status == 401
    assert "client 1.2.3.4 refused" in caplog.text

    answers = [await client.get("/advocates/ana", headers=as_client("1.2.3.4", token))
               for token in ("guess", "token-ana", "token-an", "token-ana-")]

    # The right token, a near miss and a wild guess get the same answer.
    assert {r.status for r in answers} == {429}
    assert {await r.text() for r in answers} == {await answers[0].text()}
    assert {r.headers["Retry-After"] for r in answers} == {"60"}
    assert "error" in await answers[0].json()


async def test_a_shut_out_address_does_not_lock_out_anyone_else(client):
    for _ in range(LIMIT):
        await client.get("/advocates/ana", headers=as_client("1.2.3.4", "guess"))

    response = await client.get("/advocates/ana", headers=as_client("5.6.7.8", "token-ana"))

    assert response.status == 200


async def test_a_success_resets_no_counter(client):
    for _ in range(LIMIT - 1):
        await client.get("/advocates/ana", headers=as_client("1.2.3.4", "guess"))
    # A valid token from the guesser's address, and from elsewhere.
    assert (await client.get("/advocates/ana", headers=as_client("1.2.3.4", "token-ana"))).status == 200
    assert (await client.get("/advocates/sam", headers=as_client("5.6.7.8", "token-sam"))).status == 200

    assert (await client.get("/advocates/ana", headers=as_client("1.2.3.4", "guess"))).status == 401
    assert (await client.get("/advocates/ana", headers=as_client("1.2.3.4", "token-ana"))).status == 429


async def test_requests_without_a_token_or_with_a_valid_one_are_not_counted(client):
    for _ in range(2 * LIMIT):
        assert (await client.get("/advocates/ana", headers={"X-Forwarded-For": "1.2.3.4"})).status == 401
        assert (await client.get("/advocates/ana", headers=as_client("1.2.3.4", "token-ana"))).status == 200
        # Acting on another advocate's record is forbidden, not a guess.
        assert (await client.get("/advocates/sam", headers=as_client("1.2.3.4", "token-ana"))).status == 403


async def test_public_pages_stay_open_to_a_shut_out_address(client):
    for _ in range(LIMIT):
        await client.get("/advocates/ana", headers=as_client("1.2.3.4", "guess"))
    for path in ("/metrics", "/openapi.json"):
        assert (await client.get(path, headers=as_client("1.2.3.4", "guess"))).status == 200


def test_every_operation_behind_a_token_documents_429_with_retry_after():
    for path, item in OPENAPI["paths"].items():
        for method, operation in item.items():
            if operation.get("security") != []:
                assert "Retry-After" in operation["responses"]["429"]["headers"], (method, path)


def test_the_settings_defaults_throttle_guessing():
    defaults = ApiSettings()
    assert defaults.bad_tokens_max == 10 and defaults.bad_tokens_window_s == 300
    assert defaults.trusted_proxies == ()
