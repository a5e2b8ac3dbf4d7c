"""The IVR menu's definition: loaded from dialplans/menu.toml and validated in full.

A bad menu fails at start-up with a message naming the node and key, never on a call.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

# The hotline's own categories; routing and reporting rely on exactly these names.
LANGUAGES = frozenset({"en", "es", "other"})
CALL_TYPES = frozenset({"crisis", "tip", "referral", "training", "information", "other"})
DIGITS = frozenset("0123456789*#")
PRIORITIES = range(0, 10)
# Bounds that keep a silent caller's way through the menu short: every node
# is at most (retries + 1) prompts and timeouts, then its fallback.
MAX_RETRIES = 10
MAX_TIMER_S = 3600

_TOP_KEYS = {"start", "playback_guard", "defaults", "languages", "nodes", "entries"}
_NODE_KEYS = {"intro", "prompts", "prompt_language", "timeout", "retries", "invalid",
              "options", "fallback"}
_CHOICE_KEYS = {"language", "call_type", "priority", "relay", "say", "goto", "finish"}


class MenuError(ValueError):
    """The menu definition is invalid; the message names the file, node and key."""


@dataclass(frozen=True)
class Choice:
    """What one digit (or a node's fallback) does: set outcome fields, say, then go on."""

    language: str | None = None
    call_type: str | None = None
    priority: int | None = None
    relay: bool = False  # the caller said they call through a relay service (TRS/711)
    say: tuple[str, ...] = ()
    goto: str | None = None  # None: the menu finishes


@dataclass(frozen=True)
class MenuNode:
    name: str
    prompts: tuple[str, ...]
    timeout: float
    retries: int
    options: Mapping[str, Choice]
    fallback: Choice
    intro: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()
    prompt_language: str | None = None  # fixed, for bilingual prompts


@dataclass(frozen=True)
class MenuOutcome:
    language: str
    call_type: str
    priority: int
    path: tuple[str, ...]
    no_input: bool
    relay: bool = False
    pressed: bool = False  # any digit at all, valid or not

    @property
    def silent(self) -> bool:
        """The caller pressed nothing at all: perhaps a relay operator still
        typing, perhaps someone who cannot speak. Routed, never dropped."""
        return self.no_input and not self.pressed


@dataclass(frozen=True)
class MenuDefinition:
    start: str
    nodes: Mapping[str, MenuNode]
    defaults: MenuOutcome
    prompt_languages: Mapping[str, str]  # outcome language -> language prompts play in
    playback_guard: float
    # Other ways in than `start`: a line (DID) that already says something about
    # the caller, e.g. the Spanish line starts in Spanish at the call-type menu.
    # An entry that finishes sends its callers straight to the queue.
    entries: Mapping[str, Choice] = field(default_factory=lambda: MappingProxyType({}))

    def entry_for_language(self, language: str) -> str | None:
        """The entry that takes a caller whose prompts are already in
        `language` (chosen before an engine restart) on past the language
        menu: one that sets that language only and goes on into the menu (the
        Spanish line's, for "es"). None for the default language, which a
        caller hears before they have chosen anything."""
        if language == self.defaults.language:
            return None
        for name, choice in self.entries.items():
            if (choice.language == language and choice.goto is not None and not choice.relay
                    and choice.call_type is None and choice.priority is None):
                return name
        return None

    def prompt_ids(self) -> dict[str, set[str]]:
        """Prompt ids each prompt language must provide ("*" -> every prompt language)."""
        needed: dict[str, set[str]] = {}
        for node in self.nodes.values():
            ids = {*node.intro, *node.prompts, *node.invalid}
            needed.setdefault(node.prompt_language or "*", set()).update(ids)
            for choice in (*node.options.values(), node.fallback):
                # a choice's announcement plays in the language it may just have set
                needed.setdefault("*", set()).update(choice.say)
        for entry in self.entries.values():
            needed.setdefault("*", set()).update(entry.say)
        return needed


# --- loading and validation -------------------------------------------------------


def load_menu(path: str | Path,
              prompt_catalog: Mapping[str, Collection[str]] | None = None) -> MenuDefinition:
    """Read and validate a menu file; `prompt_catalog` maps language -> available ids."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MenuError(f"{path.name}: {exc}") from exc
    return parse_menu(data, source=path.name, prompt_catalog=prompt_catalog)


def parse_menu(data: Mapping[str, Any], *, source: str = "menu.toml",
               prompt_catalog: Mapping[str, Collection[str]] | None = None) -> MenuDefinition:
    def fail(where: str, message: str) -> MenuError:
        return MenuError(f"{source}: {where}{': ' if where else ''}{message}")

    _no_unknown_keys(data, _TOP_KEYS, "", fail)
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, Mapping) or not raw_nodes:
        raise fail("", "'nodes' must be a table with at least one node")
    nodes = {name: _parse_node(name, raw, fail) for name, raw in raw_nodes.items()}

    start = data.get("start")
    if not isinstance(start, str) or start not in nodes:
        raise fail("", f"start {start!r} is not a node")
    guard = _positive_number(data.get("playback_guard", 120), "playback_guard", fail)
    defaults = _parse_defaults(data.get("defaults", {}), fail)
    prompt_languages = _parse_languages(data.get("languages"), prompt_catalog, fail)

    for node in nodes.values():
        if node.prompt_language is not None and \
                node.prompt_language not in prompt_languages.values():
            raise fail(f"node {node.name!r}",
                       f"prompt_language {node.prompt_language!r} is not one of "
                       f"[languages] {sorted(set(prompt_languages.values()))}")
        for label, choice in _labelled_choices(node):
            if choice.goto is not None and choice.goto not in nodes:
                raise fail(f"node {node.name!r} {label}", f"goto {choice.goto!r} is not a node")
    raw_entries = data.get("entries", {})
    if not isinstance(raw_entries, Mapping):
        raise fail("entries", "must be a table of entry name -> choice")
    entries = {name: _parse_choice(raw, f"entry {name!r}", fail) for name, raw in raw_entries.items()}
    for name, entry in entries.items():
        # finish = true: the line already says all the menu would ask.
        if entry.goto is not None and entry.goto not in nodes:
            raise fail(f"entry {name!r}", f"goto {entry.goto!r} is not a node")
    _check_fallbacks_end(nodes, fail)
    _check_reachable(nodes, start, fail)
    definition = MenuDefinition(start, MappingProxyType(nodes), defaults,
                                MappingProxyType(prompt_languages), guard, MappingProxyType(entries))
    if prompt_catalog is not None:
        _check_prompts_exist(definition, prompt_catalog, fail)
    return definition


def _labelled_choices(node: MenuNode):
    yield from ((f"option {digit!r}", c) for digit, c in node.options.items())
    yield "fallback", node.fallback


def _parse_node(name: str, raw: Any, fail) -> MenuNode:
    where = f"node {name!r}"
    if not isinstance(raw, Mapping):
        raise fail(where, "must be a table")
    _no_unknown_keys(raw, _NODE_KEYS, where, fail)
    prompts = _prompt_list(raw.get("prompts"), f"{where} key 'prompts'", fail, required=True)
    raw_options = raw.get("options")
    if not isinstance(raw_options, list) or not raw_options:
        raise fail(f"{where} key 'options'", "must be a non-empty array of tables")
    options: dict[str, Choice] = {}
    for index, raw_option in enumerate(raw_options):
        digit = raw_option.get("digit") if isinstance(raw_option, Mapping) else None
        label = f"{where} option {digit!r}" if isinstance(digit, str) else \
            f"{where} option #{index + 1}"
        if not isinstance(digit, str) or len(digit) != 1 or digit not in DIGITS:
            raise fail(label, "'digit' must be one of 0-9, * or # as a string")
        if digit in options:
            raise fail(label, "digit is used twice")
        options[digit] = _parse_choice(raw_option, label, fail, digit=True)
    if "fallback" not in raw:
        # no input must never hang up: every node says where a silent caller goes
        raise fail(f"{where} key 'fallback'", "is required")
    retries = raw.get("retries", 2)
    if not _is_int(retries) or retries < 0:
        raise fail(f"{where} key 'retries'", "must be an integer >= 0")
    if retries > MAX_RETRIES:
        raise fail(f"{where} key 'retries'", f"must be at most {MAX_RETRIES}: a caller who cannot answer "
                                             "must still reach an advocate soon")
    prompt_language = raw.get("prompt_language")
    if prompt_language is not None and not isinstance(prompt_language, str):
        raise fail(f"{where} key 'prompt_language'", "must be a string")
    return MenuNode(
        name=name,
        prompts=prompts,
        timeout=_positive_number(raw.get("timeout"), f"{where} key 'timeout'", fail),
        retries=retries,
        options=MappingProxyType(options),
        fallback=_parse_choice(raw["fallback"], f"{where} fallback", fail),
        intro=_prompt_list(raw.get("intro"), f"{where} key 'intro'", fail),
        invalid=_prompt_list(raw.get("invalid"), f"{where} key 'invalid'", fail),
        prompt_language=prompt_language,
    )


def _parse_choice(raw: Any, where: str, fail, *, digit: bool = False) -> Choice:
    if not isinstance(raw, Mapping):
        raise fail(where, "must be a table")
    _no_unknown_keys(raw, _CHOICE_KEYS | ({"digit"} if digit else set()), where, fail)
    goto, finish = raw.get("goto"), raw.get("finish", False)
    if finish is not True and finish is not False:
        raise fail(f"{where} key 'finish'", "must be true or false")
    if (goto is None) == (not finish):
        raise fail(where, "needs exactly one of 'goto' or 'finish = true'")
    if goto is not None and not isinstance(goto, str):
        raise fail(f"{where} key 'goto'", "must be a node name")
    relay = raw.get("relay", False)
    if relay is not True and relay is not False:
        raise fail(f"{where} key 'relay'", "must be true or false")
    return Choice(
        language=_member(raw.get("language"), LANGUAGES, f"{where} key 'language'", fail),
        call_type=_member(raw.get("call_type"), CALL_TYPES, f"{where} key 'call_type'", fail),
        priority=_priority(raw.get("priority"), f"{where} key 'priority'", fail),
        relay=relay,
        say=_prompt_list(raw.get("say"), f"{where} key 'say'", fail),
        goto=goto,
    )


def _parse_defaults(raw: Any, fail) -> MenuOutcome:
    if not isinstance(raw, Mapping):
        raise fail("defaults", "must be a table")
    _no_unknown_keys(raw, {"language", "call_type", "priority"}, "defaults", fail)
    # the defaults are what a caller who never chooses gets, so they must be complete
    return MenuOutcome(
        language=_member(raw.get("language", "en"), LANGUAGES, "defaults key 'language'", fail),
        call_type=_member(raw.get("call_type", "other"), CALL_TYPES,
                          "defaults key 'call_type'", fail),
        priority=_priority(raw.get("priority", 5), "defaults key 'priority'", fail),
        path=(), no_input=False)


def _parse_languages(raw: Any, catalog, fail) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise fail("languages", "must be a table of language -> prompt language")
    missing = sorted(LANGUAGES - raw.keys())
    if missing:
        raise fail("languages", f"no prompt language for {', '.join(missing)}")
    _no_unknown_keys(raw, LANGUAGES, "languages", fail)
    for language, prompt_language in raw.items():
        if not isinstance(prompt_language, str):
            raise fail(f"languages key {language!r}", "must be a string")
        if catalog is not None and prompt_language not in catalog:
            raise fail(f"languages key {language!r}",
                       f"no prompts in language {prompt_language!r}")
    return dict(raw)


def _check_fallbacks_end(nodes: Mapping[str, MenuNode], fail) -> None:
    # Option cycles are fine (the caller drives them), but a silent caller only ever
    # follows fallbacks: a fallback cycle would keep them in the menu forever.
    for name in nodes:
        seen = [name]
        while (goto := nodes[seen[-1]].fallback.goto) is not None:
            if goto in seen:
                raise fail(f"node {seen[-1]!r} fallback",
                           f"goto {goto!r} makes a fallback cycle "
                           f"({' -> '.join([*seen, goto])}): a silent caller would never "
                           "reach an advocate")
            seen.append(goto)


def _check_reachable(nodes: Mapping[str, MenuNode], start: str, fail) -> None:
    reached, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(c.goto for _, c in _labelled_choices(nodes[name]) if c.goto)
    for name in nodes:
        if name not in reached:
            raise fail(f"node {name!r}", f"is not reachable from start {start!r}")


def _check_prompts_exist(definition: MenuDefinition,
                         catalog: Mapping[str, Collection[str]], fail) -> None:
    every = sorted(set(definition.prompt_languages.values()))
    for language, ids in sorted(definition.prompt_ids().items()):
        for prompt_language in every if language == "*" else [language]:
            have = catalog.get(prompt_language, ())
            for prompt_id in sorted(ids):
                if prompt_id not in have:
                    node = _first_node_using(definition, prompt_id)
                    raise fail(f"node {node!r}",
                               f"prompt {prompt_id!r} is missing in language "
                               f"{prompt_language!r}")


def _first_node_using(definition: MenuDefinition, prompt_id: str) -> str:
    for node in definition.nodes.values():
        choices = (c for _, c in _labelled_choices(node))
        if prompt_id in {*node.intro, *node.prompts, *node.invalid,
                         *(p for c in choices for p in c.say)}:
            return node.name
    return "?"


def _no_unknown_keys(raw: Mapping, allowed: set | frozenset, where: str, fail) -> None:
    for key in raw:
        if key not in allowed:
            raise fail(f"{where} key {key!r}" if where else f"key {key!r}",
                       f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _prompt_list(raw: Any, where: str, fail, *, required: bool = False) -> tuple[str, ...]:
    if raw is None and not required:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p for p in raw) \
            or (required and not raw):
        raise fail(where, "must be a non-empty array of prompt ids" if required
                   else "must be an array of prompt ids")
    return tuple(raw)


def _positive_number(raw: Any, where: str, fail) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not raw > 0:
        raise fail(where, f"must be a positive number of seconds, not {raw!r}")
    # inf is valid TOML, and a timer that never fires leaves a silent caller waiting forever.
    if not raw <= MAX_TIMER_S:
        raise fail(where, f"must be at most {MAX_TIMER_S} seconds: a silent caller waits on it")
    return float(raw)


def _member(raw: Any, allowed: frozenset, where: str, fail) -> str | None:
    if raw is not None and (not isinstance(raw, str) or raw not in allowed):
        raise fail(where, f"{raw!r} is not one of {', '.join(sorted(allowed))}")
    return raw


def _priority(raw: Any, where: str, fail) -> int | None:
    if raw is not None and (not _is_int(raw) or raw not in PRIORITIES):
        raise fail(where, f"must be an integer {PRIORITIES.start}-{PRIORITIES.stop - 1}")
    return raw


def _is_int(raw: Any) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)
