"""The bench's one table, and its plot of the latency distributions."""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from .matcher import CLIENTS, MatcherResult, TrivialResult
from .procstat import Memory
from .scenarios import Arrivals, CpuUse
from .stats import Summary

SIDES = ("engine", "app_queue")
TARGET_RING_P99_MS = 50
TARGET_ARRIVAL_RATIO = 1.2
TARGET_CPU_RATIO = 1.5
TARGET_DECISIONS_PER_S = 10_000
TARGET_DECISION_P99_MS = 2
TARGET_TRIVIAL_SHARE = 0.5


@dataclass
class SideResults:
    available_to_ring_s: list[float] = field(default_factory=list)
    arrivals: dict[int, Arrivals] = field(default_factory=dict)  # by concurrent callers
    cpu: CpuUse | None = None


@dataclass
class Results:
    date: str
    load_at_start: float
    sides: dict[str, SideResults]
    cpu_processes: dict[str, tuple[str, ...]]  # side -> processes counted per answered call
    engine_memory: Memory | None = None
    matcher: MatcherResult | None = None
    trivial: TrivialResult | None = None
    redis_us_per_script: float | None = None
    matcher_clients: int = 0


def machine() -> str:
    """CPUs, memory and how busy the machine was: the figures mean little without it."""
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {mem_gib:.0f} GiB"


def load_average() -> float:
    return os.getloadavg()[0]


def _ms(values: list[float]) -> Summary:
    return Summary.of(v * 1000 for v in values)


def _ratio(engine: float, app_queue: float) -> str:
    return f"{engine / app_queue:.2f}" if app_queue and not math.isnan(app_queue) else "-"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(results: Results) -> str:
    e, q = results.sides["engine"], results.sides["app_queue"]
    lines = [f"issue 7 bench, {results.date}, {machine()}, load average {results.load_at_start:.1f} "
             f"at the start and {load_average():.1f} at the end",
             f"{'':44}{'engine':>11}{'app_queue':>11}{'ratio':>8}   target"]

    def row(label: str, a: float, b: float, unit: str, target: str = "") -> None:
        lines.append(f"{label:44}{_cell(a, unit)}{_cell(b, unit)}{_ratio(a, b):>8}   {target}")

    s1e, s1q = _ms(e.available_to_ring_s), _ms(q.available_to_ring_s)
    if s1e.n:
        lines.append(f"1. advocate available -> ring ({s1e.n} and {s1q.n} runs)")
        row("     median", s1e.median, s1q.median, "ms")
        row("     p95", s1e.p95, s1q.p95, "ms")
        row("     p99", s1e.p99, s1q.p99, "ms",
            f"engine p99 < {TARGET_RING_P99_MS} ms: {_verdict(s1e.p99 < TARGET_RING_P99_MS)}")
        row("     worst", s1e.worst, s1q.worst, "ms")
    if e.arrivals:
        lines.append("2. call arrives -> advocate rings (calls that rang / calls placed)")
    for callers in sorted(e.arrivals):
        ea, qa = e.arrivals[callers], q.arrivals.get(callers, Arrivals())
        a, b = _ms(ea.latencies_s), _ms(qa.latencies_s)
        ok = a.median <= TARGET_ARRIVAL_RATIO * b.median and a.n == ea.placed
        row(f"     {callers} concurrent median", a.median, b.median, "ms",
            f"ratio <= {TARGET_ARRIVAL_RATIO}: {_verdict(ok)}")
        row(f"     {callers} concurrent p95", a.p95, b.p95, "ms")
        lines.append(f"{f'     {callers} concurrent: calls that rang':44}{f'{a.n}/{ea.placed}':>11}"
                     f"{f'{b.n}/{qa.placed}':>11}")
    if e.cpu and q.cpu:
        names_e, names_q = results.cpu_processes["engine"], results.cpu_processes["app_queue"]
        a, b = e.cpu.per_call(names_e) * 1000, q.cpu.per_call(names_q) * 1000
        lines.append(f"3. CPU per answered call ({e.cpu.answered} and {q.cpu.answered} calls answered)")
        row(f"     {' + '.join(names_e)} vs {' + '.join(names_q)}", a, b, "ms",
            f"ratio <= {TARGET_CPU_RATIO}: {_verdict(a <= TARGET_CPU_RATIO * b)}")
        for name in sorted(set(e.cpu.cpu_s) | set(q.cpu.cpu_s)):
            row(f"     of which {name}", _per(e.cpu, name), _per(q.cpu, name), "ms")
    if results.engine_memory:
        m = results.engine_memory
        lines.append(f"   engine memory: {m.rss_mb:.0f} MB resident at the end, {m.peak_rss_mb:.0f} MB at peak")
    if results.matcher and results.trivial:
        mt, tr = results.matcher, results.trivial
        d = _ms(mt.latencies_s)
        share = mt.per_s / tr.per_s
        lines.append(f"4. Redis matcher alone ({results.matcher_clients} clients, {CLIENTS[mt.client]}, "
                     f"{mt.decisions:,} decisions)")
        lines.append(f"     decisions/s {mt.per_s:>12,.0f}   target >= {TARGET_DECISIONS_PER_S:,}: "
                     f"{_verdict(mt.per_s >= TARGET_DECISIONS_PER_S)}")
        if mt.wall_seconds != mt.seconds:
            lines.append(f"     with the calls put back {mt.per_s_with_restore:,.0f}/s (set_state, then "
                         f"offer_failed, over the whole {mt.wall_seconds:.1f} s)")
        lines.append(f"     decision p99 {d.p99:>10.2f} ms (median {d.median:.2f})   target < "
                     f"{TARGET_DECISION_P99_MS} ms: {_verdict(d.p99 < TARGET_DECISION_P99_MS)}")
        lines.append(f"     redis-benchmark EVALSHA 'return 1' {tr.per_s:,.0f}/s (p99 {tr.p99_ms:.2f} ms); "
                     f"matcher {share:.2f} of it   target >= {TARGET_TRIVIAL_SHARE}: "
                     f"{_verdict(share >= TARGET_TRIVIAL_SHARE)}")
        if results.redis_us_per_script is not None:
            lines.append(f"     inside Redis: {results.redis_us_per_script:.1f} us per script call "
                         f"(set_state and offer_failed alike)")
    return "\n".join(lines)


