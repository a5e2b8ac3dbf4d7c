"""The supervisors' audit trail against a real Redis: newest first, capped,
expiring, and with no place for a caller's number."""

from __future__ import annotations

from dataclasses import fields

import pytest
import redis.asyncio as aioredis
from routing_support import TEST_KEYS, free_port

from routing.audit import AuditEntry, SupervisorAudit
from routing.errors import RoutingUnavailable


def entry(n: int, action: str = "start") -> AuditEntry:
    return AuditEntry(at_ms=1_700_000_000_000 + n, call=f"1700000000.{n}", supervisor="sam", by="sam",
                      action=action, mode="listen", engine="e1")


async def test_entries_come_back_newest_first_as_they_were_written(redis_client):
    audit = SupervisorAudit(redis_client, TEST_KEYS, max_entries=10, retention_s=3600)
    first = entry(1)
    second = AuditEntry(at_ms=2, call="c", supervisor="sam", by="engine", action="ended", mode="whisper",
                        reason="call_ended", engine="e1")

    await audit.append(first)
    await audit.append(second)

    assert await audit.recent() == [second, first]
    assert await audit.recent(limit=1) == [second]


async def test_the_list_keeps_only_the_newest_entries(redis_client):
    audit = SupervisorAudit(redis_client, TEST_KEYS, max_entries=3, retention_s=3600)

    for n in range(5):
        await audit.append(entry(n))

    assert [e.at_ms % 1000 for e in await audit.recent()] == [4, 3, 2]
    assert await redis_client.llen(TEST_KEYS.supervisor_audit()) == 3


async def test_the_list_expires_its_retention_after_the_last_action(redis_client):
    audit = SupervisorAudit(redis_client, TEST_KEYS, max_entries=3, retention_s=7 * 86400)
    await audit.append(entry(1))
    await redis_client.expire(TEST_KEYS.supervisor_audit(), 10)

    await audit.append(entry(2))

    assert 7 * 86400 - 5 <= await redis_client.ttl(TEST_KEYS.supervisor_audit()) <= 7 * 86400


def test_an_entry_has_ids_and_no_field_for_a_number():
    assert {f.name for f in fields(AuditEntry)} == {
        "at_ms", "call", "supervisor", "by", "action", "mode", "reason", "from_mode", "engine"}


async def test_an_unreachable_redis_is_a_routing_error():
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), decode_responses=True, socket_connect_timeout=0.2)
    audit = SupervisorAudit(dead, TEST_KEYS, max_entries=3, retention_s=60)
    with pytest.raises(RoutingUnavailable):
        await audit.append(entry(1))
    await dead.aclose()
