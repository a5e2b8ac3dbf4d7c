"""REST requests over a WebSocket (ivr.ari.socket_requests), against a fake socket.

The real round trip through Asterisk is exercised by every e2e test: the
engine sends its requests this way whenever its request socket is up.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from ivr.ari.errors import AriNotFound, AriUnavailable
from ivr.ari.rest import AriRest
from ivr.ari.socket_requests import NotConnected, SocketRequests


class FakeSocket:
    """Answers each RESTRequest with `reply(request)` as Asterisk would, on the next loop turn."""

    def __init__(self, requests: SocketRequests, reply=None) -> None:
        self.requests = requests
        self.sent: list[dict] = []
        self.closed = False
        self.reply = reply

    async def send_str(self, data: str) -> None:
        if self.closed:
            raise ConnectionResetError("closing")
        message = json.loads(data)
        self.sent.append(message)
        answer = self.reply(message) if self.reply is not None else None
        if answer is not None:
            response = {"type": "RESTResponse", "request_id": message["request_id"], **answer}
            asyncio.get_running_loop().call_soon(self.requests.resolve, response)


class NoHttp:
    """A session that must not be used: every request goes over the socket."""

    def request(self, *args, **kwargs):
        raise AssertionError("sent over HTTP")


def rest_over(requests: SocketRequests) -> AriRest:
    return AriRest(NoHttp(), "http://127.0.0.1:8088/ari", "u", "p", timeout_s=0.2, socket=requests)


def pings_only(message: dict) -> dict | None:
    """Asterisk answering the trial ping and then nothing more."""
    return {"status_code": 200, "message_body": '{"ping": "pong"}'} if message["uri"] == "asterisk/ping" else None


async def attached(requests: SocketRequests, socket: FakeSocket) -> FakeSocket:
    assert await requests.attach(socket)
    assert socket.sent.pop(0)["uri"] == "asterisk/ping"  # the trial
    return socket


async def test_a_request_and_its_json_answer_travel_on_the_socket():
    requests = SocketRequests()
    socket = FakeSocket(requests, lambda m: {"status_code": 200, "reason_phrase": "OK",
                                             "message_body": json.dumps({"value": "abc-123"})})
    await attached(requests, socket)
    assert await rest_over(requests).get_var("chan.1", "CHANNEL(pjsip,call-id)") == "abc-123"
    [sent] = socket.sent
    assert (sent["type"], sent["method"]) == ("RESTRequest", "GET")
    # Relative to /ari, ids quoted as one path segment, the query URL-encoded.
    assert sent["uri"] == "channels/chan.1/variable?variable=CHANNEL%28pjsip%2Ccall-id%29"


async def test_a_json_body_is_sent_as_a_string_with_its_content_type():
    requests = SocketRequests()
    socket = FakeSocket(requests, lambda m: {"status_code": 200, "message_body": json.dumps({"name": "hotline"})})
    await attached(requests, socket)
    await rest_over(requests).set_event_filter("hotline", ["StasisStart", "RESTResponse"])
    [sent] = socket.sent
    assert (sent["method"], sent["uri"], sent["content_type"]) == (
        "PUT", "applications/hotline/eventFilter", "application/json")
    assert json.loads(sent["message_body"]) == {"allowed": [{"type": "StasisStart"}, {"type": "RESTResponse"}]}


async def test_an_originate_goes_over_http_not_behind_the_socket_queue():
    requests = SocketRequests()
    socket = FakeSocket(requests, lambda m: {"status_code": 200})
    await attached(requests, socket)
    with pytest.raises(AssertionError, match="sent over HTTP"):
        await rest_over(requests).originate("PJSIP/1001@carrier", app="hotline", channel_id="leg1")
    assert socket.sent == []


async def test_a_join_asterisk_holds_until_the_digits_end_goes_over_http():
    # An interpreter's line joins after its keying; on the socket the join
    # would hold every other call's requests that long.
    requests = SocketRequests()
    socket = FakeSocket(requests, lambda m: {"status_code": 204})
    await attached(requests, socket)
    with pytest.raises(AssertionError, match="sent over HTTP"):
        await rest_over(requests).add_to_bridge("b1", ["interp-leg"], waits_s=16.5)
    await rest_over(requests).add_to_bridge("b1", ["caller", "advocate"])  # joins at once: on the socket
    assert [m["uri"] for m in socket.sent] == ["bridges/b1/addChannel?channel=caller%2Cadvocate"]


async def test_an_error_status_is_the_same_error_as_over_http():
    requests = SocketRequests()
    await attached(requests, FakeSocket(requests, lambda m: pings_only(m) or {
        "status_code": 404, "reason_phrase": "Not Found", "message_body": json.dumps({"message": "Channel not found"})}))
    with pytest.raises(AriNotFound, match=r"POST /channels/gone/answer: 404 Channel not found"):
        await rest_over(requests).answer("gone")


async def test_a_204_has_no_body():
    requests = SocketRequests()
    await attached(requests, FakeSocket(requests, lambda m: {"status_code": 204, "reason_phrase": "No Content"}))
    assert await rest_over(requests).answer("c1") is None


async def test_without_a_socket_the_request_is_not_sent_and_http_may_take_it():
    requests = SocketRequests()
    with pytest.raises(NotConnected):
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")
    closing = FakeSocket(requests)
    closing.closed = True
    assert not await requests.attach(closing)
    with pytest.raises(NotConnected):
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")


async def request_in_flight(requests: SocketRequests) -> asyncio.Future[None]:
    """A request sent on a socket that answers only the trial ping: its answer never comes."""
    await attached(requests, FakeSocket(requests, pings_only))
    pending = asyncio.ensure_future(rest_over(requests).answer("c1"))
    await asyncio.sleep(0)  # one loop turn: sent
    return pending


async def test_a_socket_that_closes_with_requests_in_flight_fails_them_unavailable():
    requests = SocketRequests()
    pending = await request_in_flight(requests)
    requests.detach()
    with pytest.raises(AriUnavailable, match="closed with the request in flight"):
        await pending
    with pytest.raises(NotConnected):  # and the next one is not sent there
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")


async def test_a_request_cancelled_as_its_socket_closes_ends_cancelled():
    # The engine stopping: one turn of the loop cancels a call's task and
    # closes the socket under its request. The task must end cancelled: an
    # AriUnavailable in its place sent it on as if Asterisk had failed, to
    # hang up the advocate's leg and set them away mid-shutdown.
    requests = SocketRequests()
    pending = await request_in_flight(requests)
    requests.detach()
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending


async def test_no_answer_in_time_is_unavailable_and_a_late_answer_is_dropped():
    requests = SocketRequests()
    socket = await attached(requests, FakeSocket(requests, pings_only))
    with pytest.raises(AriUnavailable, match="no response over the ARI WebSocket within 0.2 s"):
        await rest_over(requests).answer("c1")
    # The late answer, and one to nothing sent, arrive while the next request is in flight.
    in_flight = asyncio.ensure_future(rest_over(requests).answer("c2"))
    await asyncio.sleep(0)
    requests.resolve({"type": "RESTResponse", "request_id": socket.sent[0]["request_id"], "status_code": 204})
    requests.resolve({"type": "RESTResponse", "request_id": "never-sent", "status_code": 204})
    await asyncio.sleep(0)
    assert not in_flight.done()  # neither was taken for it
    requests.resolve({"type": "RESTResponse", "request_id": socket.sent[1]["request_id"], "status_code": 204})
    assert await in_flight is None


async def test_a_socket_that_does_not_answer_the_trial_ping_is_not_used(caplog):
    requests = SocketRequests(probe_timeout_s=0.1)
    silent = FakeSocket(requests)  # an Asterisk too old for REST on the socket, or a proxy passing events only
    assert not await requests.attach(silent)
    assert "REST requests stay on HTTP" in caplog.text
    with pytest.raises(NotConnected):  # so AriRest sends them over HTTP
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")
    assert [m["uri"] for m in silent.sent] == ["asterisk/ping"]


async def test_requests_wait_for_http_until_the_trial_ping_is_answered():
    requests = SocketRequests()
    socket = FakeSocket(requests)  # answered by hand below
    trial = asyncio.ensure_future(requests.attach(socket))
    await asyncio.sleep(0)
    with pytest.raises(NotConnected):
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")
    requests.resolve({"type": "RESTResponse", "request_id": socket.sent[0]["request_id"], "status_code": 200})
    assert await trial
    assert requests.attached


# -- a request held up in Asterisk -------------------------------------------
# Asterisk runs a socket's requests one after another, and one on a channel
# waits for that channel's thread (a variable set while a prompt plays waits
# for the prompt's end). The real case runs against Asterisk in
# tests/e2e/test_survive_ari_faults.py.

def answered_by_hand(message: dict) -> None:
    """Asterisk answering nothing yet: each test resolves what it needs."""
    return None


async def held_up(requests: SocketRequests, fake_socket: FakeSocket) -> asyncio.Future:
    """A request in flight on `fake_socket` for longer than the requests' stall_after_s."""
    trial = asyncio.ensure_future(requests.attach(fake_socket))
    await asyncio.sleep(0)
    requests.resolve({"type": "RESTResponse", "request_id": fake_socket.sent.pop(0)["request_id"],
                      "status_code": 200})
    assert await trial
    held = asyncio.ensure_future(requests.request("POST", "/channels/c1/variable", {"variable": "X"}, None,
                                                  5.0, "POST /channels/c1/variable"))
    await asyncio.sleep(0.06)
    return held


