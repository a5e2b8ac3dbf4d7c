"""``hotline call``: place one simulated call into the sandbox and tell its story.

The call is a real SIP call from the simulated PSTN. What the hotline did
with it is read back from the call's record in Redis, found through the
SIP Call-ID the caller's phone and the hotline's channel share; the caller's
number is printed only here, on the caller's own side.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import redis.asyncio as redis

from ivr.sandbox.phones_client import PhonesClient
from ivr.settings import Settings
from routing.keys import Keys
from routing.queues import QueueSpec
from routing.store import RoutingStore


async def place_and_follow(settings: Settings, *, caller: str, to: str, dtmf: str, wait_s: float,
                           keep: bool) -> dict[str, Any]:
    story: list[str] = [f"calling {to} from {caller} (simulated PSTN), pressing {dtmf or 'nothing'}"]
    report: dict[str, Any] = {"to": to, "dtmf": dtmf, "outcome": "unknown", "story": story}
    client = redis.Redis.from_url(settings.redis.url, decode_responses=True,
                                  password=settings.redis.password.get_secret_value()
                                  if settings.redis.password else None)
    store = RoutingStore(client, queues=[QueueSpec(q.name, q.skills) for q in settings.routing.queues],
                         keys=Keys(settings.redis.key_prefix))
    async with aiohttp.ClientSession() as session:
        phones = PhonesClient(session, f"http://127.0.0.1:{settings.sandbox.phones_http_port}")
        await phones.mark()
        started = time.monotonic()
        call = await phones.place_call(caller, to, dtmf=dtmf)
        deadline = started + wait_s
        try:
            answered = await phones.wait_for(
                lambda e: e["call"] == call["id"] and e["kind"] in {"answered", "ended"},
                wait_s, what="answer by the hotline")
            if answered["kind"] == "ended":
                story.append("the hotline did not answer")
                report["outcome"] = "unanswered"
                return report
            report["answered_after_s"] = round(answered["time"] - call["started_at"], 2)
            story.append(f"answered by the hotline after {report['answered_after_s']} s")
            sip_call_id = (await phones.call(call["id"]))["sip_call_id"]
            record = await _follow(phones, store, call["id"], sip_call_id, deadline, report,
                                   backup_phone=dialled_number(settings.lines.backup_destination))
            if record:
                report["record"] = record
                story.append(f"menu: {record.get('path') or '(no input)'} -> {record.get('language')}, "
                             f"{record.get('call_type')}, queue {record.get('queue')}")
                if record.get("answered_by"):
                    report["outcome"] = "advocate"
                    story.append(f"advocate {record['answered_by']} answered after waiting "
                                 f"{int(record.get('waited_ms', 0)) / 1000:.2f} s in queue")
            if report["outcome"] == "unknown":
                story.append(f"not connected within {wait_s:.0f} s")
        finally:
            if not keep:
                await phones.hangup(call["id"])
            await client.aclose()
    return report


def dialled_number(dial_string: str) -> str:
    """The number a PJSIP dial string rings on the PSTN side: PJSIP/1999@carrier -> 1999."""
    return dial_string.split("/", 1)[-1].split("@", 1)[0]


async def _follow(phones: PhonesClient, store: RoutingStore, phone_call: str, sip_call_id: str,
                  deadline: float, report: dict[str, Any], *, backup_phone: str) -> dict[str, str] | None:
    """Follow the call until an advocate answers, it ends, or the deadline."""
    record = None
    while time.monotonic() < deadline:
        call_id = await store.call_for_sip_id(sip_call_id) if sip_call_id else None
        record = await store.get_call(call_id) if call_id else None
        if record and record.get("answered_by"):
            return record
        try:
            event = await phones.wait_for(lambda e: e["kind"] in {"answered", "ended", "ringing"},
                                          min(5.0, deadline - time.monotonic()), what="progress")
        except TimeoutError:
            continue
        phones.seen.remove(event)
        if event["call"] == phone_call and event["kind"] == "ended":
            report["outcome"] = "caller_ended"
            return record
        if event["kind"] == "answered" and event["direction"] == "in" and event["number"] == backup_phone:
            report["outcome"] = "backup"
            report["story"].append("answered by the backup call centre (dialplan fallback)")
            return record
    return record
