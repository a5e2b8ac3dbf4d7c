"""The HMAC that stands in for a caller's number."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.privacy import CallerHasher, call_id_unsafe, holds_number, normalise, number_tail

KEY = b"a key of the hotline"


def test_one_caller_in_any_format_has_one_reference():
    hasher = CallerHasher(KEY)
    assert len({hasher(n) for n in ("+1 555-555-0101", "15555550101", "(555) 555-0101")}) == 1


def test_another_key_gives_another_reference_and_the_key_stays_hidden():
    assert CallerHasher(KEY)("5555550101") != CallerHasher(b"another key here")("5555550101")
    assert "hotline" not in repr(CallerHasher(KEY))


@given(st.text(alphabet="0123456789", min_size=1, max_size=15))
def test_a_reference_is_32_hex_digits_that_do_not_contain_the_number(number):
    reference = CallerHasher(KEY)(number)
    assert re.fullmatch(r"[0-9a-f]{32}", reference)
    if len(number) >= 7:
        assert number not in reference


def test_the_reference_for_a_real_looking_number_does_not_contain_its_digits():
    reference = CallerHasher(KEY)("+1 555-555-0101")
    assert not any(part in reference for part in ("5555550101", "5550101", "555555"))


def test_repr_and_str_show_no_part_of_the_key():
    hasher = CallerHasher(KEY)
    for text in (repr(hasher), str(hasher)):
        assert KEY.decode() not in text and repr(KEY) not in text and KEY.hex() not in text


def test_a_short_key_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="privacy.hmac_key"):
        CallerHasher(b"short")


@pytest.mark.parametrize("number, digits", [
    ("+1 555-555-0101", "5555550101"),
    ("15555550101", "5555550101"),
    ("(555) 555-0101", "5555550101"),
    ("+44 20 7946 0018", "442079460018"),   # not a North American number: kept whole
    ("25555550101", "25555550101"),         # 11 digits without the trunk 1: kept whole
    ("anonymous", ""),
])
def test_normalise_keeps_digits_and_drops_only_the_north_american_trunk_prefix(number, digits):
    assert normalise(number) == digits


def test_a_withheld_number_has_no_reference():
    # No reference rather than one that every anonymous caller would share.
    assert CallerHasher(KEY)("anonymous") == ""


NUMBER = "+1 555-555-0123"
# Call-IDs as carriers' equipment writes them, some built from the calling number.
WITH_THE_NUMBER = ["15555550123-8f3a2c@sbc.carrier.example", "+15555550123.1700000000@10.0.0.7",
                   "555-555-0123_a9@gw", "a1b2-5550123-c3", "3210.555.5551.e164.arpa-x"]
WITHOUT_IT = ["a84b4c76e66710@pc33.atlanta.com", "3848276298220188511@atlanta.example.com",
              "0d9f2c1e-7b41-4c55-9a3e-5a0c1d2e3f40", "5555@x", ""]


@pytest.mark.parametrize("call_id", WITH_THE_NUMBER)
def test_a_call_id_built_from_the_callers_number_is_recognised(call_id):
    assert holds_number(call_id, number_tail(NUMBER))


@pytest.mark.parametrize("call_id", WITHOUT_IT)
def test_a_random_call_id_is_not_taken_for_the_number(call_id):
    assert not holds_number(call_id, number_tail(NUMBER))


def test_a_withheld_or_short_number_is_found_nowhere():
    assert number_tail("") == number_tail("anonymous") == number_tail("911") == ""
    assert not holds_number("15555550123@x", number_tail(""))


@pytest.mark.parametrize("call_id", WITH_THE_NUMBER)
def test_a_call_id_carrying_the_number_is_not_kept(call_id):
    assert call_id_unsafe(call_id, number_tail(NUMBER)) == "it carries the caller's number"


@pytest.mark.parametrize("call_id", WITHOUT_IT[:-1])
def test_a_call_id_is_kept_when_the_number_is_known_and_not_in_it(call_id):
    assert call_id_unsafe(call_id, number_tail(NUMBER)) == ""


@pytest.mark.parametrize("withheld", ["anonymous", "", "Restricted", "911234"])
@pytest.mark.parametrize("call_id", [*WITH_THE_NUMBER, *WITHOUT_IT[:-1]])
def test_no_call_id_is_kept_when_the_number_is_withheld_or_too_short_to_compare(call_id, withheld):
    # The network knew the number it withheld from us; the Call-ID may carry it.
    assert call_id_unsafe(call_id, number_tail(withheld)).startswith("the caller's number is withheld")


def test_no_call_id_has_nothing_to_keep_or_refuse():
    assert call_id_unsafe("", number_tail(NUMBER)) == call_id_unsafe("", "") == ""
