"""The engine's HTTP API: advocates' state, call lookups for supervisors, /metrics.

Every request but /metrics, /healthz and /openapi.json carries an advocate's
bearer token. An advocate acts on their own record only; supervisors (role
``supervisor``) may read everyone's, look calls up, and listen to, whisper
to or barge into a connected call (``ivr.monitoring``). Tokens are kept only
as SHA-256 digests and compared in constant time; a client that keeps
presenting unknown tokens is refused for a while (``ivr.throttle``). Errors
are JSON ``{"error": "..."}`` with a 4xx that says why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from ivr.interpreters.catalog import Language
from ivr.monitoring import MonitorAnswer, Mode, parse_mode
from ivr.openapi import OPENAPI
from ivr.throttle import BadTokenThrottle, client_of
from ivr.wrapup import DISPOSITIONS, record_wrap_up_end
from metrics.hotline import HotlineMetrics
from routing.advocates import Advocate, AdvocateState
from routing.errors import InvalidTransition, RoutingError, UnknownAdvocate
from routing.queues import Offer
from routing.store import RoutingStore

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Principal:
    advocate_id: str
    supervisor: bool


@dataclass(frozen=True)
class RosterEntry:
    advocate_id: str
    token_sha256: str
    supervisor: bool


class Authenticator:
    def __init__(self, roster: Sequence[RosterEntry], throttle: BadTokenThrottle,
                 trusted_proxies: Collection[str] = ()) -> None:
        self._roster = tuple(roster)
        self._throttle = throttle
        self._trusted_proxies = frozenset(trusted_proxies)

    def principal(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise json_error(web.HTTPUnauthorized, "missing bearer token (Authorization: Bearer <token>)")
        client = client_of(request.remote, request.headers.get("X-Forwarded-For"), self._trusted_proxies)
        # Before the token is looked at: a shut-out client learns nothing from it.
        wait = self._throttle.retry_after(client)
        if wait is not None:
            raise json_error(web.HTTPTooManyRequests, "too many unknown tokens from this address; try again later",
                             headers={"Retry-After": str(math.ceil(wait))})
        # aiohttp decodes header bytes that are not UTF-8 as surrogates; hash the
        # bytes as sent, so such a token is merely unknown rather than a 500.
        digest = hashlib.sha256(token.strip().encode("utf-8", "surrogateescape")).hexdigest()
        found = None
        # Compare against every entry, whatever matched, so timing says nothing.
        for entry in self._roster:
            if hmac.compare_digest(entry.token_sha256, digest):
                found = entry
        if found is None:
            if self._throttle.failed(client):
                log.warning("api: client %s refused for a while after %d unknown tokens", client,
                            self._throttle.max_failures)
            raise json_error(web.HTTPUnauthorized, "unknown token")
        return Principal(found.advocate_id, found.supervisor)

    def supervisor(self, request: web.Request) -> Principal:
        """The principal, if a supervisor; 401 or 403 saying why otherwise."""
        principal = self.principal(request)
        if not principal.supervisor:
            raise json_error(web.HTTPForbidden, "supervisor role required")
        return principal


def json_error(kind: type[web.HTTPException], message: str,
               headers: dict[str, str] | None = None) -> web.HTTPException:
    return kind(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


def _advocate_json(advocate: Advocate) -> dict[str, object]:
    return {"id": advocate.id, "name": advocate.name, "state": str(advocate.state),
            "state_since": advocate.state_since / 1000, "skills": sorted(advocate.skills),
            "roles": sorted(advocate.roles), "call": advocate.call_id}


# Requests an advocate may make about their own state, and where each leads.
STATE_ACTIONS: dict[str, AdvocateState] = {
    "login": AdvocateState.AVAILABLE,
    "available": AdvocateState.AVAILABLE,
    "away": AdvocateState.AWAY,
    "logout": AdvocateState.OFFLINE,
    "end-wrap-up": AdvocateState.AVAILABLE,
}

# Fields of a call record a supervisor may see. The caller's number is never
# stored; the HMAC reference stays internal too.
CALL_FIELDS = ("queue", "entry_queue", "priority", "state", "advocate", "language", "call_type", "relay", "path",
               "no_input", "did_kind", "answered_by", "waited_ms", "arrival_ms", "sip_call_id", "disposition")


class InterpreterControl(Protocol):
    def language(self, code: str) -> str:
        """The catalog code for ``code``; ValueError saying why it cannot be served."""

    def request(self, call_id: str, language: str | None, *, remove: bool) -> bool:
        """Hand the request to the call; False if this engine does not hold the call."""

    def languages(self) -> list[Language]:
        """The languages some provider serves, by English name."""


class MonitorControl(Protocol):
    async def request(self, call_id: str, supervisor: str, mode: Mode | None) -> MonitorAnswer | None:
        """The call's answer to a supervisor starting, switching (``mode``) or
        stopping (None) monitoring; None if this engine does not hold the call."""


class Api:
    def __init__(self, store: RoutingStore, auth: Authenticator, metrics: HotlineMetrics,
                 queues: Sequence[str], health: Callable[[], dict[str, bool]],
                 interpreters: InterpreterControl | None = None, monitoring: MonitorControl | None = None,
                 take_offers: Callable[[list[Offer]], None] = lambda offers: None) -> None:
        self.interpreters = interpreters
        # An advocate made available here may be offered a call of this
        # engine's at once: handed over without waiting for pub/sub.
        self.take_offers = take_offers
        self.monitoring = monitoring
        self.store = store
        self.auth = auth
        self.metrics = metrics
        self.queues = tuple(queues)
        self.health = health

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes([
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics_page),
            web.get("/openapi.json", self.openapi),
            web.get("/advocates", self.list_advocates),
            web.get("/advocates/{id}", self.get_advocate),
            web.post("/advocates/{id}/{action}", self.advocate_action),
            web.get("/dispositions", self.dispositions),
            web.get("/interpreters/languages", self.interpreter_languages),
            web.get("/calls/{id}", self.get_call),
            web.post("/calls/{id}/interpreter", self.add_interpreter),
            web.delete("/calls/{id}/interpreter", self.remove_interpreter),
            web.post("/calls/{id}/monitor", self.monitor),
            web.delete("/calls/{id}/monitor", self.stop_monitoring),
        ])
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.content_type != "application/json" and exc.status >= 400:
                # aiohttp's own 404/405 as JSON like ours; keep Allow and the like.
                headers = {k: v for k, v in exc.headers.items() if k.lower() not in {"content-type",
                                                                                      "content-length"}}
                return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
            raise
        except RoutingError as exc:
            log.error("api: routing unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
            raise json_error(web.HTTPServiceUnavailable, "routing store unavailable; try again") from None

    async def healthz(self, request: web.Request) -> web.Response:
        health = self.health()
        return web.json_response(health, status=200 if all(health.values()) else 503)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(OPENAPI)

    async def metrics_page(self, request: web.Request) -> web.Response:
        try:
            snap = await self.store.snapshot()
        except RoutingError:
            self.metrics.redis_up.set(0)
            self.metrics.clear_snapshot()
        else:
            self.metrics.redis_up.set(1)
            self.metrics.set_snapshot(
                time.time(), self.queues,
                {q: d.waiting for q, d in snap.queues.items()},
                {q: d.oldest_arrival_ms for q, d in snap.queues.items()},
                {str(state): n for state, n in snap.advocates.items()},
                available={q: d.available for q, d in snap.queues.items()},
                advocates_by_skill={skill: {str(state): n for state, n in states.items()}
                                    for skill, states in snap.advocates_by_skill.items()})
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    def _authorise(self, request: web.Request, advocate_id: str | None = None) -> Principal:
        if advocate_id is None:
            return self.auth.supervisor(request)
        principal = self.auth.principal(request)
        if principal.advocate_id != advocate_id and not principal.supervisor:
            raise json_error(web.HTTPForbidden, "a token acts on its own advocate only")
        return principal

    async def list_advocates(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return web.json_response([_advocate_json(a) for a in await self.store.list_advocates()])

    async def get_advocate(self, request: web.Request) -> web.Response:
        advocate_id = request.match_info["id"]
        self._authorise(request, advocate_id)
        advocate = await self.store.get_advocate(advocate_id)
        if advocate is None:
            raise json_error(web.HTTPNotFound, f"no advocate {advocate_id!r}")
        return web.json_response(_advocate_json(advocate))

    async def advocate_action(self, request: web.Request) -> web.Response:
        advocate_id, action = request.match_info["id"], request.match_info["action"]
        # The token first: without one, every request is the same 401.
        principal = self._authorise(request, advocate_id)
        if action not in STATE_ACTIONS:
            raise json_error(web.HTTPNotFound, f"unknown action {action!r}; one of {sorted(STATE_ACTIONS)}")
        disposition = _disposition(action, await _json_body(request, {"disposition"}))
        advocate = await self.store.get_advocate(advocate_id)
        if advocate is None:
            raise json_error(web.HTTPNotFound, f"no advocate {advocate_id!r}")
        target = STATE_ACTIONS[action]
        try:
            # Leaving wrap-up, by whatever action, ends the after-call work:
            # measured once, whether this request or the timer gets there first.
            ended = None
            if advocate.state is AdvocateState.WRAP_UP:
                ended = await self.store.end_wrap_up(advocate_id, target, disposition=disposition)
                if ended is not None:
                    self.take_offers(list(ended.offers))
                    record_wrap_up_end(self.metrics, ended, disposition, int(time.time() * 1000))
            if ended is None:
                if action == "end-wrap-up":
                    now = await self.store.get_advocate(advocate_id)
                    state = now.state if now is not None else advocate.state
                    raise json_error(web.HTTPConflict, f"advocate {advocate_id!r} is {state}, not in wrap-up")
                self.take_offers(await self.store.set_state(advocate_id, target))
        except InvalidTransition as exc:
            raise json_error(web.HTTPConflict, f"advocate {advocate_id!r} cannot go from {exc.old} to {exc.new}") \
                from None
        except UnknownAdvocate:
            raise json_error(web.HTTPNotFound, f"no advocate {advocate_id!r}") from None
        log.info("advocate %s: %s%s (by %s)", advocate_id, action,
                 f", disposition {disposition}" if disposition else "", principal.advocate_id)
        updated = await self.store.get_advocate(advocate_id)
        assert updated is not None
        return web.json_response(_advocate_json(updated))

    async def dispositions(self, request: web.Request) -> web.Response:
        self.auth.principal(request)
        return web.json_response({"dispositions": [{"id": d, "label": label} for d, label in DISPOSITIONS.items()]})

    async def interpreter_languages(self, request: web.Request) -> web.Response:
        """The console's language picker: what the providers serve (the
        catalog's other 7,000 languages would only be refused), with the
        language's own name where the catalog has it."""
        self.auth.principal(request)
        if self.interpreters is None:
            raise json_error(web.HTTPNotFound, "no interpreter provider is configured")
        return web.json_response({"languages": [{"code": lang.code, "name": lang.name, "native": lang.native}
                                                for lang in self.interpreters.languages()]})

    async def get_call(self, request: web.Request) -> web.Response:
        principal = self.auth.principal(request)
        call_id = request.match_info["id"]
        record = await self.store.get_call(call_id)
        # The advocate on the call sees its data (language, relay, wait);
        # other advocates learn nothing, not even whether the call exists.
        if not principal.supervisor and (record is None or record.get("advocate") != principal.advocate_id):
            raise json_error(web.HTTPForbidden, "only the advocate on the call or a supervisor may read it")
        if record is None:
            raise json_error(web.HTTPNotFound, f"no call {call_id!r} (records expire)")
        return web.json_response({"id": call_id, **{k: record[k] for k in CALL_FIELDS if k in record}})

    async def _call_of_principal(self, request: web.Request) -> tuple[str, dict[str, str]]:
        """The call, if the token's advocate is on it (or is a supervisor)."""
        principal = self.auth.principal(request)
        call_id = request.match_info["id"]
        record = await self.store.get_call(call_id)
        if record is None:
            raise json_error(web.HTTPNotFound, f"no call {call_id!r}")
        if not principal.supervisor and record.get("advocate") != principal.advocate_id:
            raise json_error(web.HTTPForbidden, "only the advocate on the call or a supervisor may do that")
        if record.get("state") != "bridged":
            raise json_error(web.HTTPConflict, f"call {call_id!r} is {record.get('state')}, not connected")
        return call_id, record

    async def add_interpreter(self, request: web.Request) -> web.Response:
        call_id, _ = await self._call_of_principal(request)
        if self.interpreters is None:
            raise json_error(web.HTTPNotFound, "no interpreter provider is configured")
        body = await _json_body(request, {"language"})
        code = body.get("language")
        language = None
        if code is not None:
            if not isinstance(code, str):
                raise json_error(web.HTTPUnprocessableEntity, "language: must be a language code such as 'vie' or 'vi'")
            try:
                language = self.interpreters.language(code)
            except ValueError as exc:
                raise json_error(web.HTTPUnprocessableEntity, f"language: {exc}") from None
        if not self.interpreters.request(call_id, language, remove=False):
            raise json_error(web.HTTPConflict, f"call {call_id!r} is not held by this engine")
        return web.json_response({"call": call_id, "interpreter": language or "operator", "status": "joining"},
                                 status=202)

    async def remove_interpreter(self, request: web.Request) -> web.Response:
        call_id, _ = await self._call_of_principal(request)
        if self.interpreters is None:
            raise json_error(web.HTTPNotFound, "no interpreter provider is configured")
        if not self.interpreters.request(call_id, None, remove=True):
            raise json_error(web.HTTPConflict, f"call {call_id!r} is not held by this engine")
        return web.json_response({"call": call_id, "status": "removing"}, status=202)

    async def monitor(self, request: web.Request) -> web.Response:
        """A supervisor listens, whispers to the advocate or barges in; the same
        supervisor posting another mode switches to it."""
        principal = self._authorise(request)  # supervisors only
        body = await _json_body(request, {"mode"})
        try:
            mode = parse_mode(body.get("mode"))
        except ValueError as exc:
            raise json_error(web.HTTPUnprocessableEntity, f"mode: {exc}") from None
        call_id = await self._connected_call(request)
        answer = await self._ask(call_id, principal, mode)
        return web.json_response({"call": call_id, "mode": str(mode), "status": answer.status},
                                 status=200 if answer.status == "unchanged" else 202)

    async def stop_monitoring(self, request: web.Request) -> web.Response:
        principal = self._authorise(request)
        call_id = await self._connected_call(request)
        answer = await self._ask(call_id, principal, None)
        return web.json_response({"call": call_id, "status": answer.status}, status=202)

    async def _connected_call(self, request: web.Request) -> str:
        call_id = request.match_info["id"]
        record = await self.store.get_call(call_id)
        if record is None:
            raise json_error(web.HTTPNotFound, f"no call {call_id!r}")
        if record.get("state") != "bridged":
            raise json_error(web.HTTPConflict, f"call {call_id!r} is {record.get('state')}, not connected")
        return call_id

    async def _ask(self, call_id: str, principal: Principal, mode: Mode | None) -> MonitorAnswer:
        if self.monitoring is None:
            raise json_error(web.HTTPConflict, f"call {call_id!r} is not held by this engine")
        answer = await self.monitoring.request(call_id, principal.advocate_id, mode)
        if answer is None:
            raise json_error(web.HTTPConflict, f"call {call_id!r} is not held by this engine")
        if answer.status == "timeout":
            raise json_error(web.HTTPServiceUnavailable, answer.detail)
        if not answer.accepted:
            raise json_error(web.HTTPConflict, answer.detail)
        return answer


