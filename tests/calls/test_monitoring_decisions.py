"""What a supervisor's monitoring request does to a connected call (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.monitoring import (
    SNOOP,
    Mode,
    MonitorRecord,
    Refuse,
    Start,
    Stop,
    Switch,
    Unchanged,
    answer_for,
    decide,
    parse_mode,
)


def session(supervisor: str = "sam", mode: Mode = Mode.LISTEN) -> MonitorRecord:
    snoop = SNOOP.get(mode)
    return MonitorRecord(supervisor, mode, "c-mon1", True, "c-mon1-bridge", "c-mon1-snoop1",
                         snoop.spy if snoop else None, snoop.whisper if snoop else None)


def test_a_supervisor_starts_on_an_unmonitored_call():
    assert decide(None, supervisor="sam", mode=Mode.WHISPER, advocate="ana") == Start(Mode.WHISPER)


def test_the_same_supervisor_switches_modes_and_asking_again_changes_nothing():
    assert decide(session(mode=Mode.LISTEN), supervisor="sam", mode=Mode.BARGE, advocate="ana") == Switch(Mode.BARGE)
    assert decide(session(mode=Mode.BARGE), supervisor="sam", mode=Mode.BARGE, advocate="ana") == Unchanged()


def test_a_second_supervisor_is_refused_while_one_monitors():
    decision = decide(session("sam"), supervisor="kim", mode=Mode.LISTEN, advocate="ana")
    assert isinstance(decision, Refuse) and "'sam'" in decision.why


def test_a_supervisor_taking_the_call_cannot_monitor_it():
    assert isinstance(decide(None, supervisor="sam", mode=Mode.LISTEN, advocate="sam"), Refuse)


def test_any_supervisor_may_stop_a_session_but_there_must_be_one():
    assert decide(session("sam"), supervisor="kim", mode=None, advocate="ana") == Stop()
    assert isinstance(decide(None, supervisor="sam", mode=None, advocate="ana"), Refuse)


@given(current=st.one_of(st.none(), st.builds(session, st.sampled_from(["sam", "kim"]), st.sampled_from(Mode))),
       supervisor=st.sampled_from(["sam", "kim", "ana"]), mode=st.one_of(st.none(), st.sampled_from(Mode)))
def test_every_decision_is_answered_accepted_exactly_when_it_is_not_a_refusal(current, supervisor, mode):
    decision = decide(current, supervisor=supervisor, mode=mode, advocate="ana")
    answer = answer_for(decision)
    assert answer.accepted == (not isinstance(decision, Refuse))
    assert answer.detail if not answer.accepted else answer.status in {"dialling", "switching", "unchanged",
                                                                        "stopping"}


def test_listen_never_whispers_whisper_reaches_the_advocate_only_and_barge_needs_no_snoop():
    assert (SNOOP[Mode.LISTEN].spy, SNOOP[Mode.LISTEN].whisper) == ("both", "none")
    assert (SNOOP[Mode.WHISPER].spy, SNOOP[Mode.WHISPER].whisper) == ("both", "out")
    assert Mode.BARGE not in SNOOP


@pytest.mark.parametrize("value", ["LISTEN", "eavesdrop", "", None, 1, ["listen"]])
def test_a_mode_is_one_of_the_three_names(value):
    with pytest.raises(ValueError, match="listen, whisper, barge"):
        parse_mode(value)
    assert parse_mode("barge") is Mode.BARGE
