"""The engine's HTTP API against a real Redis: tokens, roles, and 4xx that say why."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from api_support import QUEUES, TOKENS, authenticator, bearer, make_app, sha
from ivr.api import CALL_FIELDS, STATE_ACTIONS, Api
from ivr.monitoring import Mode, MonitorAnswer
from ivr.openapi import OPENAPI
from metrics.hotline import HotlineMetrics
from routing.advocates import AdvocateState
from routing.keys import Keys
from routing.queues import WaitingCall
from routing.store import RoutingStore

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


async def test_the_advocate_on_a_call_reads_it_with_its_relay_flag_and_nobody_else_does(client, store):
    await store.enqueue(WaitingCall("c1", "english", 5, 1_000, "e1"), {"relay": "1", "language": "en"}, 60)
    await store.set_state("ana", AdvocateState.AVAILABLE)  # offered to ana at once

    response = await client.get("/calls/c1", headers=bearer("ana"))
    assert response.status == 200
    body = await response.json()
    assert (body["relay"], body["advocate"], body["state"]) == ("1", "ana", "offered")
    assert (await client.get("/calls/c1", headers=bearer("luis"))).status == 403
    # Another advocate cannot tell a missing call from someone else's.
    assert (await client.get("/calls/c2", headers=bearer("luis"))).status == 403


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
    async with TestClient(TestServer(make_app(dead, Keys("x:")))) as c:
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


# -- tokens: garbled headers and bytes that are not UTF-8 --------------------------------


@pytest.mark.parametrize("header", ["Bearer", "Bearer    ", "Token token-ana", "token-ana",
                                    "Bearer token-ana-but-longer", "Bearer\ttoken-ana"])
async def test_garbled_authorization_header_gets_a_json_401(client, header):
    response = await client.get("/advocates/ana", headers={"Authorization": header})
    assert response.status == 401
    assert response.content_type == "application/json"
    assert set(await response.json()) == {"error"}


async def test_the_bearer_scheme_is_case_insensitive(client):
    response = await client.get("/advocates/ana", headers={"Authorization": "bearer token-ana"})
    assert response.status == 200


async def raw_status(client: TestClient, method: bytes, path: bytes, authorization: bytes) -> int:
    """The status of a request written byte for byte: aiohttp's client would
    re-encode a header, and what matters here is what arrives on the wire."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(b"%s %s HTTP/1.1\r\nHost: test\r\nAuthorization: %s\r\nContent-Length: 0\r\n"
                     b"Connection: close\r\n\r\n" % (method, path, authorization))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


async def test_a_token_that_is_not_utf8_is_unknown_not_a_server_error(client):
    assert await raw_status(client, b"GET", b"/advocates", b"Bearer \xff\xfe") == 401


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(authorization=st.one_of(st.binary(max_size=40), st.binary(max_size=40).map(lambda b: b"Bearer " + b)),
       request=st.sampled_from([(b"GET", b"/advocates"), (b"GET", b"/advocates/ana"),
                                (b"POST", b"/advocates/ana/login"), (b"GET", b"/calls/c1")]))
async def test_no_authorization_bytes_ever_get_a_5xx(client, authorization, request):
    # CR and LF would end the header; every other byte must be refused with a 4xx.
    authorization = authorization.replace(b"\r", b"").replace(b"\n", b"")
    assert await raw_status(client, *request, authorization) < 500


# -- advocates ---------------------------------------------------------------------------


async def test_an_unknown_action_is_a_404_listing_the_actions(client):
    response = await client.post("/advocates/ana/dance", headers=bearer("ana"))
    assert response.status == 404
    error = (await response.json())["error"]
    assert all(action in error for action in STATE_ACTIONS)


async def test_an_advocate_may_not_read_another_advocate(client):
    response = await client.get("/advocates/ana", headers=bearer("luis"))
    assert response.status == 403


async def test_a_supervisor_may_act_on_another_advocate(client, store):
    response = await client.post("/advocates/ana/login", headers=bearer("sam"))
    assert response.status == 200
    assert str((await store.get_advocate("ana")).state) == "available"


async def test_ending_wrap_up_makes_the_advocate_available(client, store):
    await store.set_state("ana", "available")
    await store.enqueue(WaitingCall("w1", "english", 5, 1_000, "e1"), {}, 60)
    await store.offer_answered("w1", "ana", waited_ms=0)
    await store.call_ended("w1", "ana")
    assert str((await store.get_advocate("ana")).state) == "wrap_up"

    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"))

    assert response.status == 200
    assert (await response.json())["state"] == "available"


