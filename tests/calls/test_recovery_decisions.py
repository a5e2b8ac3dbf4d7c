"""The pure decision of ivr.recovery: what to restore of the advocates after Redis lost its data."""

from __future__ import annotations

from ivr.recovery import marks_to_restore
from routing.advocates import AdvocateState
from routing.restore import AdvocateMark

S = AdvocateState
NOW = 1_000_000


def test_advocates_come_back_as_last_seen_and_a_busy_one_in_wrap_up_never_available():
    marks = [AdvocateMark("free", S.AVAILABLE, 10, 5), AdvocateMark("out", S.OFFLINE, 10, None),
             AdvocateMark("pause", S.AWAY, 10, 5), AdvocateMark("after", S.WRAP_UP, 10, 5),
             AdvocateMark("talk", S.ON_CALL, 10, 5), AdvocateMark("ring", S.RINGING, 10, 5)]
    restored = {m.advocate_id: (m.state, m.state_since) for m in marks_to_restore(marks, NOW)}
    assert restored == {"free": (S.AVAILABLE, 10), "pause": (S.AWAY, 10), "after": (S.WRAP_UP, 10),
                        "talk": (S.WRAP_UP, NOW), "ring": (S.WRAP_UP, NOW)}


def test_an_advocate_a_held_call_claims_is_left_to_that_call_whatever_was_last_read():
    marks = [AdvocateMark("free", S.AVAILABLE, 10, 5), AdvocateMark("mine", S.AVAILABLE, 10, 5),
             AdvocateMark("talking", S.ON_CALL, 10, 5)]
    restored = [m.advocate_id for m in marks_to_restore(marks, NOW, claimed={"mine", "talking"})]
    assert restored == ["free"]
