"""The advocate's feature codes: star, then a number from the published list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.feature_codes import AddInterpreter, FeatureCodes, RemoveInterpreter, Unknown

CODES = {"1": "spa", "2": "vie", "31": "mam", "32": "quc", "3": "zho"}


def dial(codes: FeatureCodes, digits: str):
    return [outcome for d in digits if (outcome := codes.digit(d)) is not None]


def test_star_and_a_listed_number_adds_that_interpreter():
    assert dial(FeatureCodes(CODES), "*2") == [AddInterpreter("vie")]


def test_star_zero_removes_the_interpreter():
    assert dial(FeatureCodes(CODES), "*0") == [RemoveInterpreter()]


def test_digits_without_a_star_are_not_codes():
    assert dial(FeatureCodes(CODES), "12#") == []


def test_a_code_that_prefixes_longer_ones_waits_for_the_next_digit_or_the_timeout():
    codes = FeatureCodes(CODES)
    assert dial(codes, "*3") == []
    assert codes.collecting
    assert codes.timed_out() == AddInterpreter("zho")
    assert dial(codes, "*32") == [AddInterpreter("quc")]


def test_an_unlisted_code_is_reported_and_a_new_star_starts_over():
    codes = FeatureCodes(CODES)
    assert dial(codes, "*9") == [Unknown("9")]
    assert dial(codes, "*3*1") == [AddInterpreter("spa")]


def test_zero_cannot_be_a_language_code():
    with pytest.raises(ValueError, match="reserved"):
        FeatureCodes({"0": "spa"})


@given(st.text(alphabet="0123456789*#", max_size=40))
def test_any_digits_give_only_listed_languages_and_never_raise(digits):
    codes = FeatureCodes(CODES)
    for outcome in dial(codes, digits) + [codes.timed_out()]:
        if isinstance(outcome, AddInterpreter):
            assert outcome.language in CODES.values()
