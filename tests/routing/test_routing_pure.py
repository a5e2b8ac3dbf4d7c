"""The pure decisions of routing, without Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing import (
    AdvocateState,
    InvalidTransition,
    Keys,
    QueueSpec,
    WaitingCall,
    check_transition,
    hash_token,
    queues_for,
    waiting_score,
)
from routing.advocates import advocate_from_hash, allowed_sources
from routing.queues import arrival_from_score, check_metadata, priority_band
from routing.scripts import library_line_count, script_source
from routing.snapshot import count_states, count_states_by_skill, queue_depth

S = AdvocateState
priorities = st.integers(0, 9)
arrivals = st.integers(0, 10**13 - 1)


@given(priorities, arrivals, priorities, arrivals)
def test_higher_priority_then_earlier_arrival_gets_the_lower_score(p1, a1, p2, a2):
    first_expected = (p1 > p2) or (p1 == p2 and a1 < a2)
    assert (waiting_score(p1, a1) < waiting_score(p2, a2)) == first_expected


@given(priorities, arrivals)
def test_waiting_score_is_exact_as_a_redis_double(priority, arrival):
    score = waiting_score(priority, arrival)
    assert int(float(score)) == score
    assert arrival_from_score(float(score)) == arrival
    low, high = priority_band(priority)
    assert low <= score <= high


@pytest.mark.parametrize("priority, arrival", [(-1, 0), (10, 0), (5, -1), (5, 10**13)])
def test_waiting_score_refuses_out_of_range_input(priority, arrival):
    with pytest.raises(ValueError):
        waiting_score(priority, arrival)


def test_crisis_call_scores_before_older_calls():
    older = WaitingCall("old", "english", 0, 1_000, "e1")
    crisis = WaitingCall("crisis", "english", 9, 9_000, "e1")
    assert crisis.score < older.score


def test_advocate_serves_a_queue_only_with_all_its_skills():
    queues = [
        QueueSpec("english", frozenset({"en"})),
        QueueSpec("spanish", frozenset({"es"})),
        QueueSpec("relay", frozenset({"en", "relay"})),
    ]
    assert queues_for({"en"}, queues) == ("english",)
    assert queues_for({"relay"}, queues) == ()
    assert queues_for({"relay", "en", "es", "crisis"}, queues) == ("english", "spanish", "relay")


@pytest.mark.parametrize("name", ["", "a,b", "a:b", "a*"])
def test_queue_names_that_would_break_keys_are_refused(name):
    with pytest.raises(ValueError):
        QueueSpec(name, frozenset())


API_MOVES = {
    (S.OFFLINE, S.AVAILABLE), (S.OFFLINE, S.AWAY),
    (S.AVAILABLE, S.AWAY), (S.AVAILABLE, S.OFFLINE),
    (S.AWAY, S.AVAILABLE), (S.AWAY, S.OFFLINE),
    (S.WRAP_UP, S.AVAILABLE), (S.WRAP_UP, S.AWAY), (S.WRAP_UP, S.OFFLINE),
}
REPEATS = {(S.OFFLINE, S.OFFLINE), (S.AVAILABLE, S.AVAILABLE), (S.AWAY, S.AWAY)}


@pytest.mark.parametrize("old", list(S))
@pytest.mark.parametrize("new", list(S))
def test_only_listed_api_moves_and_harmless_repeats_are_allowed(old, new):
    if (old, new) in API_MOVES | REPEATS:
        check_transition(old, new, "a1")
        assert old in allowed_sources(new)
    else:
        with pytest.raises(InvalidTransition) as info:
            check_transition(old, new, "a1")
        assert (info.value.advocate_id, info.value.old, info.value.new) == ("a1", old, new)


def test_token_is_stored_as_its_sha256_hex():
    assert hash_token("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_advocate_is_parsed_from_its_hash():
    adv = advocate_from_hash("a1", {
        "name": "Ana", "endpoint": "PJSIP/1001@phones", "skills": "en,es", "roles": "advocate",
        "queues": "english,spanish", "token_hash": "h", "state": "ringing",
        "state_since": "5", "idle_since": "3", "call": "c1",
    })
    assert adv.skills == {"en", "es"} and adv.queues == ("english", "spanish")
    assert (adv.state, adv.state_since, adv.idle_since, adv.call_id) == (S.RINGING, 5, 3, "c1")
    bare = advocate_from_hash("a2", {"state": "offline", "state_since": "1"})
    assert (bare.idle_since, bare.call_id, bare.queues) == (None, None, ())


def test_metadata_may_not_overwrite_routing_fields():
    check_metadata({"language": "es", "caller_ref": "x"})
    with pytest.raises(ValueError):
        check_metadata({"state": "ended"})


def test_oldest_arrival_is_the_oldest_band_head_not_the_queue_head():
    urgent_new = [("c2", float(waiting_score(9, 5_000)))]
    calm_old = [("c1", float(waiting_score(1, 1_000)))]
    depth = queue_depth(2, 0, [[], urgent_new, calm_old])
    assert (depth.waiting, depth.oldest_arrival_ms) == (2, 1_000)
    assert queue_depth(0, 3, [[]] * 10).oldest_arrival_ms is None


def test_state_counts_include_every_state_and_skip_vanished_advocates():
    counts = count_states(["available", "available", None, "away"])
    assert counts[S.AVAILABLE] == 2 and counts[S.AWAY] == 1 and counts[S.ON_CALL] == 0
    assert set(counts) == set(S)


def test_skill_counts_give_every_state_of_each_skill_and_skip_vanished_advocates():
    counts = count_states_by_skill([("available", "en,es"), ("offline", "es"), (None, None), ("away", "")])
    assert set(counts) == {"en", "es"}
    assert counts["es"][S.AVAILABLE] == 1 and counts["es"][S.OFFLINE] == 1 and counts["es"][S.ON_CALL] == 0
    assert counts["en"][S.AVAILABLE] == 1 and counts["en"][S.OFFLINE] == 0
    assert set(counts["en"]) == set(S)


def test_keys_share_a_configurable_prefix():
    keys = Keys(prefix="x:")
    assert keys.advocate("a1") == "x:adv:a1"
    assert keys.waiting("english") == "x:q:english:waiting"
    assert keys.available("english") == "x:q:english:available"
    assert keys.call("c1") == "x:call:c1"
    assert keys.offers("engine-1") == "x:offers:engine-1"
    assert Keys().advocates() == "hl:advocates"
    with pytest.raises(ValueError):
        Keys(prefix="a*")


LUA = Path(__file__).resolve().parents[2] / "routing" / "lua"


@pytest.mark.parametrize("script", sorted(p.stem for p in LUA.glob("*.lua") if ".lib" not in p.name))
def test_every_script_names_its_keys_and_argv_and_gets_the_libraries(script):
    header = (LUA / f"{script}.lua").read_text().split("\n\n")[0]
    assert "KEYS" in header and "ARGV" in header
    source = script_source(script)
    assert "local function match(" in source
    assert source.count("\n") > library_line_count()
