"""What became of each simulated caller, and the report. Pure, no I/O.

A caller's outcome, judged from the caller's side (the phones app's events
and what Asterisk shows), never from the engine's own account:

- answered: was seen in a call bridge with an advocate (or supervisor);
- backup: reached the backup call centre (the dialplan fallback);
- abandoned: hung up before either, as impatient callers do;
- cut: their call died with Asterisk (a restart or crash fault): nothing
  above Asterisk can keep such a call, and it is counted apart;
- lost: anything else. A call that ended without the caller reaching an
  advocate or the backup and without the caller hanging up, or a caller
  still waiting unserved when the run ended (stranded). Calls left in Redis
  in play with no channel behind them are counted as lost too, apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OUTCOMES = ("answered", "backup", "abandoned", "cut", "lost")


@dataclass
class CallerRecord:
    number: str
    menu: str
    placed_at: float
    abandoner: bool
    patience_s: float
    phone_call: str = ""  # the phones app's id of the caller's call
    hotline_answered_at: float | None = None
    connected_at: float | None = None  # first seen bridged with an advocate
    last_bridged_at: float | None = None
    backup_call: str = ""  # the backup centre's call carrying this caller
    backup_answered_at: float | None = None
    hung_up_at: float | None = None  # the caller hung up (impatient, or after the advocate left)
    ended_at: float | None = None
    end_cause: str = ""

    @property
    def served(self) -> bool:
        return self.connected_at is not None or self.backup_answered_at is not None


@dataclass(frozen=True)
class Window:
    """When Asterisk was going down and coming back."""

    start: float
    end: float


def outcome(record: CallerRecord, asterisk_down: list[Window], grace_s: float = 3.0) -> str:
    if record.connected_at is not None:
        return "answered"
    if record.backup_answered_at is not None:
        return "backup"
    if record.hung_up_at is not None and (record.ended_at is None or record.hung_up_at <= record.ended_at):
        return "abandoned"
    if record.ended_at is not None and any(w.start <= record.ended_at <= w.end + grace_s for w in asterisk_down):
        return "cut"
    return "lost"


@dataclass
class Report:
    plan: dict[str, object]
    outcomes: dict[str, int]
    placed: int
    placement_failures: int
    stranded: int  # lost callers still up when the run ended
    redis_orphans: int  # calls in play in Redis with no channel, after the run
    stuck_advocates: list[str]  # ringing or on a call with no such call alive, after the run
    wait_to_answer_s: dict[str, float]  # placed -> bridged with an advocate: median, p95, max
    engine: list[dict[str, object]]  # per engine process: pid, RSS at start and end, its counters
    faults: list[dict[str, object]]  # injected: kind, at, how long it took
    machine: dict[str, object]  # cores, load averages at start and end
    duration_s: float
    lost_callers: list[dict[str, object]] = field(default_factory=list)  # what each lost caller went through

    @property
    def lost(self) -> int:
        return self.outcomes.get("lost", 0) + self.redis_orphans

    def ok(self) -> bool:
        return self.lost == 0 and not self.stuck_advocates

    def lines(self) -> list[str]:
        o = self.outcomes
        out = [f"load run: {self.placed} calls placed in {self.plan['duration_s']:.0f} s, "
               f"{self.plan['callers']} callers at once, {self.plan['advocates']} advocates; "
               f"run over after {self.duration_s:.0f} s",
               f"  answered by an advocate {o.get('answered', 0)}, backup destination {o.get('backup', 0)}, "
               f"abandoned {o.get('abandoned', 0)}, cut by an Asterisk restart {o.get('cut', 0)}",
               f"  LOST {self.lost} (callers {o.get('lost', 0)}, of whom {self.stranded} still waiting at the end; "
               f"calls left in Redis without a channel {self.redis_orphans})",
               f"  advocates stuck ringing or on a call: {', '.join(self.stuck_advocates) or 'none'}"]
        if self.placement_failures:
            out.append(f"  calls the simulated PSTN could not place: {self.placement_failures}")
        if self.wait_to_answer_s:
            w = self.wait_to_answer_s
            out.append(f"  placed to answered (menu, queue, ring): median {w['median']:.1f} s, "
                       f"p95 {w['p95']:.1f} s, max {w['max']:.1f} s")
        for e in self.engine:
            out.append(f"  engine pid {e['pid']}: RSS {e['rss_start_mb']:.1f} MB at start, "
                       f"{e['rss_end_mb']:.1f} MB at end{' (killed)' if e.get('killed') else ''}; "
                       f"calls received {e.get('received', 0):.0f}, answered {e.get('answered', 0):.0f}, "
                       f"to the fallback {e.get('fallbacks', 0):.0f}")
        for f in self.faults:
            out.append(f"  fault {f['kind']} at {f['at_s']:.0f} s, took {f['took_s']:.1f} s")
        m = self.machine
        out.append(f"  machine: {m['cores']} cores, load average {m['load_start']} at start, {m['load_end']} at end")
        return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return {"median": at(0.5), "p95": at(0.95), "max": ordered[-1]}


def timeline(record: CallerRecord) -> dict[str, object]:
    """A caller's story for the report, in seconds after the call was placed (no number)."""
    def since(t: float | None) -> float | None:
        return None if t is None else round(t - record.placed_at, 2)
    return {"call": record.phone_call, "menu": record.menu, "hotline_answered": since(record.hotline_answered_at),
            "bridged": since(record.connected_at), "backup": since(record.backup_answered_at),
            "hung_up": since(record.hung_up_at), "ended": since(record.ended_at), "cause": record.end_cause}