# -- calls -------------------------------------------------------------------------------


async def test_a_call_record_shows_only_the_allowed_fields(client, store):
    await store.enqueue(WaitingCall("c3", "english", 7, 3_000, "engine-7"),
                        {"caller_ref": "fedcba9876543210", "language": "es", "call_type": "crisis"}, 60)
    response = await client.get("/calls/c3", headers=bearer("sam"))
    assert response.status == 200
    body = await response.json()
    assert set(body) <= {"id", *CALL_FIELDS}
    assert body["id"] == "c3" and body["queue"] == "english" and body["call_type"] == "crisis"
    # Routing internals stay internal: the engine owning the channel, the score, the TTL.
    assert "engine-7" not in await response.text()


async def test_an_unknown_call_is_a_json_404(client):
    response = await client.get("/calls/no-such-call", headers=bearer("sam"))
    assert response.status == 404
    assert "no call 'no-such-call'" in (await response.json())["error"]


# -- metrics and an unreachable Redis ----------------------------------------------------


def samples(page: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(page) for s in family.samples}


async def test_metrics_follow_redis_from_one_scrape_to_the_next(client, store):
    depth = ("hotline_queue_depth", (("queue", "english"),))

    def advocates(state: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return "hotline_advocates", (("state", state),)

    first = samples(await (await client.get("/metrics")).text())
    assert first[depth] == 0 and first[advocates("offline")] == 3
    assert first[("hotline_redis_up", ())] == 1

    await store.enqueue(WaitingCall("m1", "english", 5, 1_000, "e1"), {}, 60)
    await store.enqueue(WaitingCall("m2", "english", 5, 2_000, "e1"), {}, 60)
    await store.set_state("ana", "away")
    second = samples(await (await client.get("/metrics")).text())

    assert second[depth] == 2
    assert second[advocates("away")] == 1 and second[advocates("offline")] == 2
    assert all(second[advocates(s)] == 0 for s in ("available", "ringing", "on_call", "wrap_up"))


async def test_metrics_count_available_advocates_per_queue_and_advocates_by_skill(client, store):
    def skill(name: str, state: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return "hotline_advocates_by_skill", (("skill", name), ("state", state))

    await store.upsert_advocate("maria", "Maria", "PJSIP/maria@carrier", frozenset({"es"}),
                                frozenset({"advocate"}), sha("token-maria"))
    await store.set_state("luis", "available")
    page = samples(await (await client.get("/metrics")).text())

    assert page[("hotline_queue_available_advocates", (("queue", "english"),))] == 1
    assert page[skill("en", "available")] == 1 and page[skill("en", "offline")] == 2
    # Nobody who speaks Spanish is logged in: zeros, not a missing series.
    assert page[skill("es", "offline")] == 1
    assert all(page[skill("es", s)] == 0 for s in ("available", "ringing", "on_call", "wrap_up", "away"))

    await store.remove_advocate("maria")
    page = samples(await (await client.get("/metrics")).text())
    assert not any(name == "hotline_advocates_by_skill" and dict(labels)["skill"] == "es"
                   for name, labels in page)


@pytest.fixture
async def unreachable_client(unreachable_redis) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(unreachable_redis, Keys("x:")))) as c:
        yield c


async def test_metrics_still_answer_with_redis_down(unreachable_client):
    response = await unreachable_client.get("/metrics")
    assert response.status == 200
    assert samples(await response.text())[("hotline_redis_up", ())] == 0


@pytest.mark.parametrize("method, path", [("GET", "/advocates"), ("GET", "/advocates/ana"),
                                          ("POST", "/advocates/ana/login"), ("GET", "/calls/c1")])
async def test_requests_needing_redis_get_a_json_503_when_it_is_down(unreachable_client, method, path):
    response = await unreachable_client.request(method, path, headers=bearer("sam"))
    assert response.status == 503
    assert "routing store unavailable" in (await response.json())["error"]


# -- the OpenAPI document ----------------------------------------------------------------


def served_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # added by aiohttp beside every GET
            continue
        path = route.resource.canonical
        paths = [path.replace("{action}", a) for a in STATE_ACTIONS] if "{action}" in path else [path]
        operations |= {(p, route.method.lower()) for p in paths}
    return operations


