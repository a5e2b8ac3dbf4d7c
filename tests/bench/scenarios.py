"""The three call scenarios, run the same way against either side (tests/bench/sides.py).

Clocks: a ring is the moment the advocate's phone sees the INVITE (the
StasisStart of its channel on the simulated PSTN side), and a caller's
arrival the creation of the caller's channel there, just before its INVITE
leaves for the hotline; both are Asterisk's own timestamps, so the phones
app's delays under load do not count. "Available" is this process's clock
just before the request that frees the advocate. One machine, one clock.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ivr.ari.rest import AriRest
from ivr.sandbox.phones_client import PhonesClient

from tests.e2e.conftest import eventually

from .procstat import cpu_seconds
from .sandbox_state import no_channels
from .sides import Advocate

# app_queue re-checks a waiting caller once a second (RECHECK): an advocate
# freed at a fixed time after the caller joined would always meet the same
# phase of that timer. The bench frees them after a random wait in this range.
FREE_AFTER_S = (0.2, 1.2)


def ringing_at(numbers: set[str]):
    return lambda e: e["kind"] == "ringing" and e["direction"] == "in" and e["number"] in numbers


async def available_to_ring(side, phones: PhonesClient, ari: AriRest, advocate: Advocate, runs: int,
                            rng: random.Random) -> list[float]:
    """Scenario 1: one caller waits; the advocate becomes available; seconds until their phone rings."""
    await side.staff([], among=[advocate])
    latencies = []
    for i in range(runs):
        await phones.mark()
        call = await phones.place_call(f"+1555010{i:04d}", side.did)
        await eventually(side.waiting, 20, f"{side.name}: the caller waiting")
        await asyncio.sleep(rng.uniform(*FREE_AFTER_S))  # see FREE_AFTER_S: part of the measurement
        started = time.time()
        await side.make_available(advocate)
        ring = await phones.wait_for(ringing_at({advocate.number}), 15, what=f"{side.name}: advocate's ring")
        latencies.append(ring["asterisk_time"] - started)
        await _hang_up(phones, ari, [call["id"]])
        await side.staff([], among=[advocate])
    return latencies


@dataclass
class Arrivals:
    latencies_s: list[float] = field(default_factory=list)  # of the calls that rang their advocate
    placed: int = 0

    def __add__(self, other: Arrivals) -> Arrivals:
        return Arrivals(self.latencies_s + other.latencies_s, self.placed + other.placed)


async def arrival_to_ring(side, phones: PhonesClient, ari: AriRest, advocates: Sequence[Advocate],
                          callers: int, rounds: int, ring_s: float) -> Arrivals:
    """Scenario 2: `callers` calls arrive at once, as many advocates are free; each call's
    seconds from arrival to its advocate's ring. A call that rings no advocate within
    `ring_s` (the ring timeout, after which it would be offered again) counts as placed only."""
    staffed = list(advocates[:callers])
    numbers = {a.number for a in staffed}
    result = Arrivals()
    for r in range(rounds):
        await side.staff(staffed)
        await phones.mark()
        calls = await asyncio.gather(*(phones.place_call(f"+1555{r:03d}{i:04d}", side.did)
                                       for i in range(callers)))
        result.placed += callers
        try:
            rings = await phones.wait_for_count(ringing_at(numbers), callers, ring_s * 0.75,
                                                what=f"{side.name}: advocates' rings")
        except TimeoutError:
            rings = [e for e in phones.seen if ringing_at(numbers)(e)]

        async def traced() -> list[tuple[dict, dict]] | None:
            # A caller's phone learns its SIP Call-ID as the hotline answers, and the
            # engine records how to find a call by it just after ringing: both may lag the ring.
            records = await asyncio.gather(*(phones.call(c["id"]) for c in calls))
            pairs = await side.pair(records, rings)
            return pairs if len(pairs) == len(rings) else None

        try:
            pairs = await eventually(traced, 10, f"{side.name}: every ring traced back to its caller")
        except TimeoutError:
            # A ring of none of this round's callers: a late one of the previous
            # side or round. Not counted; the calls it kept from ringing count as placed only.
            records = await asyncio.gather(*(phones.call(c["id"]) for c in calls))
            pairs = await side.pair(records, rings)
            print(f"{side.name}, {callers} callers: {len(rings) - len(pairs)} of {len(rings)} rings "
                  f"not traced to this round's callers; left out", file=sys.stderr)
        result.latencies_s += [ring["asterisk_time"] - caller["created_at"] for caller, ring in pairs]
        await _hang_up(phones, ari, [c["id"] for c in calls])
    await side.settle()
    return result


@dataclass(frozen=True)
class CpuUse:
    answered: int
    cpu_s: dict[str, float]  # process name -> CPU seconds during the calls

    def per_call(self, names: Sequence[str]) -> float:
        return sum(self.cpu_s[n] for n in names) / self.answered if self.answered else float("nan")


async def cpu_per_answered_call(side, phones: PhonesClient, ari: AriRest, advocates: Sequence[Advocate],
                                callers: int, talk_s: float, pids: dict[str, int]) -> CpuUse:
    """Scenario 3: `callers` calls arrive together, each is answered and talks `talk_s`;
    the CPU time of `pids` from the first INVITE until the last channel is gone."""
    staffed = list(advocates[:callers])
    numbers = {a.number for a in staffed}
    await asyncio.gather(*(phones.script(n, answer_after_s=0.5) for n in numbers))
    await side.staff(staffed)
    await eventually(lambda: no_channels(ari), 30, "no channel left before the CPU window")
    await phones.mark()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    calls = await asyncio.gather(*(phones.place_call(f"+1555900{i:04d}", side.did, hangup_after_s=talk_s + 1)
                                   for i in range(callers)))
    ids = {c["id"] for c in calls}
    await phones.wait_for_count(lambda e: e["kind"] == "ended" and e["call"] in ids, callers, 60 + talk_s,
                                what=f"{side.name}: callers hung up")
    await eventually(lambda: no_channels(ari), 30, f"{side.name}: every channel gone")
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    answered = [e for e in phones.seen if e["kind"] == "answered" and e["direction"] == "in"
                and e["number"] in numbers]
    await asyncio.gather(*(phones.script(n, never_answer=True) for n in numbers))
    return CpuUse(len(answered), {name: after[name] - before[name] for name in pids})


async def _hang_up(phones: PhonesClient, ari: AriRest, call_ids: list[str]) -> None:
    """The callers hang up; done when every channel is gone, the advocates' too:
    app_queue rings a phone only once it is idle again."""
    await asyncio.gather(*(phones.hangup(c) for c in call_ids))
    await phones.wait_for_count(lambda e: e["kind"] == "ended" and e["call"] in call_ids, len(call_ids), 30,
                                what="callers gone")
    await eventually(lambda: no_channels(ari), 30, "every channel gone")

