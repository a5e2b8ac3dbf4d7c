"""OpenAPI 3.1 description of the engine's HTTP API (served at /openapi.json)."""

from __future__ import annotations

from ivr.wrapup import DISPOSITIONS

_ERROR = {"description": "Why the request was refused",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
# A client that presented too many unknown tokens, whatever it sends now.
_THROTTLED = {"description": "Too many unknown tokens from this address; retry after the given seconds",
              "headers": {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}},
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ADVOCATE = {"description": "The advocate's record",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Advocate"}}}}
_ID = {"name": "id", "in": "path", "required": True, "example": "ana",
       "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
# A call is named by its caller channel's id (Asterisk's "<epoch>.<sequence>").
_CALL_ID = {"name": "id", "in": "path", "required": True, "example": "1732871240.15", "schema": {"type": "string"}}


def _monitoring(description: str) -> dict[str, object]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Monitoring"}}}}


def _action(summary: str) -> dict[str, object]:
    return {"post": {"summary": summary, "parameters": [_ID],
                     "responses": {"200": _ADVOCATE, "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
                                   "409": _ERROR, "422": _ERROR, "503": _ERROR}}}


def _end_wrap_up() -> dict[str, object]:
    action = _action("End after-call work early, recording the call's disposition: available")
    action["post"]["requestBody"] = {"required": False, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {"disposition": {
            "type": "string", "enum": list(DISPOSITIONS),
            "description": "the hotline's category of the call; stored on the call record and counted in "
                           "hotline_dispositions_total. Absent: none recorded"}}}}}}
    return action


def _get(summary: str, content: dict[str, object], *extra: str) -> dict[str, object]:
    return {"get": {"summary": summary, "responses": {"200": content, "401": _ERROR, "403": _ERROR,
                                                      **{code: _ERROR for code in extra}}}}


