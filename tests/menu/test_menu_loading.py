"""Loading dialplans/menu.toml, and the errors a broken menu gets at load time."""

import copy
import re
import tomllib

import pytest

from ivr.menu import CALL_TYPES, LANGUAGES, MenuError, load_menu, parse_menu



@pytest.fixture
def real_menu_data(menu_file) -> dict:
    return tomllib.loads(menu_file.read_text(encoding="utf-8"))


def option(data: dict, node: str, digit: str) -> dict:
    return next(o for o in data["nodes"][node]["options"] if o["digit"] == digit)


def test_real_menu_loads_against_the_real_prompts(menu):
    assert menu.start == "language"
    assert set(menu.nodes) == {"language", "call_type"}
    assert menu.prompt_languages == {"en": "en", "es": "es", "other": "en"}
    assert menu.defaults.language == "en" and menu.defaults.call_type == "other"


def test_every_prompt_the_menu_uses_exists_in_english_and_spanish(menu, catalog):
    used = set().union(*menu.prompt_ids().values())
    assert used >= {"greeting", "language_menu", "call_type_menu", "invalid",
                    "no_input_routing"}
    for language in ("en", "es"):
        assert used <= catalog[language], f"missing in {language}: {used - catalog[language]}"


def test_both_languages_have_the_same_prompt_ids(catalog):
    assert catalog["en"] == catalog["es"]
    assert catalog["en"] >= {"greeting", "language_menu", "call_type_menu", "invalid",
                             "no_input_routing", "connecting", "hold_comfort",
                             "all_busy_fallback", "goodbye_unavailable", "advocate_whisper"}


def test_real_menu_offers_every_call_type_and_language(menu):
    call_types = {c.call_type for c in menu.nodes["call_type"].options.values()}
    languages = {c.language for c in menu.nodes["language"].options.values()}
    assert call_types == CALL_TYPES
    assert languages == LANGUAGES


def test_unknown_goto_names_the_node_and_option(tmp_path, menu_file):
    text = menu_file.read_text(encoding="utf-8").replace(
        '{ digit = "5", call_type = "information", priority = 5, finish = true }',
        '{ digit = "7", call_type = "information", goto = "nowhere" }')
    (tmp_path / "menu.toml").write_text(text, encoding="utf-8")
    with pytest.raises(MenuError) as caught:
        load_menu(tmp_path / "menu.toml")
    assert str(caught.value) == \
        "menu.toml: node 'call_type' option '7': goto 'nowhere' is not a node"


def test_toml_syntax_error_names_the_file(tmp_path):
    (tmp_path / "menu.toml").write_text('start = "language\n', encoding="utf-8")
    with pytest.raises(MenuError, match=r"^menu\.toml: .*line 1"):
        load_menu(tmp_path / "menu.toml")


def _duplicate_digit(d):
    d["nodes"]["call_type"]["options"].append(
        {"digit": "1", "call_type": "tip", "finish": True})


def _missing_fallback(d):
    del d["nodes"]["call_type"]["fallback"]


def _fallback_cycle(d):
    d["nodes"]["call_type"]["fallback"] = {"goto": "language"}


def _goto_and_finish(d):
    option(d, "call_type", "2")["goto"] = "language"


def _unreachable(d):
    d["nodes"]["orphan"] = {"prompts": ["invalid"], "timeout": 3,
                            "options": [{"digit": "1", "finish": True}],
                            "fallback": {"finish": True}}


