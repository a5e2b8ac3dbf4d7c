"""Loading the Lua scripts of ``routing/lua``.

Each script is one atomic decision. The shared pieces live in two libraries,
``keys.lib.lua`` (key builders) and ``match.lib.lua`` (the matching loop and
its helpers); they hold only ``local function`` definitions and are
prepended, in that order, to every script when it is loaded. Redis reports
Lua errors with line numbers of the combined text, so subtract the library
lines (``library_line_count()``) to find the line in the script file.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_LIBRARIES = ("keys.lib.lua", "match.lib.lua")


def _read(name: str) -> str:
    return (files("routing") / "lua" / name).read_text(encoding="utf-8")


def _libraries() -> str:
    return "".join(_read(name) for name in _LIBRARIES)


def library_line_count() -> int:
    return _libraries().count("\n")


def script_source(name: str) -> str:
    """Full text sent to Redis for the script ``lua/<name>.lua``."""
    return _libraries() + _read(f"{name}.lua")


@dataclass(frozen=True)
class Scripts:
    upsert_advocate: AsyncScript
    remove_advocate: AsyncScript
    set_state: AsyncScript
    enqueue: AsyncScript
    offer_answered: AsyncScript
    offer_failed: AsyncScript
    offer_cancelled: AsyncScript
    abandon: AsyncScript
    call_ended: AsyncScript
    update_call: AsyncScript
    move_queue: AsyncScript
    escalate: AsyncScript
    escalation_settled: AsyncScript
    end_wrap_up: AsyncScript
    adopt_call: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        # register_script only computes the SHA; the first call sends the
        # body (EVALSHA falls back to EVAL on NOSCRIPT, e.g. after a restart).
        return cls(**{
            name: redis.register_script(script_source(name))
            for name in cls.__dataclass_fields__
        })