async def test_every_served_operation_is_documented_and_nothing_else(client):
    documented = {(path, method) for path, item in OPENAPI["paths"].items() for method in item}
    assert served_operations(client.app) == documented


async def test_the_openapi_document_is_well_formed(client):
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] and document["info"]["version"]
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearer": []}]
    schemas = document["components"]["schemas"]

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref

    for path, item in document["paths"].items():
        assert path.startswith("/")
        templated = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            assert method in {"get", "post", "put", "patch", "delete"}, (path, method)
            assert operation["summary"], (path, method)
            assert operation["responses"] and all(re.fullmatch(r"[1-5]\d\d", code)
                                                  for code in operation["responses"]), (path, method)
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == templated, (path, method)
            assert all(p["required"] for p in operation.get("parameters", []) if p["in"] == "path")
            public = operation.get("security") == []
            # Only the pages Prometheus, load balancers and API clients fetch are open.
            assert public == (path in {"/healthz", "/metrics", "/openapi.json"}), path
            if not public:
                assert "401" in operation["responses"], path


async def test_a_wrong_method_gets_a_json_405_naming_the_allowed_ones(client):
    response = await client.post("/advocates/login", headers=bearer("ana"))
    assert response.status == 405
    assert "error" in await response.json()
    assert "GET" in response.headers["Allow"]


# -- authentication comes first ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/advocates/ana/dance", "/advocates/nobody/login", "/advocates/nobody/dance"])
async def test_without_a_token_every_advocate_request_is_401_before_anything_else(client, path):
    # Whether an action or an advocate exists is for token holders to learn.
    response = await client.post(path)
    assert response.status == 401
    assert "missing bearer token" in (await response.json())["error"]


async def test_an_advocate_learns_nothing_about_another_advocates_actions(client):
    response = await client.post("/advocates/ana/dance", headers=bearer("luis"))
    assert response.status == 403


# -- random input with valid tokens ------------------------------------------------------


segments = st.one_of(st.sampled_from([*TOKENS, "nobody", ""]), st.text(min_size=1, max_size=20))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=st.sampled_from(sorted(TOKENS)), advocate=segments,
       action=st.one_of(st.sampled_from([*STATE_ACTIONS, "dance"]), st.text(min_size=1, max_size=20)),
       method=st.sampled_from(["GET", "POST", "DELETE"]))
async def test_no_advocate_id_or_action_gets_a_5xx_even_with_a_valid_token(client, who, advocate, action, method):
    path = f"/advocates/{quote(advocate, safe='')}/{quote(action, safe='')}"
    for url in (path, path.rsplit("/", 1)[0]):
        response = await client.request(method, url, headers=bearer(who))
        assert response.status < 500, (method, url, await response.text())
        if response.status >= 400:
            assert "error" in await response.json()


# -- the OpenAPI document describes what is returned -------------------------------------


def test_the_call_schema_documents_every_field_a_call_record_may_show():
    properties = OPENAPI["components"]["schemas"]["Call"]["properties"]
    assert set(CALL_FIELDS) | {"id"} == set(properties)
    assert "caller_ref" not in properties


async def test_queue_gauges_are_dropped_not_left_stale_when_redis_goes_away(store):
    metrics = HotlineMetrics()
    metrics.set_snapshot(0.0, ["english"], {"english": 3}, {"english": None}, {"available": 1},
                         available={"english": 1}, advocates_by_skill={"es": {"available": 1}})
    dead = aioredis.Redis(host="127.0.0.1", port=1, decode_responses=True, socket_connect_timeout=0.2)
    app = Api(RoutingStore(dead, queues=QUEUES, keys=Keys("x:")), authenticator(), metrics, ["english"],
              health=lambda: {"ari": True}).app()
    async with TestClient(TestServer(app)) as c:
        page = await (await c.get("/metrics")).text()
    assert "hotline_redis_up 0.0" in page
    assert 'hotline_queue_depth{queue="english"}' not in page
    assert 'hotline_advocates{state="available"}' not in page
    assert 'hotline_queue_available_advocates{queue="english"}' not in page
    assert "hotline_advocates_by_skill{" not in page
    await dead.aclose()


# -- supervisors monitoring a call -------------------------------------------------------


class MonitorCalls:
    """Stands in for the engine's call actors (ivr.monitoring.MonitorDesk): what
    they answer is what the API turns into a status; the actors are tested end
    to end in tests/e2e/test_monitoring.py."""

    def __init__(self, answer: MonitorAnswer | None) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str, Mode | None]] = []

    async def request(self, call_id: str, supervisor: str, mode: Mode | None) -> MonitorAnswer | None:
        self.requests.append((call_id, supervisor, mode))
        return self.answer


