"""The pure decisions of ivr.recovery: what to restore, what to end in Redis."""

from __future__ import annotations

from ivr.recovery import EndInRedis, marks_to_restore, orphan_endings
from routing.advocates import AdvocateState
from routing.restore import AdvocateMark, OwnedCall

S = AdvocateState
NOW = 1_000_000


def test_advocates_come_back_as_last_seen_and_a_busy_one_in_wrap_up_never_available():
    marks = [AdvocateMark("free", S.AVAILABLE, 10, 5), AdvocateMark("out", S.OFFLINE, 10, None),
             AdvocateMark("pause", S.AWAY, 10, 5), AdvocateMark("after", S.WRAP_UP, 10, 5),
             AdvocateMark("talk", S.ON_CALL, 10, 5), AdvocateMark("ring", S.RINGING, 10, 5)]
    restored = {m.advocate_id: (m.state, m.state_since) for m in marks_to_restore(marks, NOW)}
    assert restored == {"free": (S.AVAILABLE, 10), "pause": (S.AWAY, 10), "after": (S.WRAP_UP, 10),
                        "talk": (S.WRAP_UP, NOW), "ring": (S.WRAP_UP, NOW)}


def test_only_calls_neither_held_nor_alive_in_asterisk_are_ended_in_redis():
    owned = [OwnedCall("w", "waiting", "e1", None), OwnedCall("o", "offered", "e1", "a1"),
             OwnedCall("b", "bridged", "e1", "a2"), OwnedCall("x", "escalating", "e1", None, ("s1", "s2")),
             OwnedCall("held", "bridged", "e1", "a3"), OwnedCall("fallback", "offered", "e1", "a4")]
    endings = orphan_endings(owned, held={"held"}, live={"fallback"})
    assert endings == [EndInRedis("w", "abandon", ()), EndInRedis("o", "offer_cancelled", ("a1",)),
                       EndInRedis("b", "call_ended", ("a2",)), EndInRedis("x", "escalation_settled", ("s1", "s2"))]
