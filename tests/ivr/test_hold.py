"""What a dead engine left playing on an adopted call (ivr.hold.HoldLine.stop_left_behind).

Against Asterisk: tests/e2e/test_engine_restart.py kills an engine playing
the call-type menu and checks the adopted caller's next choice is not held.
"""

from __future__ import annotations

import logging

from ivr.ari.errors import AriNotFound, AriUnavailable
from ivr.hold import HoldLine


class Playbacks:
    """Asterisk's answers to stopping playbacks: `playing` stop, the rest are 404 (or `error`)."""

    def __init__(self, playing: set[str], error: Exception | None = None) -> None:
        self.playing = playing
        self.error = error
        self.asked: list[str] = []

    async def stop_playback(self, playback_id: str) -> None:
        self.asked.append(playback_id)
        if self.error is not None:
            raise self.error
        if playback_id not in self.playing:
            raise AriNotFound(f"DELETE /playbacks/{playback_id}: 404")
        self.playing.discard(playback_id)


async def test_the_dead_engines_prompt_is_stopped_and_this_engines_numbering_follows(caplog):
    asterisk = Playbacks({"c1-pb3"})
    hold = HoldLine("c1", asterisk)
    await hold.stop_left_behind(5)
    assert sorted(asterisk.asked) == [f"c1-pb{n}" for n in range(1, 6)]
    assert asterisk.playing == set()
    assert hold.next_playback_id() == "c1-pb6"  # never one of the dead engine's ids
    assert not caplog.records  # the 404s are the ids that no longer play, as expected


async def test_asterisk_out_of_reach_is_one_warning_not_one_per_id(caplog):
    caplog.set_level(logging.WARNING)
    hold = HoldLine("c1", Playbacks(set(), AriUnavailable("DELETE /playbacks: no response")))
    await hold.stop_left_behind(40)
    assert [r.getMessage() for r in caplog.records] == [
        "channel c1: 40 of the dead engine's playbacks not stopped (AriUnavailable)"]
    assert hold.next_playback_id() == "c1-pb41"
