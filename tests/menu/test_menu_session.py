"""MenuSession behaviour on the real menu: what the call actor is told to do."""

import pytest

from ivr.menu import (CancelTimer, Finish, MenuOutcome, MenuSession, Play, StartTimer,
                      StopPlayback)


def plays(actions) -> list[Play]:
    return [a for a in actions if isinstance(a, Play)]


def finish(actions) -> MenuOutcome | None:
    found = [a.outcome for a in actions if isinstance(a, Finish)]
    assert len(found) <= 1
    return found[0] if found else None


def at_call_type_menu(session: MenuSession, digit: str = "1"):
    session.start()
    return session.digit(digit)


def test_start_plays_greeting_then_language_menu_in_english(menu):
    actions = MenuSession(menu).start()
    assert actions == (Play(("greeting", "language_menu"), "en", 1),
                       StartTimer(menu.playback_guard))


def test_no_input_timer_starts_only_when_the_prompt_has_finished(menu):
    session = MenuSession(menu)
    session.start()
    assert session.prompt_finished() == (StartTimer(5.0),)


def test_timeout_factor_scales_the_no_input_timer(menu):
    session = MenuSession(menu, timeout_factor=2.5)
    session.start()
    assert session.prompt_finished() == (StartTimer(12.5),)


def test_timeout_factor_must_be_positive(menu):
    with pytest.raises(ValueError, match="timeout_factor"):
        MenuSession(menu, timeout_factor=0)


def test_digit_barges_in_and_stops_playback(menu):
    session = MenuSession(menu)
    session.start()  # greeting still playing
    actions = session.digit("1")
    assert actions[0] == StopPlayback()
    assert plays(actions) == [Play(("call_type_menu",), "en", 2)]


def test_digit_after_the_prompt_cancels_the_no_input_timer(menu):
    session = MenuSession(menu)
    session.start()
    session.prompt_finished()
    actions = session.digit("2")
    assert actions[0] == CancelTimer()
    assert StopPlayback() not in actions


def test_spanish_choice_plays_call_type_menu_in_spanish(menu):
    actions = at_call_type_menu(MenuSession(menu), "2")
    assert [(p.prompt_ids, p.language) for p in plays(actions)] == \
        [(("call_type_menu",), "es")]


def test_other_language_callers_are_routed_in_english_with_language_other(menu):
    session = MenuSession(menu)
    assert plays(at_call_type_menu(session, "3"))[0].language == "en"
    outcome = finish(session.digit("5"))
    assert (outcome.language, outcome.call_type) == ("other", "information")


def test_crisis_choice_gets_highest_priority(menu):
    session = MenuSession(menu)
    at_call_type_menu(session, "2")
    outcome = finish(session.digit("1"))
    assert outcome == MenuOutcome(language="es", call_type="crisis", priority=9,
                                  path=("language:2", "call_type:1"), no_input=False, pressed=True)
    assert outcome.priority == max(c.priority for c in menu.nodes["call_type"].options.values())


@pytest.mark.parametrize(("digit", "call_type"), [
    ("2", "tip"), ("3", "referral"), ("4", "training"), ("5", "information"),
    ("0", "other"), ("9", "other")])
def test_other_call_types_get_normal_priority(menu, digit, call_type):
    session = MenuSession(menu)
    at_call_type_menu(session)
    outcome = finish(session.digit(digit))
    assert (outcome.call_type, outcome.priority) == (call_type, 5)


def test_invalid_digit_is_retried_with_the_invalid_prompt(menu):
    session = MenuSession(menu)
    at_call_type_menu(session, "2")
    session.prompt_finished()
    actions = session.digit("7")
    assert actions[0] == CancelTimer()
    assert [(p.prompt_ids, p.language) for p in plays(actions)] == \
        [(("invalid", "call_type_menu"), "es")]
    assert finish(actions) is None


def test_greeting_is_played_only_once(menu):
    session = MenuSession(menu)
    session.start()
    session.prompt_finished()
    assert plays(session.timed_out())[0].prompt_ids == ("language_menu",)
    assert plays(session.digit("#"))[0].prompt_ids == ("invalid", "language_menu")