def _per(cpu: CpuUse, name: str) -> float:
    return cpu.cpu_s[name] / cpu.answered * 1000 if name in cpu.cpu_s and cpu.answered else math.nan


def _cell(value: float, unit: str) -> str:
    if math.isnan(value):
        return f"{'-':>11}"
    return f"{value:>9.{1 if abs(value) >= 10 else 2}f}{unit:2}"


def plot(results: Results, path: Path) -> bool:
    """The latency distributions as a PNG; False if matplotlib is not installed (the bench extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    colours = {"engine": "tab:blue", "app_queue": "tab:orange"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    for side in SIDES:
        _ecdf(ax, [v * 1000 for v in results.sides[side].available_to_ring_s], side, colours[side], "-")
    ax.set_title("1. advocate available -> ring")
    ax = axes[1]
    styles = ["-", "--", ":"]
    for side in SIDES:
        for style, (callers, arrivals) in zip(styles, sorted(results.sides[side].arrivals.items())):
            _ecdf(ax, [v * 1000 for v in arrivals.latencies_s], f"{side}, {callers} concurrent", colours[side],
                  style)
    ax.set_title("2. call arrives -> advocate rings")
    ax = axes[2]
    if results.matcher:
        _ecdf(ax, [v * 1000 for v in results.matcher.latencies_s], "matcher decision", "tab:green", "-")
    ax.set_title("4. Redis matcher: one decision's round trip")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("ms (log scale)")
        ax.set_ylabel("share of measurements at or below")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"engine vs app_queue, {results.date}, {machine()}, load average {results.load_at_start:.1f} "
                 f"at the start", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _ecdf(ax, values: list[float], label: str, colour: str, style: str) -> None:
    if not values:
        return
    ordered = sorted(values)
    n = len(ordered)
    ax.step(ordered, [(i + 1) / n for i in range(n)], where="post", label=f"{label} (n={n})", color=colour,
            linestyle=style)
