"""A dead engine's monitoring sessions are not adopted with its calls (pure grouping)."""

from __future__ import annotations

from datetime import datetime, timezone

from ivr.adoption import group_channels
from ivr.ari.models import CallerId, Channel, DialplanCep


def channel(channel_id: str, app_data: str) -> Channel:
    return Channel(id=channel_id, name=f"PJSIP/{channel_id}", state="Up", caller=CallerId(),
                   dialplan=DialplanCep(context="c", exten="s", priority=1, app_name="Stasis", app_data=app_data),
                   creationtime=datetime.now(timezone.utc))


CHANNELS = [channel("c1", "hotline,18883737888"), channel("c1-leg1", "hotline,leg,c1"),
            channel("c1-mon-a1b2c3", "hotline,monitor,c1"), channel("c1-mon-a1b2c3-snoop1", "hotline,snoop,c1,both,out")]


def test_a_dead_engines_supervisor_leg_and_snoop_hang_up_and_the_call_is_adopted():
    grouped = group_channels(CHANNELS, {c.id for c in CHANNELS}, held=set())

    assert set(grouped.calls) == {"c1"}
    assert [leg.id for leg in grouped.calls["c1"].legs] == ["c1-leg1"]
    assert set(grouped.orphans) == {"c1-mon-a1b2c3", "c1-mon-a1b2c3-snoop1"}


def test_the_engines_own_monitoring_is_left_alone():
    grouped = group_channels(CHANNELS, {c.id for c in CHANNELS}, held={"c1"})

    assert grouped.calls == {} and grouped.orphans == ()