def test_no_input_never_hangs_up_and_routes_to_an_advocate(menu):
    session = MenuSession(menu)
    actions = list(session.start())
    for _ in range(50):  # the caller stays silent; every playback ends normally
        if session.finished:
            break
        actions += session.prompt_finished() if session.state.phase.value in (
            "playing", "announcing") else session.timed_out()
    outcome = finish(actions)
    assert outcome == MenuOutcome(language="en", call_type="other", priority=5,
                                  path=("language:no_input", "call_type:no_input"),
                                  no_input=True)
    # the caller is told they are being connected, never told goodbye
    said = [i for p in plays(actions) for i in p.prompt_ids]
    assert said[-1] == "no_input_routing"
    assert "goodbye_unavailable" not in said
    # three tries per menu: the first and two retries
    assert said.count("language_menu") == 3 and said.count("call_type_menu") == 3


def test_invalid_digits_until_out_of_tries_route_to_an_advocate(menu):
    session = MenuSession(menu)
    at_call_type_menu(session, "1")
    actions = session.digit("8") + session.digit("8") + session.digit("8")
    assert finish(actions) is None
    assert plays(actions)[-1].prompt_ids == ("no_input_routing",)
    outcome = finish(session.prompt_finished())
    assert (outcome.call_type, outcome.no_input, outcome.path) == \
        ("other", False, ("language:1", "call_type:invalid"))


def test_silent_at_language_menu_then_choosing_keeps_no_input_flag(menu):
    session = MenuSession(menu)
    session.start()
    for _ in range(3):
        session.prompt_finished()
        actions = session.timed_out()
    assert plays(actions)[0] == Play(("call_type_menu",), "en", 4)
    outcome = finish(session.digit("1"))
    assert outcome.path == ("language:no_input", "call_type:1")
    assert outcome.no_input and outcome.call_type == "crisis"


def test_digits_after_finish_are_ignored(menu):
    session = MenuSession(menu)
    at_call_type_menu(session)
    assert finish(session.digit("4"))
    for late in (lambda: session.digit("1"), session.timed_out, session.prompt_finished,
                 session.start):
        assert late() == ()


def test_inputs_before_start_are_ignored(menu):
    session = MenuSession(menu)
    assert session.digit("1") == session.timed_out() == session.prompt_finished() == ()
    assert plays(session.start())[0].prompt_ids == ("greeting", "language_menu")


def test_end_of_a_stopped_playback_is_ignored(menu):
    session = MenuSession(menu)
    stopped = plays(session.start())[0]
    current = plays(session.digit("1"))[0]
    assert session.prompt_finished(stopped.serial) == ()  # late event of the barged prompt
    assert session.prompt_finished(current.serial) == (StartTimer(6.0),)


def test_lost_playback_end_is_covered_by_the_playback_guard(menu):
    session = MenuSession(menu)
    session.start()
    # no prompt_finished ever comes; the guard timer fires instead
    assert session.timed_out() == (StopPlayback(), StartTimer(5.0))


def test_digit_during_the_closing_announcement_is_ignored(menu):
    session = MenuSession(menu)
    at_call_type_menu(session)
    for _ in range(3):
        session.digit("*")
    assert session.digit("1") == ()
    assert finish(session.prompt_finished()).call_type == "other"


@pytest.mark.parametrize("bad", ["12", "", "A", "D", " "])
def test_multi_character_or_non_dtmf_input_counts_as_invalid(menu, bad):
    session = MenuSession(menu)
    session.start()
    assert plays(session.digit(bad))[0].prompt_ids == ("invalid", "language_menu")


def test_spanish_line_starts_in_spanish_at_the_call_type_menu(menu):
    session = MenuSession(menu, entry="spanish")
    (play, _guard) = session.start()
    assert play == Play(("greeting", "call_type_menu"), "es", play.serial)
    # the caller may answer during the greeting: DTMF barges in
    finish = [a for a in session.digit("3") if isinstance(a, Finish)]
    assert finish and finish[0].outcome.language == "es" and finish[0].outcome.call_type == "referral"
    assert finish[0].outcome.path == ("entry:spanish", "call_type:3")


# -- relay calls (TRS/711) and silent callers ----------------------------------------------

RELAY_FACTOR = 3.0


def wait_of(actions) -> float:
    timers = [a.seconds for a in actions if isinstance(a, StartTimer)]
    assert len(timers) == 1, actions
    return timers[0]


