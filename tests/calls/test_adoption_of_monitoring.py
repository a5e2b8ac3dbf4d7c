"""Grouping the channels a dead engine left (pure): its monitoring sessions are
not adopted with its calls, and its legs still ringing are known for legs. And
the rescue of an engine that cannot start, where Asterisk has nothing left."""

from __future__ import annotations

from datetime import datetime, timezone

from ivr.adoption import group_channels, rescue_stranded
from ivr.ari.errors import AriNotFound
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


def ringing(channel_id: str) -> Channel:
    # Originated, not answered: listed in the application, not in Stasis yet.
    return channel(channel_id, "").model_copy(update={"state": "Ringing"})


def test_legs_still_ringing_are_known_by_their_names_not_taken_for_callers():
    channels = [channel("c2", "hotline,18883737888"), ringing("c2-leg1"), ringing("c2-int1"),
                ringing("c2-mon-0a1b2c"), ringing("gone-sup1"), channel("host-17.4", "hotline,18883737888"),
                ringing("host-17.4-leg2")]
    grouped = group_channels(channels, {c.id for c in channels}, held=set())

    assert set(grouped.calls) == {"c2", "host-17.4"}
    assert [leg.id for leg in grouped.calls["c2"].legs] == ["c2-leg1", "c2-int1"]
    assert [leg.id for leg in grouped.calls["host-17.4"].legs] == ["host-17.4-leg2"]
    assert set(grouped.orphans) == {"c2-mon-0a1b2c", "gone-sup1"}


class ApplicationGone:
    """An Asterisk that no longer knows the application (no WebSocket, no channel in it)."""

    async def get_application(self, name: str) -> dict:
        raise AriNotFound(f"application {name} not found", status=404)

    async def list_channels(self) -> list:
        raise AssertionError("nothing to list: the application is gone")


async def test_a_rescue_of_an_application_asterisk_forgot_hands_nobody_over():
    assert await rescue_stranded(ApplicationGone(), "hotline") == 0
