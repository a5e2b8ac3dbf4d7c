"""The menu session: the pure state machine one caller walks through the menu.

Nothing here does I/O: the call actor feeds `MenuSession` the events it sees (playback
ended, DTMF, its no-input timer fired) and carries out the actions it gets back (play,
stop, arm or cancel the timer, finish).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from ivr.menu.definition import Choice, MenuDefinition, MenuOutcome


@dataclass(frozen=True)
class Play:
    """Play `sound:hotline/<id>` for each id, in order, on a channel set to `language`.

    The actor reports the end of the whole sequence once, with `prompt_finished(serial)`;
    it must report it when the playback fails or is cut short too, or the caller waits
    in silence until the playback guard fires.
    """

    prompt_ids: tuple[str, ...]
    language: str
    serial: int = 0


@dataclass(frozen=True)
class StopPlayback:
    """Stop the current playback; its end is no longer of interest to the session."""


@dataclass(frozen=True)
class StartTimer:
    """Arm the call's single timer, replacing any armed one; fire with `timed_out()`."""

    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    pass


@dataclass(frozen=True)
class Finish:
    outcome: MenuOutcome


Action = Play | StopPlayback | StartTimer | CancelTimer | Finish


class Phase(Enum):
    NOT_STARTED = "not_started"
    PLAYING = "playing"        # a node's prompts play; a digit barges in
    WAITING = "waiting"        # prompts done, the no-input timer runs
    ANNOUNCING = "announcing"  # a choice's `say` plays; the choice is already made
    FINISHED = "finished"


@dataclass(frozen=True)
class SessionState:
    phase: Phase
    node: str
    attempt: int              # misses (invalid or no input) so far at this node
    outcome: MenuOutcome
    visited: frozenset[str]   # nodes whose intro has been played
    serial: int               # of the latest Play
    pending: Choice | None    # what to do once the announcement ends