def stay_silent(session: MenuSession, actions=()) -> MenuOutcome:
    """Let every prompt play out and every no-input timer fire until the menu finishes."""
    actions = list(actions)
    for _ in range(50):
        if session.finished:
            break
        actions += session.prompt_finished() if session.state.phase.value in (
            "playing", "announcing") else session.timed_out()
    return finish(actions)


def test_relay_choice_multiplies_every_later_timeout(menu):
    session = MenuSession(menu, relay_timeout_factor=RELAY_FACTOR)
    session.start()
    assert wait_of(session.prompt_finished()) == menu.nodes["language"].timeout  # not relay yet
    session.digit("4")
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout * RELAY_FACTOR
    session.digit("7")  # invalid: the menu again, still at relay speed
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout * RELAY_FACTOR
    outcome = finish(session.digit("2"))
    assert (outcome.relay, outcome.language, outcome.call_type) == (True, "en", "tip")


def test_relay_factor_compounds_with_the_timeout_factor(menu):
    session = MenuSession(menu, timeout_factor=2.0, relay_timeout_factor=RELAY_FACTOR)
    session.start()
    session.digit("4")
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout * 2.0 * RELAY_FACTOR


@pytest.mark.parametrize("digit", ["1", "2", "3"])
def test_other_language_choices_are_not_relay_and_keep_normal_timeouts(menu, digit):
    session = MenuSession(menu, relay_timeout_factor=RELAY_FACTOR)
    session.start()
    session.digit(digit)
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout
    assert finish(session.digit("2")).relay is False


def test_session_started_as_relay_multiplies_from_the_first_wait(menu):
    session = MenuSession(menu, relay=True, relay_timeout_factor=RELAY_FACTOR)
    session.start()
    assert wait_of(session.prompt_finished()) == menu.nodes["language"].timeout * RELAY_FACTOR
    session.digit("1")  # choosing a language does not undo what the line said
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout * RELAY_FACTOR
    assert finish(session.digit("1")).relay is True


def test_relay_timeout_factor_must_be_positive(menu):
    with pytest.raises(ValueError, match="relay_timeout_factor"):
        MenuSession(menu, relay_timeout_factor=0)


def test_relay_entry_skips_the_language_menu(menu):
    session = MenuSession(menu, entry="relay", relay_timeout_factor=RELAY_FACTOR)
    (play, _guard) = session.start()
    assert play.prompt_ids == (*menu.entries["relay"].say, *menu.nodes["call_type"].prompts)
    assert "language_menu" not in play.prompt_ids
    assert wait_of(session.prompt_finished()) == menu.nodes["call_type"].timeout * RELAY_FACTOR
    outcome = finish(session.digit("1"))
    assert (outcome.relay, outcome.call_type, outcome.priority) == (True, "crisis", 9)
    assert outcome.path == ("entry:relay", "call_type:1")


def test_caller_who_pressed_nothing_at_all_is_silent(menu):
    session = MenuSession(menu)
    outcome = stay_silent(session, session.start())
    assert outcome.no_input and outcome.silent


def test_silent_caller_on_the_relay_line_is_silent(menu):
    session = MenuSession(menu, entry="relay")
    outcome = stay_silent(session, session.start())
    assert outcome.silent and outcome.relay


def test_caller_who_chose_then_fell_silent_is_not_silent(menu):
    session = MenuSession(menu)
    session.start()
    session.digit("1")
    outcome = stay_silent(session)
    assert outcome.no_input and not outcome.silent


def test_caller_who_was_silent_then_chose_is_not_silent(menu):
    session = MenuSession(menu)
    session.start()
    for _ in range(menu.nodes["language"].retries + 1):
        session.prompt_finished()
        session.timed_out()
    outcome = finish(session.digit("2"))
    assert outcome.no_input and not outcome.silent


def test_caller_out_of_tries_on_invalid_digits_is_not_silent(menu):
    session = MenuSession(menu)
    at_call_type_menu(session)
    for _ in range(menu.nodes["call_type"].retries + 1):
        session.digit("8")
    assert not stay_silent(session).silent


def test_caller_who_pressed_an_invalid_digit_then_fell_silent_is_not_silent(menu):
    session = MenuSession(menu)
    session.start()
    session.digit("7")  # someone with a keypad is on the line
    outcome = stay_silent(session)
    assert outcome.no_input and not outcome.silent