def answer(requests: SocketRequests, message: dict, status: int = 204) -> None:
    requests.resolve({"type": "RESTResponse", "request_id": message["request_id"], "status_code": status})


async def test_requests_behind_a_held_up_one_go_over_http_until_a_ping_behind_it_is_answered(
        fake, session, fake_ari, caplog):
    stalls = []
    requests = SocketRequests(stall_after_s=0.05, on_stall=lambda: stalls.append(1))
    socket = FakeSocket(requests, answered_by_hand)
    held = await held_up(requests, socket)
    _, server = fake_ari
    rest = AriRest(session, str(server.make_url("/ari")), "u", "p", timeout_s=2.0, socket=requests)

    await rest.answer("c2")
    await rest.hangup("c3")
    assert [r.path for r in fake.requests] == ["/ari/channels/c2/answer", "/ari/channels/c3"]  # over HTTP
    assert requests.held_up and stalls == [1]
    assert "holds up the ones behind it" in caplog.text
    # On the socket: the held request, then one ping sent behind it, whatever came after.
    held_message, probe = socket.sent
    assert probe["uri"] == "asterisk/ping"

    # Asterisk answers in order: the held request, then the ping.
    answer(requests, held_message)
    assert (await held).status == 204
    assert requests.held_up
    answer(requests, probe, 200)
    await asyncio.sleep(0)
    assert not requests.held_up
    assert "answering again after" in caplog.text
    over_socket = asyncio.ensure_future(rest.answer("c4"))
    await asyncio.sleep(0)
    assert socket.sent[-1]["uri"] == "channels/c4/answer"
    answer(requests, socket.sent[-1])
    assert await over_socket is None
    assert len(fake.requests) == 2 and stalls == [1]


