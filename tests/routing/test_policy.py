"""Queue policies as pure decisions: a call's plan, its steps in time, the
estimated wait announced to callers. No Redis here."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.policy import (
    MAX_ANNOUNCED_WAIT_S,
    MIN_ANSWERS_FOR_ESTIMATE,
    CallPlan,
    CrisisPolicy,
    Escalate,
    Overflow,
    QueuePolicy,
    RelayPolicy,
    Tier,
    Widen,
    announced_minutes,
    estimated_wait_s,
    plan_call,
    within_target,
)

# The shape of deploy/hotline.example.toml: Spanish widens to English with an
# interpreter after 60 s; relay calls wait for relay-skilled advocates first.
SPANISH_TO_ENGLISH = Tier("english", 60.0, "spa", "spanish_overflow")
POLICIES = {
    "english": QueuePolicy("english", max_wait_s=600.0, service_level_s=30.0),
    "spanish": QueuePolicy("spanish", max_wait_s=600.0, service_level_s=30.0, widen=(SPANISH_TO_ENGLISH,)),
    "relay": QueuePolicy("relay", max_wait_s=900.0, service_level_s=60.0),
}
RELAY = RelayPolicy("relay", skilled_only_s=30.0, ring_s=40.0)
CRISIS = CrisisPolicy(escalate_after_s=45.0)
RING_S = 20.0


def plan(queue: str = "english", *, relay: bool = False, crisis: bool = False, policies=POLICIES,
         relay_policy: RelayPolicy = RELAY, crisis_policy: CrisisPolicy | None = CRISIS,
         interpreters: bool = True) -> CallPlan:
    return plan_call(queue=queue, relay=relay, crisis=crisis, policies=policies, relay_policy=relay_policy,
                     crisis_policy=crisis_policy, ring_s=RING_S, interpreters=interpreters)


def kinds(p: CallPlan) -> list[type]:
    return [type(s) for s in p.steps]


# -- plans on the example configuration ----------------------------------------------


def test_relay_call_waits_for_relay_advocates_then_widens_to_its_language_queue():
    p = plan("english", relay=True)
    assert p.entry_queue == RELAY.queue
    assert p.tiers == (Tier("relay", 0.0), Tier("english", RELAY.skilled_only_s))
    assert p.steps == (Widen(RELAY.skilled_only_s, p.tiers[1]), Overflow(POLICIES["relay"].max_wait_s))
    assert p.relay and p.ring_s == RELAY.ring_s


def test_relay_call_of_a_widening_queue_gets_that_queues_tiers_later_by_skilled_only_s():
    p = plan("spanish", relay=True)
    shifted = dataclasses.replace(SPANISH_TO_ENGLISH, after_s=SPANISH_TO_ENGLISH.after_s + RELAY.skilled_only_s)
    assert [t.queue for t in p.tiers] == ["relay", "spanish", "english"]
    assert p.tiers[2] == shifted  # the interpreter and the announcement come along
    assert [s.tier for s in p.steps if isinstance(s, Widen)] == [p.tiers[1], shifted]
    assert [s.at_s for s in p.steps if isinstance(s, Widen)] == [RELAY.skilled_only_s, shifted.after_s]


def test_call_that_is_not_relay_enters_its_own_queue_with_the_normal_ring_time():
    p = plan("spanish")
    assert p.entry_queue == "spanish" and not p.relay
    assert p.tiers == (Tier("spanish", 0.0), SPANISH_TO_ENGLISH)
    assert p.ring_s == RING_S
    assert p.policy == POLICIES["spanish"]


def test_interpreter_tier_is_skipped_without_interpreters():
    assert plan("spanish", interpreters=True).tiers[-1] == SPANISH_TO_ENGLISH
    without = plan("spanish", interpreters=False)
    assert without.tiers == (Tier("spanish", 0.0),)
    assert without.steps == (Overflow(POLICIES["spanish"].max_wait_s),)


def test_tier_without_interpreter_is_kept_without_interpreters():
    plain = Tier("english", 60.0)
    policies = {**POLICIES, "spanish": dataclasses.replace(POLICIES["spanish"], widen=(plain,))}
    assert plan("spanish", policies=policies, interpreters=False).tiers[-1] == plain


def test_crisis_call_escalates_after_escalate_after_s():
    p = plan("english", crisis=True)
    assert [s for s in p.steps if isinstance(s, Escalate)] == [Escalate(CRISIS.escalate_after_s)]
    assert p.crisis


def test_call_that_is_not_crisis_never_escalates():
    assert Escalate not in kinds(plan("english", crisis=False))
    assert Escalate not in kinds(plan("spanish", relay=True, crisis=False))


def test_crisis_call_does_not_escalate_without_a_crisis_policy():
    assert Escalate not in kinds(plan("english", crisis=True, crisis_policy=None))


@pytest.mark.parametrize("escalate_after_s", [600.0, 601.0])
def test_crisis_call_does_not_escalate_at_or_after_its_max_wait(escalate_after_s):
    p = plan("english", crisis=True, crisis_policy=CrisisPolicy(escalate_after_s))
    assert Escalate not in kinds(p)
    assert p.steps == (Overflow(POLICIES["english"].max_wait_s),)


def test_at_equal_times_the_call_widens_before_the_supervisors_are_rung():
    p = plan("spanish", crisis=True, crisis_policy=CrisisPolicy(SPANISH_TO_ENGLISH.after_s))
    assert kinds(p) == [Widen, Escalate, Overflow]
    assert p.steps[0].at_s == p.steps[1].at_s


def test_tiers_at_or_after_the_max_wait_are_never_reached():
    policies = {**POLICIES, "spanish": dataclasses.replace(POLICIES["spanish"], max_wait_s=60.0)}
    p = plan("spanish", policies=policies)
    assert p.steps == (Overflow(60.0),)


def test_relay_call_overflows_at_the_relay_queues_max_wait_not_its_language_queues():
    p = plan("english", relay=True)
    assert p.policy == POLICIES["relay"]
    assert p.steps[-1] == Overflow(POLICIES["relay"].max_wait_s)


# -- plans on random configurations ------------------------------------------------

NAMES = ("english", "spanish", "relay")
# Whole seconds from a small range: equal times (ties) come up often.
seconds = st.integers(0, 120).map(float)
tiers = st.builds(Tier, queue=st.sampled_from(NAMES), after_s=seconds,
                  interpreter=st.sampled_from([None, "spa"]), say=st.sampled_from([None, "overflow"]))


@st.composite
def configurations(draw) -> dict:
    policies = {
        name: QueuePolicy(name, max_wait_s=float(draw(st.integers(1, 150))), service_level_s=30.0,
                          widen=tuple(draw(st.lists(tiers, max_size=3))))
        for name in NAMES
    }
    return {
        "queue": draw(st.sampled_from(["english", "spanish"])),
        "relay": draw(st.booleans()),
        "crisis": draw(st.booleans()),
        "policies": policies,
        "relay_policy": RelayPolicy("relay", skilled_only_s=draw(seconds), ring_s=40.0),
        "crisis_policy": draw(st.none() | st.builds(CrisisPolicy, seconds)),
        "interpreters": draw(st.booleans()),
    }


def planned(config: dict) -> CallPlan:
    return plan_call(ring_s=RING_S, **config)


@given(configurations())
def test_steps_are_in_time_order(config):
    at = [s.at_s for s in planned(config).steps]
    assert at == sorted(at)


@given(configurations())
def test_every_plan_ends_with_exactly_one_overflow_at_the_entry_queues_max_wait(config):
    p = planned(config)
    assert kinds(p).count(Overflow) == 1
    assert p.steps[-1] == Overflow(config["policies"][p.entry_queue].max_wait_s)
    assert all(s.at_s < p.steps[-1].at_s for s in p.steps[:-1])


@given(configurations())
def test_every_tier_before_the_max_wait_is_widened_to_once(config):
    p = planned(config)
    reachable = [t for t in p.tiers[1:] if t.after_s < p.policy.max_wait_s]
    assert Counter(s.tier for s in p.steps if isinstance(s, Widen)) == Counter(reachable)
    assert all(s.at_s == s.tier.after_s for s in p.steps if isinstance(s, Widen))


@given(configurations())
def test_queue_tiers_follow_the_entry_in_configured_order_skipping_interpreter_tiers_without_interpreters(config):
    p = planned({**config, "relay": False})
    widen = config["policies"][config["queue"]].widen
    kept = tuple(t for t in widen if config["interpreters"] or t.interpreter is None)
    assert p.tiers == (Tier(config["queue"], 0.0), *kept)


@given(configurations())
def test_escalation_only_for_crisis_calls_and_only_before_max_wait(config):
    p = planned(config)
    escalations = [s for s in p.steps if isinstance(s, Escalate)]
    crisis_policy = config["crisis_policy"]
    should = (config["crisis"] and crisis_policy is not None
              and crisis_policy.escalate_after_s < p.policy.max_wait_s)
    assert escalations == ([Escalate(crisis_policy.escalate_after_s)] if should else [])


@given(configurations())
def test_relay_plan_is_the_plain_plan_behind_the_relay_queue_shifted_by_skilled_only_s(config):
    relay_plan = planned({**config, "relay": True})
    plain = planned({**config, "relay": False})
    shift = config["relay_policy"].skilled_only_s
    assert relay_plan.tiers[0] == Tier(config["relay_policy"].queue, 0.0)
    assert relay_plan.tiers[1:] == tuple(dataclasses.replace(t, after_s=t.after_s + shift) for t in plain.tiers)
    assert (relay_plan.ring_s, plain.ring_s) == (config["relay_policy"].ring_s, RING_S)


@st.composite
def plans_and_checks(draw) -> tuple[CallPlan, list[float]]:
    """A plan and the increasing times (since arrival) at which the engine
    looks at it, the last at or after the max wait, as its timer would."""
    p = planned(draw(configurations()))
    end = p.steps[-1].at_s
    # Quarter seconds: checks land exactly on step times, between them, or skip several.
    times = draw(st.lists(st.integers(0, int(end * 4) + 40).map(lambda q: q / 4), max_size=30))
    times = sorted(set(times)) + [end + draw(st.sampled_from([0.0, 0.25, 5.0]))]
    return p, sorted(set(times))


@given(plans_and_checks())
def test_applying_due_steps_performs_each_step_once_in_order_and_never_early(plan_and_checks):
    p, checks = plan_and_checks
    done = 0
    performed: list[tuple[object, float]] = []
    for waited_s in checks:
        next_at = p.next_at(done)
        due = p.due(done, waited_s)
        assert bool(due) == (next_at is not None and next_at <= waited_s)
        assert due == p.steps[done:done + len(due)]
        performed += [(step, waited_s) for step in due]
        done += len(due)
        after = p.next_at(done)
        assert after is None or after > waited_s, "a step whose time had come was left for later"
    assert [step for step, _ in performed] == list(p.steps)
    assert p.next_at(done) is None and p.due(done, checks[-1] + 1000) == ()
    for step, waited_s in performed:
        assert step.at_s <= waited_s
        assert waited_s == min(t for t in checks if t >= step.at_s), "performed later than its first chance"


# -- estimated wait ------------------------------------------------------------------

NOW_MS = 1_700_000_000_000


def answers_every(seconds_apart: float, count: int) -> list[int]:
    """Answer times, newest first, the newest `seconds_apart` before now."""
    return [NOW_MS - int((i + 1) * seconds_apart * 1000) for i in range(count)]


def test_no_estimate_with_too_little_history():
    few = answers_every(20, MIN_ANSWERS_FOR_ESTIMATE - 1)
    assert estimated_wait_s(1, few, NOW_MS) is None
    assert estimated_wait_s(1, answers_every(20, MIN_ANSWERS_FOR_ESTIMATE), NOW_MS) is not None


def test_answers_outside_the_window_say_nothing_about_the_pace():
    window_ms = 30 * 60 * 1000
    old = [NOW_MS - window_ms - 1000 * i for i in range(1, 10)]
    assert estimated_wait_s(1, old, NOW_MS, window_ms) is None
    assert estimated_wait_s(1, answers_every(10, 1) + old, NOW_MS, window_ms) is None


def test_estimate_is_position_times_the_time_per_recent_answer():
    # Three answers in the last 60 s: one every 20 s.
    answered = answers_every(20, 3)
    assert estimated_wait_s(1, answered, NOW_MS) == pytest.approx(20.0)
    assert estimated_wait_s(3, answered, NOW_MS) == pytest.approx(60.0)


def test_no_estimate_for_a_call_not_in_line():
    assert estimated_wait_s(0, answers_every(20, 5), NOW_MS) is None


def test_estimate_beyond_the_cap_is_not_announced():
    slow = answers_every(580, 3)  # one answer every 580 s
    assert estimated_wait_s(3, slow, NOW_MS) == pytest.approx(3 * 580)
    assert 4 * 580 > MAX_ANNOUNCED_WAIT_S
    assert estimated_wait_s(4, slow, NOW_MS) is None


answer_histories = st.lists(st.integers(0, 40 * 60 * 1000).map(lambda ago: NOW_MS - ago), max_size=25)


@given(answer_histories, st.integers(1, 50), st.integers(1, 50))
def test_estimate_grows_with_position(answered, p1, p2):
    low, high = sorted((p1, p2))
    first, later = estimated_wait_s(low, answered, NOW_MS), estimated_wait_s(high, answered, NOW_MS)
    if first is None:
        assert later is None  # too little history, or already beyond the cap
    elif later is not None:
        assert first <= later
        assert (first < later) == (low < high)


@given(answer_histories, st.integers(1, 200))
def test_announced_estimate_is_positive_and_within_the_cap(answered, position):
    wait = estimated_wait_s(position, answered, NOW_MS)
    assert wait is None or 0 < wait <= MAX_ANNOUNCED_WAIT_S


@pytest.mark.parametrize(("wait_s", "minutes"), [(0.0, 1), (1.0, 1), (60.0, 1), (61.0, 2), (150.0, 3)])
def test_announced_minutes_round_up(wait_s, minutes):
    assert announced_minutes(wait_s) == minutes


@given(st.floats(0, MAX_ANNOUNCED_WAIT_S * 2, allow_nan=False))
def test_announced_minutes_are_never_zero_and_never_less_than_the_wait(wait_s):
    minutes = announced_minutes(wait_s)
    assert minutes >= 1
    assert minutes * 60 >= wait_s
    assert minutes == 1 or (minutes - 1) * 60 < wait_s


def test_answered_within_the_service_level_counts_up_to_and_including_it():
    policy = POLICIES["english"]
    assert within_target(policy.service_level_s, policy)
    assert not within_target(policy.service_level_s + 0.001, policy)
