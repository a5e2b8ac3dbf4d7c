"""Splitting what to key in into digit steps with the pauses before them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.interpreters.provider import ProviderSettings, dtmf_for, parse_dtmf_plan

DTMF = st.text(alphabet="0123456789*#wW", max_size=40)


def test_the_default_template_becomes_three_steps_each_after_a_second():
    p = ProviderSettings(name="p", dial_string="PJSIP/1800@carrier", account="1234", pin="9876",
                         languages={"vie": "22"})
    assert parse_dtmf_plan(dtmf_for(p, "vie")) == [("1234#", 1.0), ("9876#", 1.0), ("22#", 1.0)]
    assert parse_dtmf_plan(dtmf_for(p, None)) == [("1234#", 1.0), ("9876#", 1.0)]


def test_pauses_add_up_and_a_trailing_pause_is_a_step_without_digits():
    assert parse_dtmf_plan("12wW3") == [("12", 0.0), ("3", 1.5)]
    assert parse_dtmf_plan("1#ww") == [("1#", 0.0), ("", 1.0)]
    assert parse_dtmf_plan("W") == [("", 1.0)]
    assert parse_dtmf_plan("") == []


def test_a_character_that_is_not_dtmf_is_refused_by_position_without_echoing_the_string():
    with pytest.raises(ValueError, match=r"DTMF character 6: 'x' is not a digit") as raised:
        parse_dtmf_plan("ww9876x")
    assert "9876" not in str(raised.value)


@given(DTMF)
def test_the_plan_keeps_every_key_in_order_and_every_pause(dtmf):
    plan = parse_dtmf_plan(dtmf)
    assert "".join(digits for digits, _ in plan) == dtmf.replace("w", "").replace("W", "")
    assert sum(pause for _, pause in plan) == 0.5 * dtmf.count("w") + 1.0 * dtmf.count("W")


@given(DTMF)
def test_every_step_but_the_first_waits_and_only_the_last_may_have_no_digits(dtmf):
    plan = parse_dtmf_plan(dtmf)
    assert all(pause > 0 for _, pause in plan[1:])
    assert all(digits for digits, _ in plan[:-1])
    # Rebuilding the string from the plan gives an equivalent one: same keys, same waits.
    rebuilt = "".join("W" * int(pause) + "w" * round(pause % 1 * 2) + digits for digits, pause in plan)
    assert parse_dtmf_plan(rebuilt) == plan
