"""Any menu.toml an editor might write: the real menu with values deleted,
replaced by any TOML value, or keys added, either loads, and then routes a
silent caller with finite timers, or is refused with a MenuError naming
where. Never another exception: a bad menu must stop the engine at start-up
with a message, not with a traceback, and never fail on a call."""

from __future__ import annotations

import copy
import datetime
import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nested_edits import parent_of, paths

from ivr.menu import MenuDefinition, MenuError, MenuSession, StartTimer, parse_menu

REAL = tomllib.loads((Path(__file__).resolve().parents[2] / "dialplans" / "menu.toml").read_text(encoding="utf-8"))

# Every kind of value TOML can hold, inf and nan included.
toml_scalars = st.one_of(
    st.text(max_size=12), st.sampled_from(["language", "call_type", "en", "es", "other", "crisis", "1", "#",
                                           "greeting", "invalid"]),
    st.integers(-3, 12), st.integers(), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(min_value=datetime.datetime(1970, 1, 1)), st.dates(), st.times())
toml_values = st.recursive(toml_scalars,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                           max_leaves=8)

# The start of every MenuError: the file, then the node, entry, key or section at fault.
WHERE = re.compile(r"^menu\.toml: (node |entry |key |languages|defaults|playback_guard|start |'nodes'|entries)")


@st.composite
def edited_menus(draw) -> dict:
    data = copy.deepcopy(REAL)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(data) or [()]))
        if not path:
            break
        parent = parent_of(data, path)
        action = draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(toml_values)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(toml_values)
    return data


def routes_a_silent_caller(menu: MenuDefinition) -> None:
    # A guard and a no-input timeout per try, one announcement per node, the entry's own.
    bound = sum(2 * (node.retries + 1) + 1 for node in menu.nodes.values()) + 1
    for entry in [None, *menu.entries]:
        session = MenuSession(menu, entry=entry)
        finished = False
        for actions in [session.start(), *(session.timed_out() for _ in range(bound))]:
            for action in actions:
                if isinstance(action, StartTimer):
                    assert math.isfinite(action.seconds) and action.seconds > 0
            finished = finished or session.finished
        assert finished, f"a silent caller is never routed (entry {entry})"


@settings(max_examples=300)
@given(edited_menus())
def test_an_edited_menu_loads_and_routes_a_silent_caller_or_is_refused_naming_where(data):
    try:
        menu = parse_menu(data, source="menu.toml")
    except MenuError as exc:
        assert WHERE.match(str(exc)), str(exc)
        return
    routes_a_silent_caller(menu)


def test_the_real_menu_routes_a_silent_caller_from_every_entry():
    routes_a_silent_caller(parse_menu(copy.deepcopy(REAL)))


# What the fuzz found: each used to escape as a TypeError, or to load.
@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(start=["language"]), "start ['language'] is not a node"),
    (lambda d: d["nodes"]["language"]["options"][0].update(language=["en"]),
     "node 'language' option '1' key 'language': ['en'] is not one of"),
    (lambda d: d["defaults"].update(call_type={"a": 1}), "defaults key 'call_type': {'a': 1} is not one of"),
    (lambda d: d["nodes"]["call_type"].update(timeout=math.inf),
     "node 'call_type' key 'timeout': must be at most 3600 seconds"),
    (lambda d: d.update(playback_guard=math.inf), "playback_guard: must be at most 3600 seconds"),
    (lambda d: d["nodes"]["language"].update(retries=10**9), "node 'language' key 'retries': must be at most 10"),
])
def test_edits_the_fuzz_found_are_refused_naming_where(edit, message):
    data = copy.deepcopy(REAL)
    edit(data)
    with pytest.raises(MenuError, match="^" + re.escape("menu.toml: " + message)):
        parse_menu(data, source="menu.toml")
