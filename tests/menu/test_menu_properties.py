"""Property tests: any sequence of call events leaves MenuSession sane.

Events on a live call race and repeat (DTMF during a playback that is being stopped,
a timer firing as a digit arrives), so the session is fed arbitrary sequences here,
on the real menu and on generated ones.
"""

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.menu import (CALL_TYPES, LANGUAGES, PRIORITIES, CancelTimer, Finish, MenuDefinition,
                      MenuSession, Phase, Play, StartTimer, StopPlayback, parse_menu)

KEYS = [*"0123456789*#", "A", "D", "", "11"]

events = st.lists(st.one_of(
    st.just(("start",)),
    st.just(("prompt_finished",)),
    st.tuples(st.just("stale_finished"), st.integers(-1, 40)),
    st.just(("timed_out",)),
    st.tuples(st.just("digit"), st.sampled_from(KEYS)),
), max_size=60)

timeout_factors = st.floats(min_value=0.1, max_value=10, allow_nan=False)


def feed(session: MenuSession, event: tuple) -> tuple:
    match event:
        case ("start",):
            return session.start()
        case ("prompt_finished",):
            return session.prompt_finished(session.state.serial)
        case ("stale_finished", serial):
            return session.prompt_finished(serial)
        case ("timed_out",):
            return session.timed_out()
        case ("digit", d):
            return session.digit(d)


def silence_bound(menu: MenuDefinition) -> int:
    # per node: a guard and a no-input timeout per try, then one closing announcement;
    # fallbacks never cycle, so a silent caller visits each node at most once. Plus one:
    # silence may begin during the announcement of a choice already made, whose end
    # re-enters a node the caller has visited (an option that loops back).
    return sum(2 * (node.retries + 1) + 1 for node in menu.nodes.values()) + 1


class Checker:
    """Runs events through a session, asserting the invariants after every step."""

    def __init__(self, menu: MenuDefinition, catalog, factor: float = 1.0):
        self.menu, self.catalog = menu, catalog
        self.session = MenuSession(menu, timeout_factor=factor)
        self.finishes: list[Finish] = []

    def step(self, event: tuple) -> tuple:
        before = self.session.state
        actions = feed(self.session, event)
        assert isinstance(actions, tuple)
        if self.finishes:
            assert actions == (), "nothing may happen after Finish"
        for action in actions:
            if isinstance(action, Play):
                assert action.prompt_ids
                if self.catalog is not None:
                    assert set(action.prompt_ids) <= self.catalog[action.language]
            elif isinstance(action, StartTimer):
                assert action.seconds > 0
            elif isinstance(action, Finish):
                self.check_outcome(action)
                self.finishes.append(action)
        assert len(self.finishes) <= 1
        if event[0] == "digit":
            self.check_digit(before, event[1], actions)
        return actions

    def check_outcome(self, finish: Finish) -> None:
        outcome = finish.outcome
        assert outcome.language in LANGUAGES
        assert outcome.call_type in CALL_TYPES
        assert outcome.priority in PRIORITIES
        assert all(step.split(":")[0] in self.menu.nodes for step in outcome.path)

    def check_digit(self, before, d: str, actions: tuple) -> None:
        if before.phase not in (Phase.PLAYING, Phase.WAITING):
            assert actions == ()
            return
        assert (StopPlayback() in actions) == (before.phase is Phase.PLAYING)
        node = self.menu.nodes[before.node]
        if d not in node.options and before.attempt < node.retries:
            # an invalid key is answered with the invalid prompt and the same menu again
            [play] = [a for a in actions if isinstance(a, Play)]
            assert play.prompt_ids == (*node.invalid, *node.prompts)
            assert not any(isinstance(a, Finish) for a in actions)

    def stay_silent(self, alternate: bool) -> None:
        self.step(("start",))
        for _ in range(silence_bound(self.menu)):
            if self.session.finished:
                break
            if alternate and self.session.state.phase in (Phase.PLAYING, Phase.ANNOUNCING):
                self.step(("prompt_finished",))
            else:
                self.step(("timed_out",))
        assert self.session.finished, "a silent caller must always be routed on"
        assert self.finishes[0].outcome.call_type in CALL_TYPES


@given(events, timeout_factors, st.booleans())
def test_any_events_then_silence_always_finish_validly(menu, catalog, sequence, factor,
                                                       alternate):
    checker = Checker(menu, catalog, factor)
    for event in sequence:
        checker.step(event)
    checker.stay_silent(alternate)