async def test_a_request_answered_within_stall_after_s_holds_nothing_up():
    requests = SocketRequests(stall_after_s=5.0)
    socket = FakeSocket(requests, answered_by_hand)
    held = await held_up(requests, socket)  # 0.06 s in flight: well under 5
    with_it = asyncio.ensure_future(requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping"))
    await asyncio.sleep(0)
    assert not requests.held_up
    assert [m["uri"] for m in socket.sent] == ["channels/c1/variable?variable=X", "asterisk/ping"]
    for message in socket.sent:
        answer(requests, message)
    await held, await with_it


async def test_a_held_up_socket_that_closes_is_forgotten_and_the_next_one_used():
    requests = SocketRequests(stall_after_s=0.05)
    first = FakeSocket(requests, answered_by_hand)
    held = await held_up(requests, first)
    with pytest.raises(NotConnected):
        await requests.request("GET", "/asterisk/ping", {}, None, 1.0, "GET /asterisk/ping")
    assert requests.held_up
    requests.detach()  # the ping behind the held request fails with it, unheard
    with pytest.raises(AriUnavailable, match="closed with the request in flight"):
        await held
    assert not requests.held_up
    second = await attached(requests, FakeSocket(requests, lambda m: {"status_code": 204}))
    assert await rest_over(requests).answer("c2") is None
    assert [m["uri"] for m in second.sent] == ["channels/c2/answer"]