class MenuSession:
    """One caller's walk through the menu, driven by the call actor.

    Every input returns the actions to carry out, in order. Inputs that make no sense
    in the current phase (a digit after Finish, a stale playback end, an input before
    `start()`) return no actions rather than raise: events race on a live call.
    """

    def __init__(self, definition: MenuDefinition, *, timeout_factor: float = 1.0,
                 entry: str | None = None, relay: bool = False, relay_timeout_factor: float = 1.0) -> None:
        for name, factor in (("timeout_factor", timeout_factor), ("relay_timeout_factor", relay_timeout_factor)):
            if not factor > 0:
                raise ValueError(f"{name} must be positive, not {factor!r}")
        if entry is not None and entry not in definition.entries:
            raise ValueError(f"no menu entry {entry!r}; entries: {sorted(definition.entries)}")
        self._entry = entry
        self._menu = definition
        self._timeout_factor = timeout_factor
        # A relay call (known from the start, or chosen in the menu) gets its
        # timeouts multiplied: every prompt is read out, typed and answered.
        self._relay_factor = relay_timeout_factor
        self._state = SessionState(Phase.NOT_STARTED, definition.start, 0,
                                   replace(definition.defaults, relay=relay), frozenset(), 0, None)

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def finished(self) -> bool:
        return self._state.phase is Phase.FINISHED

    def start(self) -> tuple[Action, ...]:
        if self._state.phase is not Phase.NOT_STARTED:
            return ()
        if self._entry is not None:
            # The entry's prompts lead into its node's menu, so a caller who
            # already knows it can answer during them (DTMF barges in).
            entry = self._menu.entries[self._entry]
            outcome = self._state.outcome
            outcome = replace(outcome, language=entry.language or outcome.language,
                              call_type=entry.call_type or outcome.call_type,
                              priority=outcome.priority if entry.priority is None else entry.priority,
                              relay=outcome.relay or entry.relay, path=(f"entry:{self._entry}",))
            assert entry.goto is not None  # checked when the menu was loaded
            return self._apply(self._enter(replace(self._state, outcome=outcome), entry.goto, entry.say))
        return self._apply(self._enter(self._state, self._menu.start))

    def prompt_finished(self, serial: int | None = None) -> tuple[Action, ...]:
        """The last Play ended. Pass its serial so the end of a stopped one is ignored."""
        state = self._state
        if serial is not None and serial != state.serial:
            return ()
        if state.phase is Phase.PLAYING:
            return self._apply(self._wait(state))
        if state.phase is Phase.ANNOUNCING:
            return self._apply(self._follow(state, state.pending))
        return ()

    def digit(self, d: str) -> tuple[Action, ...]:
        state = self._state
        if state.phase is Phase.PLAYING:
            # DTMF barges in: a caller who knows the menu should not have to hear it out
            state, actions = self._take_digit(state, d)
            return self._apply((state, (StopPlayback(), *actions)))
        if state.phase is Phase.WAITING:
            state, actions = self._take_digit(state, d)
            return self._apply((state, (CancelTimer(), *actions)))
        return ()

    def timed_out(self) -> tuple[Action, ...]:
        state = self._state
        if state.phase is Phase.WAITING:
            return self._apply(self._miss(state, "no_input"))
        if state.phase is Phase.PLAYING:
            # The playback guard fired: the playback's end was lost. Carry on as if it
            # had ended, so a lost event never leaves a caller waiting in silence.
            state, actions = self._wait(state)
            return self._apply((state, (StopPlayback(), *actions)))
        if state.phase is Phase.ANNOUNCING:
            state, actions = self._follow(state, state.pending)
            return self._apply((state, (StopPlayback(), *actions)))
        return ()

    def _apply(self, step: tuple[SessionState, tuple[Action, ...]]) -> tuple[Action, ...]:
        self._state, actions = step
        return actions

    # Each transition below takes a state and returns (next state, actions).

    def _enter(self, state: SessionState, name: str, lead: tuple[str, ...] = ()):
        node = self._menu.nodes[name]
        intro = () if name in state.visited else node.intro
        state = replace(state, node=name, visited=state.visited | {name})
        return self._play(state, Phase.PLAYING, (*lead, *intro, *node.prompts),
                          node.prompt_language)

    def _play(self, state: SessionState, phase: Phase, prompt_ids: tuple[str, ...],
              fixed_language: str | None = None):
        language = fixed_language or self._menu.prompt_languages[state.outcome.language]
        serial = state.serial + 1
        state = replace(state, phase=phase, serial=serial)
        # the guard bounds the wait for a playback end that may never be reported
        return state, (Play(prompt_ids, language, serial),
                       StartTimer(self._menu.playback_guard))

    def _wait(self, state: SessionState):
        node = self._menu.nodes[state.node]
        factor = self._timeout_factor * (self._relay_factor if state.outcome.relay else 1.0)
        return (replace(state, phase=Phase.WAITING), (StartTimer(node.timeout * factor),))

    def _take_digit(self, state: SessionState, d: str):
        state = replace(state, outcome=replace(state.outcome, pressed=True))
        choice = self._menu.nodes[state.node].options.get(d) if isinstance(d, str) else None
        if choice is None:
            return self._miss(state, "invalid")
        return self._choose(state, choice, f"{state.node}:{d}")

    def _miss(self, state: SessionState, reason: str):
        node = self._menu.nodes[state.node]
        if state.attempt < node.retries:
            state = replace(state, attempt=state.attempt + 1)
            lead = node.invalid if reason == "invalid" else ()
            return self._enter(state, node.name, lead)
        # Out of tries: the fallback routes the caller on (to an advocate), never away.
        outcome = replace(state.outcome,
                          no_input=state.outcome.no_input or reason == "no_input")
        return self._choose(replace(state, outcome=outcome), node.fallback,
                            f"{node.name}:{reason}")

    def _choose(self, state: SessionState, choice: Choice, step: str):
        outcome = state.outcome
        outcome = replace(
            outcome,
            language=choice.language or outcome.language,
            call_type=choice.call_type or outcome.call_type,
            priority=outcome.priority if choice.priority is None else choice.priority,
            relay=outcome.relay or choice.relay,
            path=(*outcome.path, step))
        state = replace(state, outcome=outcome, attempt=0)
        if choice.say:
            return self._play(replace(state, pending=choice), Phase.ANNOUNCING, choice.say)
        return self._follow(state, choice)

    def _follow(self, state: SessionState, choice: Choice):
        state = replace(state, pending=None, attempt=0)
        if choice.goto is not None:
            return self._enter(state, choice.goto)
        return replace(state, phase=Phase.FINISHED), (CancelTimer(), Finish(state.outcome))
