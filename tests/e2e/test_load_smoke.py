"""The load tool, run small in CI so that it cannot rot: a few callers for a
few seconds, the ARI events cut once among them, nobody lost."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from ivr.sandbox.control import Sandbox
from ivr.settings import Settings
from tests.load.plan import Fault, LoadPlan
from tests.load.run import LoadRun


async def test_a_short_load_run_with_the_event_socket_cut_loses_no_caller(
        sandbox: Sandbox, settings: Settings, tmp_path: Path):
    plan = LoadPlan(callers=4, duration_s=15, advocates=3, drain_s=45, abandon_rate=0.25, patience_s=(4, 10),
                    answer_s=(0.5, 1.5), talk_s=(2, 5), faults=(Fault("drop-ari", 6, 1),))
    async with aiohttp.ClientSession() as http:
        report = await LoadRun(plan, settings, sandbox, http, tmp_path).run()

    summary = "\n".join(report.lines())
    assert report.ok(), summary
    assert report.placed >= 4 and report.outcomes["answered"] >= 1, summary
    assert [f["kind"] for f in report.faults] == ["drop-ari"]
    assert report.engine[0]["rss_end_mb"] > 0
