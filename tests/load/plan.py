"""What a load run does: callers, advocates, faults. Pure values, no I/O."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field

FAULT_KINDS = {
    "kill-engine": "SIGKILL the engine, start it again after FOR seconds (default 3)",
    "restart-redis": "stop and start the sandbox's redis-server (no persistence: its data is gone)",
    "redis-down": "stop the sandbox's redis-server for FOR seconds (default 10), then start it",
    "restart-asterisk": "stop Asterisk (SIGTERM) and start it again: every call in it ends",
    "crash-asterisk": "SIGKILL Asterisk and start it again: every call in it ends, unannounced",
    "drop-ari": "cut the engine's ARI WebSockets (events, requests) and refuse them for FOR seconds (default 2)",
}
DEFAULT_FOR_S = {"kill-engine": 3.0, "redis-down": 10.0, "drop-ari": 2.0}


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float  # seconds after the first call
    for_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Fault:
        """KIND@AT or KIND@AT:FOR, e.g. kill-engine@30:3."""
        kind, _, when = text.partition("@")
        if kind not in FAULT_KINDS or not when:
            raise ValueError(f"fault {text!r}: expected KIND@AT[:FOR] with KIND one of {', '.join(FAULT_KINDS)}")
        at, _, length = when.partition(":")
        return cls(kind, float(at), float(length) if length else DEFAULT_FOR_S.get(kind, 0.0))


@dataclass(frozen=True)
class Advocate:
    id: str
    phone: str  # number on the sandbox's PSTN side
    token: str
    skills: tuple[str, ...]
    supervisor: bool = False

    def settings(self) -> dict[str, object]:
        """As an [[advocates]] entry of the engine's settings."""
        return {"id": self.id, "name": f"Load advocate {self.id}", "endpoint": f"PJSIP/{self.phone}@carrier",
                "skills": list(self.skills),
                "roles": ["advocate", "supervisor"] if self.supervisor else ["advocate"],
                "token_sha256": hashlib.sha256(self.token.encode()).hexdigest()}


def roster(n: int) -> list[Advocate]:
    """`n` advocates: all speak English, a third Spanish too, one in six relay;
    the first is a supervisor (the load tool reads the roster with its token)."""
    advocates = []
    for i in range(n):
        skills = ["en"] + (["es"] if i % 3 == 0 else []) + (["relay"] if i % 6 == 1 else []) + \
            (["crisis"] if i % 4 == 0 else [])
        advocates.append(Advocate(f"load{i + 1:03d}", str(2001 + i), f"load-token-{i + 1:03d}", tuple(skills),
                                  supervisor=i == 0))
    return advocates


def roster_env(advocates: list[Advocate]) -> str:
    """HOTLINE_ADVOCATES: the roster replaces the settings file's."""
    return json.dumps([a.settings() for a in advocates])


# What callers press: English tips mostly, some crisis calls, some Spanish.
MENU_CHOICES = (("12", 0.75), ("11", 0.10), ("22", 0.15))


@dataclass(frozen=True)
class LoadPlan:
    callers: int = 20  # simulated callers in the line at once
    duration_s: float = 60.0  # new calls are placed for this long
    advocates: int = 20
    drain_s: float = 120.0  # after that, how long calls in progress may take to finish
    ramp_per_s: float = 5.0  # new calls per second at most
    abandon_rate: float = 0.15  # callers who hang up if not served within their patience
    patience_s: tuple[float, float] = (15.0, 90.0)
    answer_s: tuple[float, float] = (1.0, 4.0)  # advocates answer after...
    talk_s: tuple[float, float] = (5.0, 20.0)  # ...and hang up after
    miss_rate: float = 0.03  # rings an advocate lets go unanswered (they go away, then come back)
    break_s: tuple[float, float] = (5.0, 15.0)  # how long an advocate who went away stays away
    backup_talk_s: float = 5.0  # the backup call centre hangs up after
    wrap_up_s: float = 2.0
    faults: tuple[Fault, ...] = ()
    seed: int = 1
    prefix: str = "hlload:"
    instance_id: str = "load-engine"
    first_caller: int = 7_000_000  # callers are +1555 followed by seven digits from here
    extra: dict[str, str] = field(default_factory=dict)  # more HOTLINE_* for the engine

    def caller_number(self, n: int) -> str:
        return f"+1555{self.first_caller + n:07d}"

    def menu_choice(self, rng: random.Random) -> str:
        pick = rng.random()
        for digits, share in MENU_CHOICES:
            if pick < share:
                return digits
            pick -= share
        return MENU_CHOICES[0][0]