OPENAPI: dict[str, object] = {
    "openapi": "3.1.0",
    "info": {"title": "Hotline engine", "version": "1",
             "description": "Advocate state, supervisor look-ups and call monitoring. Bearer token per "
                            "advocate; an advocate acts on their own record, supervisors on any."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Advocate": {"type": "object", "required": ["id", "state"], "properties": {
                "id": {"type": "string"}, "name": {"type": "string"},
                "state": {"type": "string",
                          "enum": ["offline", "available", "ringing", "on_call", "wrap_up", "away"]},
                "state_since": {"type": "number", "description": "epoch seconds"},
                "skills": {"type": "array", "items": {"type": "string"}},
                "roles": {"type": "array", "items": {"type": "string"}},
                "call": {"type": ["string", "null"]}}},
            "Monitoring": {"type": "object", "required": ["call", "status"], "properties": {
                "call": {"type": "string"},
                "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]},
                "status": {"type": "string", "enum": ["dialling", "switching", "unchanged", "stopping"]}}},
            "Call": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "queue": {"type": "string"}, "state": {"type": "string"},
                "language": {"type": "string"}, "call_type": {"type": "string"},
                "path": {"type": "string"}, "answered_by": {"type": "string"},
                "waited_ms": {"type": "string"}, "sip_call_id": {"type": "string"},
                # Redis hash fields: numbers arrive as their decimal strings.
                "priority": {"type": "string"}, "arrival_ms": {"type": "string"},
                "advocate": {"type": "string"}, "no_input": {"type": "string"},
                "entry_queue": {"type": "string", "description": "the queue the call entered; "
                                "`queue` is where it waits now (skill tiers widen it)"},
                "relay": {"type": "string", "enum": ["0", "1"],
                          "description": "1: a TRS/711 relay call (a relay operator types or voices each side)"},
                "did_kind": {"type": "string", "description": "toll_free, spanish or other; never the number"},
                "disposition": {"type": "string", "enum": list(DISPOSITIONS),
                                "description": "recorded by the advocate at the end of wrap-up"}}},
            "Board": {"type": "object", "description": "The wallboard: queues with their waiting calls (wait, "
                      "language, call type, relay; never a number), advocates by state and since when, and "
                      "today's counts (the day in wallboard.timezone, shared by every engine). Times in epoch ms.",
                      "required": ["now_ms", "day", "queues", "advocates", "states", "today"]},
        },
    },
    "security": [{"bearer": []}],
    "paths": {
        "/healthz": {"get": {"summary": "ARI and Redis health", "security": [],
                             "responses": {"200": {"description": "healthy"}, "503": {"description": "degraded"}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text exposition format"}}}},
        "/advocates": {"get": {"summary": "All advocates (supervisor)",
                               "responses": {"200": {"description": "list",
                                                     "content": {"application/json": {"schema": {
                                                         "type": "array",
                                                         "items": {"$ref": "#/components/schemas/Advocate"}}}}},
                                             "401": _ERROR, "403": _ERROR}}},
        "/advocates/{id}": {"get": {"summary": "One advocate", "parameters": [_ID],
                                    "responses": {"200": _ADVOCATE, "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/advocates/{id}/login": _action("Log in: available for calls"),
        "/advocates/{id}/logout": _action("Log out: offline"),
        "/advocates/{id}/available": _action("Available for calls"),
        "/advocates/{id}/away": _action("Away: no calls offered"),
        "/advocates/{id}/end-wrap-up": _end_wrap_up(),
        "/dispositions": _get("The dispositions an advocate may record at the end of wrap-up", {
            "description": "id and label of each", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"dispositions": {"type": "array", "items": {
                    "type": "object", "properties": {"id": {"type": "string"}, "label": {"type": "string"}}}}}}}}}),
        "/interpreters/languages": _get("The languages the interpreter providers serve (the console's picker)", {
            "description": "ISO 639-3 code, English name and the language's own name where known",
            "content": {"application/json": {"schema": {"type": "object", "properties": {"languages": {
                "type": "array", "items": {"type": "object", "properties": {
                    "code": {"type": "string"}, "name": {"type": "string"},
                    "native": {"type": ["string", "null"]}}}}}}}}}, "404"),
        "/wallboard/state": _get("The wallboard, once (supervisor)", {
            "description": "the board", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Board"}}}}, "503"),
        "/wallboard/events": _get("The wallboard as server-sent events (supervisor): `board` whenever it changes "
                                  "(and every 15 s), `unavailable` while Redis does not answer", {
            "description": "text/event-stream; each event's data is a Board",
            "content": {"text/event-stream": {"schema": {"$ref": "#/components/schemas/Board"}}}}),
        "/calls/{id}/interpreter": {
            "post": {"summary": "Join a tele-interpreter (the advocate on the call, or a supervisor)",
                     "parameters": [_CALL_ID],
                     "requestBody": {"required": False, "content": {"application/json": {"schema": {
                         "type": "object", "additionalProperties": False, "properties": {"language": {
                             "type": "string", "description": "ISO 639-3 or 639-1; absent: the operator"}}}}}},
                     "responses": {"202": {"description": "the interpreter is being dialled"},
                                   "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
                                   "409": _ERROR, "422": _ERROR}},
            "delete": {"summary": "Remove the interpreter",
                       "parameters": [_CALL_ID],
                       "responses": {"202": {"description": "the interpreter is leaving"},
                                     "401": _ERROR, "403": _ERROR, "404": _ERROR, "409": _ERROR}}},
        "/calls/{id}/monitor": {
            "post": {"summary": "Supervisor: listen, whisper to the advocate, or barge in; another mode switches",
                     "description": "The supervisor's phone (their roster endpoint) rings; listen: hears caller "
                                    "and advocate, heard by nobody; whisper: heard by the advocate only; barge: "
                                    "all three hear each other. Every action is audited.",
                     "parameters": [_CALL_ID],
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["mode"], "additionalProperties": False,
                         "properties": {"mode": {
                             "type": "string", "enum": ["listen", "whisper", "barge"]}}}}}},
                     "responses": {"200": _monitoring("already in that mode"),
                                   "202": _monitoring("dialling the supervisor, or switching mode"),
                                   "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR,
                                   "409": _ERROR, "422": _ERROR, "503": _ERROR}},
            "delete": {"summary": "Supervisor: stop monitoring the call (the supervisor's phone hangs up)",
                       "parameters": [_CALL_ID],
                       "responses": {"202": _monitoring("stopping"), "401": _ERROR, "403": _ERROR,
                                     "404": _ERROR, "409": _ERROR, "503": _ERROR}}},
        "/calls/{id}": {"get": {"summary": "A call's record (supervisor); never the caller's number",
                                "parameters": [_CALL_ID],
                                "responses": {"200": {"description": "the call",
                                                      "content": {"application/json": {"schema": {
                                                          "$ref": "#/components/schemas/Call"}}}},
                                              "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
    },
}

# Every operation behind a token may be refused for a guessing client, and
# reads Redis, which may be unreachable.
for _item in OPENAPI["paths"].values():  # type: ignore[attr-defined]
    for _operation in _item.values():
        if _operation.get("security") != []:
            _operation["responses"].setdefault("429", _THROTTLED)
            _operation["responses"].setdefault("503", _ERROR)