@pytest.mark.parametrize(("mutate", "message"), [
    (_duplicate_digit, "node 'call_type' option '1': digit is used twice"),
    (lambda d: option(d, "call_type", "4").update(digit="A"),
     "node 'call_type' option 'A': 'digit' must be one of 0-9, * or #"),
    (lambda d: option(d, "call_type", "4").update(digit="12"),
     "node 'call_type' option '12': 'digit' must be one of 0-9, * or #"),
    (lambda d: option(d, "call_type", "4").update(digit=4),
     "node 'call_type' option #4: 'digit' must be one of 0-9, * or #"),
    (lambda d: d["nodes"]["language"].update(timeout=0),
     "node 'language' key 'timeout': must be a positive number of seconds, not 0"),
    (lambda d: d["nodes"]["language"].update(timeout=-2.5),
     "node 'language' key 'timeout': must be a positive number of seconds, not -2.5"),
    (lambda d: d["nodes"]["language"].update(retries=-1),
     "node 'language' key 'retries': must be an integer >= 0"),
    (_missing_fallback, "node 'call_type' key 'fallback': is required"),
    (_fallback_cycle, "node 'call_type' fallback: goto 'language' makes a fallback cycle "
                      "(language -> call_type -> language)"),
    (lambda d: option(d, "call_type", "1").update(call_type="emergency"),
     "node 'call_type' option '1' key 'call_type': 'emergency' is not one of"),
    (lambda d: option(d, "language", "2").update(language="fr"),
     "node 'language' option '2' key 'language': 'fr' is not one of"),
    (lambda d: option(d, "call_type", "1").update(priority=10),
     "node 'call_type' option '1' key 'priority': must be an integer 0-9"),
    (lambda d: d["nodes"]["call_type"].update(retires=3),
     "node 'call_type' key 'retires': unknown key"),
    (_goto_and_finish, "node 'call_type' option '2': needs exactly one of 'goto' or"),
    (lambda d: d["nodes"]["call_type"].update(prompts=[]),
     "node 'call_type' key 'prompts': must be a non-empty array of prompt ids"),
    (lambda d: d["nodes"]["language"].update(prompt_language="fr"),
     "node 'language': prompt_language 'fr' is not one of [languages]"),
    (_unreachable, "node 'orphan': is not reachable from start 'language'"),
    (lambda d: d.update(start="welcome"), "start 'welcome' is not a node"),
    (lambda d: d["languages"].pop("other"), "languages: no prompt language for other"),
    (lambda d: d.update(playback_guard=0), "playback_guard: must be a positive number"),
])
def test_invalid_menu_is_rejected_with_node_and_key(mutate, message, real_menu_data):
    data = copy.deepcopy(real_menu_data)
    mutate(data)
    with pytest.raises(MenuError, match="^" + re.escape("menu.toml: " + message)):
        parse_menu(data, source="menu.toml")


def test_prompt_missing_from_a_language_is_named(catalog, real_menu_data):
    without = {**catalog, "es": catalog["es"] - {"call_type_menu"}}
    with pytest.raises(MenuError) as caught:
        parse_menu(real_menu_data, prompt_catalog=without)
    assert str(caught.value) == \
        "menu.toml: node 'call_type': prompt 'call_type_menu' is missing in language 'es'"


def test_bilingual_prompts_need_only_their_fixed_language(catalog, real_menu_data):
    # the language menu is always played in English (the Spanish line's entry
    # plays the greeting in Spanish, so that one is needed in both)
    without = {**catalog, "es": catalog["es"] - {"language_menu"}}
    parse_menu(real_menu_data, prompt_catalog=without)


def test_option_cycles_are_allowed_since_the_caller_drives_them(real_menu_data):
    data = real_menu_data
    data["nodes"]["call_type"]["options"].append({"digit": "*", "goto": "language"})
    menu = parse_menu(data)
    assert menu.nodes["call_type"].options["*"].goto == "language"


def test_an_entry_must_go_to_a_node(real_menu_data):
    real_menu_data["entries"]["spanish"]["goto"] = "nowhere"
    with pytest.raises(MenuError, match="entry 'spanish': goto 'nowhere' is not a node"):
        parse_menu(real_menu_data)


def test_an_entry_either_goes_to_a_node_or_finishes(real_menu_data):
    real_menu_data["entries"]["direct"] = {"language": "en", "finish": True}
    assert parse_menu(real_menu_data).entries["direct"].goto is None
    real_menu_data["entries"]["direct"] = {"language": "en"}
    with pytest.raises(MenuError, match="entry 'direct': needs exactly one of 'goto' or 'finish = true'"):
        parse_menu(real_menu_data)


def test_a_caller_adopted_in_spanish_goes_on_at_the_spanish_entry(menu):
    assert menu.entry_for_language("es") == "spanish"
    # English is what everyone hears before choosing: no sign they chose it.
    assert menu.entry_for_language("en") is None
    assert menu.entry_for_language("fr") is None


def test_only_an_entry_that_sets_the_language_alone_and_goes_on_takes_an_adopted_caller(real_menu_data):
    spanish = real_menu_data["entries"].pop("spanish")
    real_menu_data["entries"]["es_tip"] = {**spanish, "call_type": "tip"}  # would answer for the caller
    real_menu_data["entries"]["es_direct"] = {"language": "es", "finish": True}  # would skip the menu
    real_menu_data["entries"]["es_relay"] = {**spanish, "relay": True}
    assert parse_menu(real_menu_data).entry_for_language("es") is None
    real_menu_data["entries"]["es_line"] = spanish
    assert parse_menu(real_menu_data).entry_for_language("es") == "es_line"
