"""Interpreter providers: how to dial them and what to key in once they answer.

A provider is reached on a SIP dial string; once it answers, the engine keys
in the account, the PIN and the provider's own code for the language, with
pauses, from a template ("w" is half a second, "W" one second, as Asterisk's
DTMF streaming reads them). Which languages a provider serves, and its code
for each, is configuration, checked against the catalog at start-up.

``parse_dtmf_plan`` turns such a string into steps of digits, each with the
pause before it, for sending a step at a time with ARI's channel DTMF
request (its ``before`` parameter carries the pause) rather than relying on
how a given Asterisk streams w and W inside one request.
"""

from __future__ import annotations

import re
import string
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from ivr.interpreters.catalog import LanguageCatalog, UnknownLanguage

Digits = Annotated[str, Field(pattern=r"^[0-9]+$")]
_PLACEHOLDERS = {"account", "pin", "code"}
_DTMF = re.compile(r"^[0-9*#wW]*$")
_KEYS = frozenset("0123456789*#")
# Seconds, as Asterisk's SendDTMF reads them.
PAUSE_S = {"w": 0.5, "W": 1.0}


class InterpreterConfigError(ValueError):
    """A provider or feature-code setting is unusable; the message names the key."""


def _template(value: str, allowed: set[str], required: set[str]) -> str:
    parts = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)
             if name is not None]
    fields = {name for name, _, _ in parts}
    if fields - allowed:
        raise ValueError(f"unknown placeholders {sorted(fields - allowed)}; allowed: {sorted(allowed)}")
    if required - fields:
        raise ValueError(f"must contain {sorted('{' + name + '}' for name in required - fields)}")
    # "{code:.1}" would key in a truncated code that still looks like DTMF.
    if any(spec or conversion for _, spec, conversion in parts):
        raise ValueError("placeholders take no format spec or conversion")
    if not _DTMF.match(value.format(**{name: "0" for name in allowed})):
        raise ValueError("only digits, *, #, w and W may be keyed in")
    return value


class ProviderSettings(BaseModel):
    # A mistyped PIN is still nearly the PIN: keep inputs out of error text and logs.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: Annotated[str, Field(min_length=1)]  # in logs and metrics; unique across providers
    dial_string: Annotated[str, Field(min_length=1)]  # e.g. "PJSIP/18005551234@carrier"
    account: Digits
    pin: SecretStr
    language_dtmf: str = "ww{account}#ww{pin}#ww{code}#"
    operator_dtmf: str = "ww{account}#ww{pin}#"  # the operator finds the language
    connect_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    languages: dict[str, Digits] = {}

    @field_validator("pin")
    @classmethod
    def _digits(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().isdigit():
            raise ValueError("must be digits")
        return value

    @field_validator("language_dtmf")
    @classmethod
    def _language_template(cls, value: str) -> str:
        return _template(value, _PLACEHOLDERS, required={"code"})

    @field_validator("operator_dtmf")
    @classmethod
    def _operator_template(cls, value: str) -> str:
        return _template(value, _PLACEHOLDERS - {"code"}, required=set())


class InterpreterSettings(BaseModel):
    # The outer model's config decides what its errors show, nested PINs included.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    # The primary provider and, optionally, a second one tried when it fails.
    providers: Annotated[tuple[ProviderSettings, ...], Field(max_length=2)] = ()
    # The published list advocates dial on their phone after the star key.
    feature_codes: dict[Annotated[str, Field(pattern=r"^[1-9][0-9]?$")], str] = {}


def validate_interpreters(settings: InterpreterSettings, catalog: LanguageCatalog) -> InterpreterSettings:
    """The settings with every code as ISO 639-3; InterpreterConfigError naming the key otherwise."""
    providers = []
    names: dict[str, int] = {}
    for i, provider in enumerate(settings.providers):
        # Logs and the failure metrics tell providers apart by name only.
        if provider.name in names:
            raise InterpreterConfigError(f"interpreters.providers[{i}].name: {provider.name!r} is already "
                                         f"the name of interpreters.providers[{names[provider.name]}]")
        names[provider.name] = i
        languages = {}
        key = f"interpreters.providers[{i}].languages"
        for code, theirs in provider.languages.items():
            language = _code(catalog, code, key)
            # "vi" and "vie" both given: which provider code wins would be an accident.
            if language in languages:
                raise InterpreterConfigError(f"{key}: {code!r} is {language!r}, which is already listed")
            languages[language] = theirs
        providers.append(provider.model_copy(update={"languages": languages}))
    codes = {}
    for digits, code in settings.feature_codes.items():
        key = f"interpreters.feature_codes[{digits!r}]"
        language = _code(catalog, code, key)
        if not any(language in p.languages for p in providers):
            raise InterpreterConfigError(f"{key}: {language!r} is not served by any provider")
        codes[digits] = language
    return settings.model_copy(update={"providers": tuple(providers), "feature_codes": codes})


def _code(catalog: LanguageCatalog, code: str, key: str) -> str:
    try:
        return catalog.get(code).code
    except UnknownLanguage:
        raise InterpreterConfigError(f"{key}: {code!r} is not a language in the catalog") from None


def serves(provider: ProviderSettings, language: str) -> bool:
    """Whether the provider has a code for ``language`` (ISO 639-3, as after validation)."""
    return language in provider.languages


def dtmf_for(provider: ProviderSettings, language: str | None) -> str:
    """What to key in once the provider answers (``None``: ask for the operator)."""
    pin = provider.pin.get_secret_value()
    if language is None:
        return provider.operator_dtmf.format(account=provider.account, pin=pin)
    if language not in provider.languages:
        raise ValueError(f"provider {provider.name!r} has no code for {language!r}; check serves() first")
    return provider.language_dtmf.format(account=provider.account, pin=pin, code=provider.languages[language])


def parse_dtmf_plan(dtmf: str) -> list[tuple[str, float]]:
    """Split ``dtmf`` into ``(digits, pause_before_s)`` steps, in order.

    Each run of keys is one step, with the w/W pauses just before it summed
    ("ww1234#W9#" -> [("1234#", 1.0), ("9#", 1.0)]). A pause at the very end
    becomes a last step with no digits: wait, send nothing (ARI refuses an
    empty ``dtmf``). Joining the digits gives the keys of ``dtmf`` in order,
    and the pauses add up to 0.5 s per w and 1 s per W.
    """
    steps: list[tuple[str, float]] = []
    digits, pause, before = "", 0.0, 0.0
    for position, char in enumerate(dtmf):
        if char in PAUSE_S:
            if digits:
                steps.append((digits, before))
                digits = ""
            pause += PAUSE_S[char]
        elif char in _KEYS:
            if not digits:
                before, pause = pause, 0.0
            digits += char
        else:
            # Position and character only: the string holds the PIN.
            raise ValueError(f"DTMF character {position}: {char!r} is not a digit, *, #, w or W")
    if digits:
        steps.append((digits, before))
    if pause:
        steps.append(("", pause))
    return steps
