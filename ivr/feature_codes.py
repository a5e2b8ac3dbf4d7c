"""Feature codes an advocate dials on their phone during a call.

``*`` then a number from the hotline's published list adds an interpreter
for that language (``*2``: Vietnamese, say); ``*0`` removes the interpreter.
Pure: the call actor feeds the advocate leg's DTMF in and acts on what comes
out. A star starts a new code at any time, so a mistyped code is fixed by
dialling the star again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

REMOVE_CODE = "0"


@dataclass(frozen=True)
class AddInterpreter:
    language: str


@dataclass(frozen=True)
class RemoveInterpreter:
    pass


@dataclass(frozen=True)
class Unknown:
    code: str


Outcome = AddInterpreter | RemoveInterpreter | Unknown


class FeatureCodes:
    def __init__(self, codes: Mapping[str, str]) -> None:
        if REMOVE_CODE in codes:
            raise ValueError(f"feature code {REMOVE_CODE!r} is reserved for removing the interpreter")
        self._codes = dict(codes)
        self._longest = max((len(c) for c in self._codes), default=1)
        self._typed: str | None = None  # None: no star dialled

    @property
    def collecting(self) -> bool:
        return self._typed is not None

    def digit(self, d: str) -> Outcome | None:
        """Feed one DTMF digit; an outcome once a code is complete."""
        if d == "*":
            self._typed = ""
            return None
        if self._typed is None:
            return None  # ordinary digits: the advocate talking to an automated system
        self._typed += d
        typed = self._typed
        if typed == REMOVE_CODE:
            self._typed = None
            return RemoveInterpreter()
        if typed in self._codes and not any(c != typed and c.startswith(typed) for c in self._codes):
            self._typed = None
            return AddInterpreter(self._codes[typed])
        if len(typed) >= self._longest or not any(c.startswith(typed) for c in self._codes):
            self._typed = None
            return Unknown(typed)
        return None

    def timed_out(self) -> Outcome | None:
        """The advocate stopped dialling: take a complete code that prefixes a longer one."""
        typed, self._typed = self._typed, None
        if typed is None or typed == "":
            return None
        return AddInterpreter(self._codes[typed]) if typed in self._codes else Unknown(typed)