def _disposition(action: str, body: dict[str, object]) -> str | None:
    disposition = body.get("disposition")
    if disposition is None:
        return None
    if action != "end-wrap-up":
        raise json_error(web.HTTPUnprocessableEntity, "disposition: recorded by end-wrap-up only")
    if not isinstance(disposition, str) or disposition not in DISPOSITIONS:
        raise json_error(web.HTTPUnprocessableEntity,
                         f"disposition: {disposition!r} is not one of {', '.join(DISPOSITIONS)}")
    return disposition


async def _json_body(request: web.Request, fields: set[str]) -> dict[str, object]:
    """The request's JSON object, whose keys must be among `fields`: one
    misspelt would be ignored, and change what is done (an interpreter
    asked for by "lang" would be the operator)."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, RecursionError, LookupError):
        # RecursionError: nested deeper than the parser goes; LookupError: a
        # charset in Content-Type that Python does not know.
        raise json_error(web.HTTPBadRequest, "body: not valid JSON") from None
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "body: must be a JSON object")
    unknown = sorted(set(body) - fields)
    if unknown:
        named = ", ".join(repr(name[:40]) for name in unknown[:3])
        raise json_error(web.HTTPUnprocessableEntity,
                         f"body: unknown field {named}; expected {', '.join(sorted(fields))}")
    return body
