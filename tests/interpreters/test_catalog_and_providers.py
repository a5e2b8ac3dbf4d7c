"""The language catalog and the interpreter providers' settings (pure)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.interpreters.catalog import NATIVE_NAMES, LanguageCatalog, UnknownLanguage
from ivr.interpreters.provider import (InterpreterConfigError, InterpreterSettings, ProviderSettings, dtmf_for,
                                       parse_dtmf_plan, serves, validate_interpreters)
from ivr.interpreting import Attempt, attempt_plan, keying_seconds

CATALOG = LanguageCatalog.load()
CODES = sorted(language.code for language in CATALOG)


def provider(languages: dict[str, str], **extra) -> ProviderSettings:
    fields = {"name": "p", "dial_string": "PJSIP/1800@carrier", "account": "4321", "pin": "9876", **extra}
    return ProviderSettings(languages=languages, **fields)


def test_the_catalog_has_hundreds_of_languages_by_iso_639_3_code():
    assert len(CATALOG) >= 200
    assert all(re.fullmatch(r"[a-z]{3}", code) for code in CODES)


def test_two_letter_codes_map_to_three_letter_ones():
    assert CATALOG.get("vi") == CATALOG.get("vie")
    assert CATALOG.get("ES").native == "Español"


def test_the_languages_a_us_hotline_needs_most_are_there_with_native_names():
    assert CATALOG.get("spa").native == "Español"
    assert CATALOG.get("vie").native == "Tiếng Việt"
    assert CATALOG.get("zh").code == "zho"  # the macrolanguage, as providers quote it


def test_the_catalog_lists_living_languages_sorted_by_english_name():
    names = [language.name for language in CATALOG]
    assert names == sorted(names)
    assert "san" not in CATALOG and "lat" not in CATALOG  # historical and ancient


def test_mayan_languages_of_guatemala_are_there():
    assert CATALOG.get("mam").name == "Mam"
    assert CATALOG.get("quc").name == "K'iche'"
    assert CATALOG.get("kjb").native == "Q'anjob'al"


def test_every_hand_kept_native_name_belongs_to_a_language_in_the_catalog():
    # A typo in the one hand-kept table would otherwise just lose a native name.
    assert all(CATALOG.get(code).native == native for code, native in NATIVE_NAMES.items())
    assert CATALOG.get("ht").native == "Kreyòl ayisyen" and CATALOG.get("ko").native == "한국어"


def test_macrolanguages_providers_quote_are_there_under_plain_names():
    assert [CATALOG.get(code).name for code in ("ar", "zh", "fa", "sw", "ms", "qu", "hmn", "sq")] == [
        "Arabic", "Chinese", "Persian", "Swahili", "Malay", "Quechua", "Hmong", "Albanian"]
    names = [language.name for language in CATALOG]
    assert len(names) == len(set(names))  # "Swahili (individual language)" keeps its qualifier


def test_an_unknown_code_says_what_is_wrong():
    with pytest.raises(UnknownLanguage, match="'xx' is not an ISO 639-3"):
        CATALOG.get("xx")


def test_dtmf_for_a_language_and_for_the_operator():
    p = provider({"vie": "22"})
    assert dtmf_for(p, "vie") == "ww4321#ww9876#ww22#"
    assert dtmf_for(p, None) == "ww4321#ww9876#"
    assert "9876" not in repr(p)
    assert "9876" not in repr(InterpreterSettings(providers=(p,))) and "9876" not in p.model_dump_json()


def test_a_provider_needs_a_name_and_a_dial_string():
    with pytest.raises(ValueError, match="dial_string"):
        provider({}, dial_string="")
    with pytest.raises(ValueError, match="name"):
        provider({}, name="")


def test_two_providers_with_one_name_are_refused_naming_the_key():
    settings = InterpreterSettings(providers=(provider({}), provider({})))
    with pytest.raises(InterpreterConfigError,
                       match=r"interpreters.providers\[1\].name: 'p' is already the name of interpreters.providers\[0\]"):
        validate_interpreters(settings, CATALOG)


def test_a_template_may_key_in_only_dtmf():
    with pytest.raises(ValueError, match="only digits"):
        provider({}, language_dtmf="{account}x{code}")
    with pytest.raises(ValueError, match="unknown placeholders"):
        provider({}, language_dtmf="{account}{secret}")


def test_a_template_takes_no_format_spec_and_the_language_template_needs_the_code():
    with pytest.raises(ValueError, match="no format spec"):
        provider({}, language_dtmf="ww{account}#ww{pin}#ww{code:.1}#")
    with pytest.raises(ValueError, match="must contain"):
        provider({}, language_dtmf="ww{account}#ww{pin}#")


def test_a_pin_that_is_not_digits_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="must be digits") as raised:
        provider({}, pin="12ab")
    assert "12ab" not in str(raised.value)
    fields = {"name": "p", "dial_string": "PJSIP/1800@carrier", "account": "4321", "pin": "12ab"}
    with pytest.raises(ValueError, match="must be digits") as raised:
        InterpreterSettings(providers=(fields,))
    assert "12ab" not in str(raised.value)


def test_serves_and_dtmf_for_only_know_the_providers_languages():
    p = provider({"spa": "11"})
    assert serves(p, "spa") and not serves(p, "vie")
    with pytest.raises(ValueError, match="no code for 'vie'"):
        dtmf_for(p, "vie")


def test_the_same_language_twice_is_refused_naming_the_key():
    with pytest.raises(InterpreterConfigError,
                       match=r"interpreters.providers\[0\].languages: 'vie' is 'vie', which is already listed"):
        validate_interpreters(InterpreterSettings(providers=(provider({"vi": "1", "vie": "2"}),)), CATALOG)


def test_two_letter_codes_are_normalised_everywhere():
    settings = InterpreterSettings(providers=(provider({"es": "11"}),), feature_codes={"1": "ES"})
    checked = validate_interpreters(settings, CATALOG)
    assert checked.providers[0].languages == {"spa": "11"} and checked.feature_codes == {"1": "spa"}


def test_unknown_provider_language_is_refused_naming_the_key():
    with pytest.raises(InterpreterConfigError,
                       match=r"interpreters.providers\[0\].languages: 'klingon' is not a language"):
        validate_interpreters(InterpreterSettings(providers=(provider({"klingon": "1"}),)), CATALOG)


def test_a_feature_code_for_a_language_nobody_serves_is_refused():
    settings = InterpreterSettings(providers=(provider({"spa": "11"}),), feature_codes={"2": "vie"})
    with pytest.raises(InterpreterConfigError, match=r"feature_codes\['2'\]: 'vie' is not served"):
        validate_interpreters(settings, CATALOG)


def test_retries_then_the_second_provider():
    first, second = provider({}, retries=1), provider({}, retries=0, name="second")
    assert attempt_plan((first, second), None) == (Attempt(first, 1), Attempt(first, 2), Attempt(second, 1))


def test_a_language_is_asked_only_of_the_providers_that_serve_it():
    # The second has no code to key in for Mam: dialled, it would answer to nobody.
    first, second = provider({"mam": "5", "spa": "11"}, retries=0), provider({"spa": "1"}, retries=0, name="second")
    assert attempt_plan((first, second), "mam") == (Attempt(first, 1),)
    assert attempt_plan((first, second), "spa") == (Attempt(first, 1), Attempt(second, 1))


@settings(max_examples=50)
@given(st.dictionaries(st.sampled_from(CODES), st.text(alphabet="0123456789", min_size=1, max_size=4),
                       min_size=1, max_size=20))
def test_any_catalog_codes_validate_and_key_in_only_dtmf(languages):
    checked = validate_interpreters(InterpreterSettings(providers=(provider(languages),)), CATALOG)
    for code, theirs in checked.providers[0].languages.items():
        dtmf = dtmf_for(checked.providers[0], code)
        assert re.fullmatch(r"[0-9*#wW]+", dtmf) and dtmf.endswith(f"{theirs}#")
        assert theirs in [digits.rstrip("#") for digits, _ in parse_dtmf_plan(dtmf)]
        assert keying_seconds(dtmf) > 0


@settings(max_examples=50)
@given(st.dictionaries(st.sampled_from(CODES), st.text(alphabet="0123456789", min_size=1, max_size=4),
                       min_size=1, max_size=20).flatmap(
    lambda languages: st.tuples(st.just(languages),
                                st.dictionaries(st.integers(1, 99).map(str), st.sampled_from(sorted(languages)),
                                                max_size=10))))
def test_feature_codes_for_served_languages_validate(languages_and_codes):
    languages, codes = languages_and_codes
    checked = validate_interpreters(
        InterpreterSettings(providers=(provider(languages),), feature_codes=codes), CATALOG)
    assert checked.feature_codes == codes


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=3).filter(lambda c: c not in CATALOG))
def test_codes_outside_the_catalog_always_fail_naming_the_key(code):
    with pytest.raises(InterpreterConfigError, match=r"interpreters.providers\[0\].languages"):
        validate_interpreters(InterpreterSettings(providers=(provider({code: "1"}),)), CATALOG)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=3).filter(lambda c: c not in CATALOG))
def test_feature_codes_outside_the_catalog_always_fail_naming_the_key(code):
    settings = InterpreterSettings(providers=(provider({"spa": "11"}),), feature_codes={"4": code})
    with pytest.raises(InterpreterConfigError, match=rf"interpreters.feature_codes\['4'\]: '{code}' is not a language"):
        validate_interpreters(settings, CATALOG)