@given(events)
def test_any_events_then_silence_finish_exactly_once(menu, sequence):
    checker = Checker(menu, None)
    for event in [*sequence, ("start",), *[("timed_out",)] * silence_bound(menu), ("digit", "1")]:
        checker.step(event)
    assert len(checker.finishes) == 1


# --- generated menus -----------------------------------------------------------------


@st.composite
def menus(draw, backwards: bool = True) -> MenuDefinition:
    """Valid menus of 1-5 nodes: options may go anywhere (only forward unless
    ``backwards``), fallbacks only forward."""
    count = draw(st.integers(1, 5))
    names = [f"n{i}" for i in range(count)]
    nodes = {}
    for index, name in enumerate(names):
        digits = draw(st.lists(st.sampled_from("0123456789*#"), min_size=1, max_size=6,
                               unique=True))
        options = [{"digit": d, **draw(choices(names, names[index + 1:], backwards))} for d in digits]
        nodes[name] = {
            "prompts": [f"{name}_menu"],
            "timeout": draw(st.floats(0.5, 20)),
            "retries": draw(st.integers(0, 3)),
            "invalid": ["invalid"],
            "options": options,
            "fallback": draw(choices(names, names[index + 1:], backwards=False)),
        }
        if index == 0:
            nodes[name]["intro"] = ["greeting"]
    # keep every node reachable: the first node's fallback chain visits them in order
    for index, name in enumerate(names[:-1]):
        nodes[name]["fallback"] = {**nodes[name]["fallback"], "goto": names[index + 1]}
        nodes[name]["fallback"].pop("finish", None)
    return parse_menu({"start": "n0", "languages": {"en": "en", "es": "es", "other": "en"},
                       "nodes": nodes})


def choices(all_names: list[str], forward: list[str], backwards: bool = True):
    targets = [st.just({"finish": True}),
               st.sampled_from(forward or [None]).map(
                   lambda n: {"goto": n} if n else {"finish": True})]
    if backwards:
        targets.append(st.sampled_from(all_names).map(lambda n: {"goto": n}))
    target = st.one_of(*targets)
    return st.fixed_dictionaries(
        {}, optional={"language": st.sampled_from(sorted(LANGUAGES)),
                      "call_type": st.sampled_from(sorted(CALL_TYPES)),
                      "priority": st.sampled_from(PRIORITIES),
                      "say": st.just(["no_input_routing"])}
    ).flatmap(lambda fields: target.map(lambda t: {**fields, **t}))


@settings(max_examples=200)
@given(menus(), events, st.booleans())
def test_generated_menus_survive_any_events_and_finish_on_silence(menu, sequence,
                                                                   alternate):
    checker = Checker(menu, None)
    for event in sequence:
        checker.step(event)
    checker.stay_silent(alternate)


# --- any caller, bounded -------------------------------------------------------------

ACTIONS = (Play, StopPlayback, StartTimer, CancelTimer, Finish)

inputs = st.lists(st.one_of(
    st.just(("prompt_finished",)),
    st.tuples(st.just("stale_finished"), st.integers(-1, 40)),
    st.just(("timed_out",)),
    st.tuples(st.just("digit"), st.sampled_from(KEYS)),
), max_size=80)


def run_caller(menu: MenuDefinition, sequence: list[tuple], entry: str | None = None) -> int:
    """Start a session, feed it ``sequence`` then silence; the inputs it acted on
    before Finish. Every action must be one the call actor knows: none hangs up."""
    session = MenuSession(menu, entry=entry)
    effective, finishes = 0, 0
    for event in [("start",), *sequence, *[("timed_out",)] * (silence_bound(menu) + 1)]:
        actions = feed(session, event)
        assert all(isinstance(a, ACTIONS) for a in actions), actions
        assert all(math.isfinite(a.seconds) for a in actions if isinstance(a, StartTimer))
        if actions and not finishes:
            effective += event != ("start",)
        finishes += sum(isinstance(a, Finish) for a in actions)
    assert finishes == 1
    return effective


@given(inputs, st.sampled_from([None, "spanish", "relay"]))
def test_any_caller_on_the_real_menu_is_routed_within_a_bounded_number_of_inputs(menu, sequence, entry):
    # No option of the real menu leads back, so no caller can loop: each input
    # the session acts on either moves on or uses up one of a node's tries.
    assert run_caller(menu, sequence, entry) <= silence_bound(menu)


@settings(max_examples=60)  # generating menus is the slow part
@given(menus(backwards=False), inputs)
def test_any_caller_on_a_menu_without_loops_is_routed_within_a_bounded_number_of_inputs(menu, sequence):
    assert run_caller(menu, sequence) <= silence_bound(menu)
