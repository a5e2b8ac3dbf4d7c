"""The API added for the wallboard and the advocate console: dispositions at
the end of wrap-up, the interpreter language picker, and the board itself,
with the 4xx that say why."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from api_support import bearer, make_app
from ivr.cli import SANDBOX_CONFIG
from ivr.interpreters.catalog import LanguageCatalog
from ivr.interpreters.provider import validate_interpreters
from ivr.interpreting import InterpreterDesk
from ivr.settings import load_settings
from ivr.wrapup import DISPOSITIONS
from metrics.hotline import HotlineMetrics
from routing.keys import Keys
from routing.queues import WaitingCall
from routing.store import RoutingStore


async def wrap_up_after(store: RoutingStore, advocate: str = "ana", call_id: str = "c1",
                        call_type: str = "tip") -> None:
    await store.set_state(advocate, "available")
    await store.enqueue(WaitingCall(call_id, "english", 5, 1_000, "e1"),
                        {"call_type": call_type, "caller_ref": "0123abcd"}, 60)
    await store.offer_answered(call_id, advocate, waited_ms=0)
    await store.call_ended(call_id, advocate)


def sample(metrics: HotlineMetrics, name: str, **labels: str) -> float:
    """0 for a sample not yet there; a metric not there at all fails (renamed)."""
    page = metrics.render().decode()
    declared = False
    for family in text_string_to_metric_families(page):
        declared = declared or name == family.name or name.startswith(f"{family.name}_")
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    assert declared, f"no metric {name}"
    return 0.0


@pytest.fixture
def metrics() -> HotlineMetrics:
    return HotlineMetrics()


@pytest.fixture
async def client(db, store, metrics):
    async with TestClient(TestServer(make_app(db, metrics=metrics))) as test_client:
        yield test_client


# -- dispositions ---------------------------------------------------------------------


async def test_an_unknown_disposition_is_a_422_naming_the_allowed_ones_and_wrap_up_goes_on(client, store):
    await wrap_up_after(store)
    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"), json={"disposition": "spam"})
    assert response.status == 422
    error = (await response.json())["error"]
    assert "'spam'" in error and all(d in error for d in DISPOSITIONS)
    assert str((await store.get_advocate("ana")).state) == "wrap_up"
    assert "disposition" not in await store.get_call("c1")


@pytest.mark.parametrize("disposition", [5, ["tip"], {"id": "tip"}, "", "TIP"])
async def test_a_disposition_that_is_not_one_of_the_ids_is_a_422(client, store, disposition):
    await wrap_up_after(store)
    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"),
                                 json={"disposition": disposition})
    assert response.status == 422 and "disposition" in (await response.json())["error"]


async def test_a_disposition_is_recorded_by_end_wrap_up_only(client, store):
    response = await client.post("/advocates/ana/login", headers=bearer("ana"), json={"disposition": "tip"})
    assert response.status == 422 and "end-wrap-up only" in (await response.json())["error"]
    assert str((await store.get_advocate("ana")).state) == "offline"


@pytest.mark.parametrize("body, content_type, why", [
    (b"{tip", "application/json", "not valid JSON"),
    (b'["tip"]', "application/json", "must be a JSON object"),
    (b'{"a":' + b"[" * 100_000, "application/json", "not valid JSON"),  # deeper than the parser goes
    (b'{"disposition": "tip"}', "application/json; charset=bogus", "not valid JSON"),
])
async def test_a_body_that_is_not_a_json_object_is_a_400(client, store, body, content_type, why):
    await wrap_up_after(store)
    response = await client.post("/advocates/ana/end-wrap-up", headers={**bearer("ana"),
                                 "Content-Type": content_type}, data=body)
    assert response.status == 400 and why in (await response.json())["error"]
    assert str((await store.get_advocate("ana")).state) == "wrap_up"


async def test_a_misspelt_field_is_a_422_not_ignored(client, store):
    await wrap_up_after(store)
    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"), json={"dispostion": "tip"})
    assert response.status == 422
    assert (await response.json())["error"] == "body: unknown field 'dispostion'; expected disposition"
    assert str((await store.get_advocate("ana")).state) == "wrap_up"


async def test_without_a_token_a_disposition_is_a_401_before_it_is_looked_at(client, store):
    response = await client.post("/advocates/ana/end-wrap-up", json={"disposition": "spam"})
    assert response.status == 401


async def test_a_disposition_outside_wrap_up_is_a_conflict_and_records_nothing(client, store, metrics):
    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"), json={"disposition": "tip"})
    assert response.status == 409 and "not in wrap-up" in (await response.json())["error"]
    assert sample(metrics, "hotline_dispositions_total", call_type="tip", disposition="tip") == 0


async def test_ending_wrap_up_with_a_disposition_stores_it_counts_it_and_measures_the_wrap_up(
        client, store, metrics):
    await wrap_up_after(store, call_type="crisis")

    response = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"),
                                 json={"disposition": "referral"})

    assert response.status == 200 and (await response.json())["state"] == "available"
    call = await (await client.get("/calls/c1", headers=bearer("ana"))).json()
    assert call["disposition"] == "referral" and "caller_ref" not in call
    assert sample(metrics, "hotline_dispositions_total", call_type="crisis", disposition="referral") == 1
    assert sample(metrics, "hotline_after_call_work_seconds_count") == 1
    # A second click finds the wrap-up over: refused, counted once.
    again = await client.post("/advocates/ana/end-wrap-up", headers=bearer("ana"), json={"disposition": "tip"})
    assert again.status == 409
    assert sample(metrics, "hotline_after_call_work_seconds_count") == 1


async def test_going_away_from_wrap_up_ends_it_and_is_measured_without_a_disposition(client, store, metrics):
    await wrap_up_after(store)
    response = await client.post("/advocates/ana/away", headers=bearer("ana"))
    assert response.status == 200 and (await response.json())["state"] == "away"
    assert sample(metrics, "hotline_after_call_work_seconds_count") == 1
    assert "disposition" not in await store.get_call("c1")


async def test_the_dispositions_are_listed_for_any_token_holder(client):
    assert (await client.get("/dispositions")).status == 401
    response = await client.get("/dispositions", headers=bearer("luis"))
    assert response.status == 200
    listed = (await response.json())["dispositions"]
    assert [d["id"] for d in listed] == list(DISPOSITIONS)
    assert {"id": "training_technical_assistance", "label": "Training and technical assistance"} in listed


# -- the interpreter language picker ------------------------------------------------------


async def test_the_language_picker_needs_a_token_and_a_configured_provider(client):
    assert (await client.get("/interpreters/languages")).status == 401
    response = await client.get("/interpreters/languages", headers=bearer("ana"))
    assert response.status == 404 and "no interpreter provider" in (await response.json())["error"]


async def test_the_language_picker_lists_what_the_providers_serve_with_native_names(db, store):
    catalog = LanguageCatalog.load()
    providers = validate_interpreters(load_settings(SANDBOX_CONFIG).interpreters, catalog).providers
    desk = InterpreterDesk(catalog, providers, lambda call, item: False)
    async with TestClient(TestServer(make_app(db, interpreters=desk))) as client:
        response = await client.get("/interpreters/languages", headers=bearer("ana"))
        languages = (await response.json())["languages"]
    assert {"code": "vie", "name": "Vietnamese", "native": "Tiếng Việt"} in languages
    assert {"code": "mam", "name": "Mam", "native": "Mam"} in languages
    assert [lang["name"] for lang in languages] == sorted(lang["name"] for lang in languages)
    assert len(languages) == len({code for p in providers for code in p.languages})


# -- the wallboard ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/wallboard/state", "/wallboard/events"])
@pytest.mark.parametrize("who, status, why", [(None, 401, "missing bearer token"),
                                              ("ana", 403, "supervisor role required")])
async def test_the_wallboard_is_for_supervisors_only(client, path, who, status, why):
    response = await client.get(path, headers=bearer(who) if who else {})
    assert response.status == status
    assert response.content_type == "application/json" and why in (await response.json())["error"]


async def test_the_board_shows_waiting_calls_and_today_but_never_a_caller_reference(client, store):
    await store.enqueue(WaitingCall("c1", "english", 9, 1_000, "e1"),
                        {"language": "es", "call_type": "crisis", "relay": "1", "caller_ref": "0123abcd",
                         "sip_call_id": "abc@carrier"}, 60)
    response = await client.get("/wallboard/state", headers=bearer("sam"))
    assert response.status == 200
    text = await response.text()
    assert "0123abcd" not in text and "abc@carrier" not in text
    (english,) = json.loads(text)["queues"]
    assert english["waiting"] == [{"id": "c1", "arrival_ms": 1_000, "language": "es", "call_type": "crisis",
                                   "relay": True, "crisis": True}]
    assert english["today"]["offered"] == 0  # counted by the call actor, not by enqueue


async def test_the_board_is_a_503_when_redis_does_not_answer(unreachable_board):
    response = await unreachable_board.get("/wallboard/state", headers=bearer("sam"))
    assert response.status == 503 and "routing store unavailable" in (await response.json())["error"]


async def next_event(response, timeout_s: float = 5.0) -> tuple[str, dict]:
    block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout_s)).decode()
    lines = dict(line.split(": ", 1) for line in block.strip().splitlines())
    return lines["event"], json.loads(lines["data"])


async def test_the_event_stream_sends_the_board_and_again_when_a_call_arrives(client, store):
    async with client.get("/wallboard/events", headers=bearer("sam")) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        event, board = await next_event(response)
        assert event == "board" and board["queues"][0]["waiting"] == []

        await store.enqueue(WaitingCall("c1", "english", 5, 1_000, "e1"), {"language": "en"}, 60)

        event, board = await next_event(response)
        assert event == "board" and [c["id"] for c in board["queues"][0]["waiting"]] == ["c1"]


@pytest.fixture
async def unreachable_board(unreachable_redis):
    async with TestClient(TestServer(make_app(unreachable_redis, Keys("x:")))) as test_client:
        yield test_client
