"""The wallboard's view, built from a snapshot without Redis, and the pages as served."""

from __future__ import annotations

import json
import re

from aiohttp.test_utils import TestClient, TestServer
from aiohttp import web

from ivr.pages import Pages
from ivr.wallboard import WAITING_FIELDS, build_view, sse_event
from routing.advocates import Advocate, AdvocateState
from routing.daily import DayCounts
from routing.policy import QueuePolicy

S = AdvocateState
NOW_MS = 1_764_000_000_000
QUEUES = (QueuePolicy("english", max_wait_s=600, service_level_s=30),
          QueuePolicy("spanish", max_wait_s=600, service_level_s=45))


def person(advocate_id: str, state: S, since_ms: int, queues=("english",), skills=("en",)) -> Advocate:
    return Advocate(advocate_id, advocate_id.title(), f"PJSIP/{advocate_id}@x", frozenset(skills),
                    frozenset({"advocate"}), queues, "hash", state, since_ms)


def view(waiting=None, advocates=(), today=None):
    return build_view(now_ms=NOW_MS, day="2026-11-28", queues=QUEUES, waiting=waiting or {}, advocates=advocates,
                      today=today or {})


def test_waiting_calls_show_wait_language_call_type_and_relay_oldest_first():
    waiting = {"english": [
        ("c-crisis", {"arrival_ms": str(NOW_MS - 5_000), "priority": "9", "language": "en", "call_type": "crisis",
                      "relay": "0"}),
        ("c-relay", {"arrival_ms": str(NOW_MS - 60_000), "priority": "5", "language": "en", "call_type": "tip",
                     "relay": "1"}),
    ]}
    (english, spanish) = view(waiting)["queues"]
    assert english["waiting"] == [
        {"id": "c-relay", "arrival_ms": NOW_MS - 60_000, "language": "en", "call_type": "tip", "relay": True,
         "crisis": False},
        {"id": "c-crisis", "arrival_ms": NOW_MS - 5_000, "language": "en", "call_type": "crisis", "relay": False,
         "crisis": True},
    ]
    assert english["target_s"] == 30 and spanish["target_s"] == 45 and spanish["waiting"] == []


def test_a_waiting_call_never_carries_more_than_the_board_shows():
    # Whatever a call record holds, the board reads WAITING_FIELDS and shows these keys only.
    assert "caller_ref" not in WAITING_FIELDS and "sip_call_id" not in WAITING_FIELDS
    fields = {"arrival_ms": "1", "priority": "5", "caller_ref": "0123abcd", "sip_call_id": "x@y"}
    (call,) = view({"english": [("c1", fields)]})["queues"][0]["waiting"]
    assert set(call) == {"id", "arrival_ms", "language", "call_type", "relay", "crisis"}
    assert "0123abcd" not in json.dumps(view({"english": [("c1", fields)]}))


def test_a_damaged_record_is_shown_with_blanks_not_an_error():
    (call,) = view({"english": [("c1", {"arrival_ms": "soon", "priority": ""})]})["queues"][0]["waiting"]
    assert (call["arrival_ms"], call["language"], call["crisis"], call["relay"]) == (0, "", False, False)


def test_advocates_are_listed_by_state_then_longest_in_it_and_counted():
    advocates = [person("ana", S.ON_CALL, NOW_MS - 1_000), person("luis", S.AVAILABLE, NOW_MS - 9_000),
                 person("mei", S.AVAILABLE, NOW_MS - 99_000), person("sam", S.OFFLINE, 0),
                 person("eva", S.AVAILABLE, NOW_MS, queues=("spanish",), skills=("es",))]
    board = view(advocates=advocates)
    assert [a["id"] for a in board["advocates"]] == ["mei", "luis", "eva", "ana", "sam"]
    assert board["advocates"][0] == {"id": "mei", "name": "Mei", "state": "available", "since_ms": NOW_MS - 99_000,
                                     "skills": ["en"]}
    assert board["states"] == {"available": 3, "ringing": 0, "on_call": 1, "wrap_up": 0, "away": 0, "offline": 1}
    assert [q["available"] for q in board["queues"]] == [2, 1]


def test_today_per_queue_and_for_all_queues_with_the_service_level():
    today = {"english": DayCounts(offered=10, answered=8, answered_within_target=6, abandoned=2),
             "spanish": DayCounts(offered=2, answered=2, answered_within_target=2)}
    board = view(today=today)
    assert board["day"] == "2026-11-28"
    assert board["queues"][0]["today"] == {"offered": 10, "answered": 8, "abandoned": 2,
                                           "answered_within_target": 6, "service_level": 0.75}
    assert board["today"] == {"offered": 12, "answered": 10, "abandoned": 2, "answered_within_target": 8,
                              "service_level": 0.8}


def test_a_quiet_day_has_zeros_and_no_service_level_yet():
    assert view()["queues"][1]["today"] == {"offered": 0, "answered": 0, "abandoned": 0,
                                            "answered_within_target": 0, "service_level": None}


def test_a_server_sent_event_is_one_data_line_of_json():
    event = sse_event("board", {"text": "two\nlines", "n": 1})
    assert event == b'event: board\ndata: {"text":"two\\nlines","n":1}\n\n'


async def test_pages_and_their_assets_are_served_with_a_strict_policy():
    app = web.Application()
    app.add_routes(Pages().routes())
    async with TestClient(TestServer(app)) as client:
        for path, kind in (("/wallboard", "text/html"), ("/console", "text/html"),
                           ("/pages/wallboard.js", "text/javascript"), ("/pages/pages.css", "text/css")):
            response = await client.get(path)
            assert (response.status, response.content_type) == (200, kind), path
            policy = response.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy and "form-action 'none'" in policy
            assert response.headers["Referrer-Policy"] == "no-referrer"
        assert (await client.get("/pages/../api.py")).status == 404
        assert (await client.get("/pages/secret.toml")).status == 404


async def test_no_page_sends_the_token_in_a_url_or_stores_it():
    app = web.Application()
    app.add_routes(Pages().routes())
    async with TestClient(TestServer(app)) as client:
        texts = {path: await (await client.get(path)).text() for path in (
            "/wallboard", "/console", "/pages/hotline.js", "/pages/wallboard.js", "/pages/console.js")}
    for path, text in texts.items():
        for stored in ("localStorage", "sessionStorage", "document.cookie", "new EventSource", "?token", "&token"):
            assert stored not in text, (path, stored)
    # The inputs have no name: a form submission could not carry the token.
    for page in ("/console", "/wallboard"):
        inputs = re.findall(r"<input[^>]*>", texts[page])
        assert any('id="token" type="password"' in tag for tag in inputs), page
        assert not [tag for tag in inputs if "name=" in tag], page