async def bridged_call(store: RoutingStore, call_id: str = "c1") -> None:
    await store.enqueue(WaitingCall(call_id, "english", 5, 1_000, "e1"), {"language": "en"}, 60)
    await store.set_state("ana", AdvocateState.AVAILABLE)  # offered to ana at once
    await store.offer_answered(call_id, "ana", waited_ms=0)


@pytest.fixture
async def monitoring(store: RoutingStore) -> AsyncIterator[tuple[TestClient, MonitorCalls]]:
    calls = MonitorCalls(MonitorAnswer(True, "dialling"))
    app = Api(store, authenticator(), HotlineMetrics(), ["english"], health=lambda: {"ari": True},
              monitoring=calls).app()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client, calls


async def test_a_supervisor_starts_and_stops_monitoring_a_connected_call(monitoring, store):
    client, calls = monitoring
    await bridged_call(store)

    response = await client.post("/calls/c1/monitor", headers=bearer("sam"), json={"mode": "whisper"})
    assert response.status == 202
    assert await response.json() == {"call": "c1", "mode": "whisper", "status": "dialling"}
    calls.answer = MonitorAnswer(True, "stopping")
    response = await client.delete("/calls/c1/monitor", headers=bearer("sam"))
    assert (response.status, (await response.json())["status"]) == (202, "stopping")
    assert calls.requests == [("c1", "sam", Mode.WHISPER), ("c1", "sam", None)]


async def test_asking_for_the_mode_a_supervisor_is_already_in_is_a_200(monitoring, store):
    client, calls = monitoring
    await bridged_call(store)
    calls.answer = MonitorAnswer(True, "unchanged")
    response = await client.post("/calls/c1/monitor", headers=bearer("sam"), json={"mode": "listen"})
    assert (response.status, (await response.json())["status"]) == (200, "unchanged")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_only_supervisors_monitor_calls_and_advocates_learn_nothing_more(monitoring, store, method):
    client, calls = monitoring
    await bridged_call(store)
    for path in ("/calls/c1/monitor", "/calls/nope/monitor"):
        response = await client.request(method, path, headers=bearer("ana"), json={"mode": "listen"})
        assert response.status == 403 and "supervisor role required" in (await response.json())["error"]
        assert (await client.request(method, path, json={"mode": "listen"})).status == 401
    assert calls.requests == []


@pytest.mark.parametrize("body", [{"mode": "eavesdrop"}, {"mode": "LISTEN"}, {"mode": 1}, {}])
async def test_a_mode_other_than_listen_whisper_or_barge_is_a_422_naming_them(monitoring, store, body):
    client, calls = monitoring
    await bridged_call(store)
    response = await client.post("/calls/c1/monitor", headers=bearer("sam"), json=body)
    assert response.status == 422
    assert "mode: must be one of listen, whisper, barge" in (await response.json())["error"]
    assert calls.requests == []


async def test_monitoring_an_unknown_or_unconnected_call_is_404_or_409(monitoring, store):
    client, calls = monitoring
    await store.enqueue(WaitingCall("waiting", "english", 5, 1_000, "e1"), {"language": "en"}, 60)

    response = await client.post("/calls/nope/monitor", headers=bearer("sam"), json={"mode": "listen"})
    assert response.status == 404
    response = await client.post("/calls/waiting/monitor", headers=bearer("sam"), json={"mode": "listen"})
    assert response.status == 409 and "waiting, not connected" in (await response.json())["error"]
    assert calls.requests == []


@pytest.mark.parametrize("answer, status, says", [
    (None, 409, "not held by this engine"),
    (MonitorAnswer.refused("supervisor 'kim' is monitoring the call; stop that first"), 409, "'kim' is monitoring"),
    (MonitorAnswer(False, "timeout", "the call did not take the request in time; try again"), 503, "try again"),
])
async def test_what_the_call_refuses_reaches_the_supervisor_as_a_status_saying_why(monitoring, store, answer,
                                                                                   status, says):
    client, calls = monitoring
    await bridged_call(store)
    calls.answer = answer
    response = await client.post("/calls/c1/monitor", headers=bearer("sam"), json={"mode": "barge"})
    assert response.status == status and says in (await response.json())["error"]
