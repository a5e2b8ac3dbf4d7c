"""load_settings: one TOML file plus the environment, failing at start with the key named.

Each bad-file test writes a small file to a temporary directory; the real
sandbox and production example files are loaded as they are shipped.
"""

from __future__ import annotations

import hashlib
import traceback
from pathlib import Path

import pytest

from ivr.settings import REPO, Settings, SettingsError, load_settings

SANDBOX_FILE = REPO / "deploy" / "sandbox" / "hotline.toml"
EXAMPLE_FILE = REPO / "deploy" / "hotline.example.toml"

ARI_SECRET = "ari-secret-7f3c9e1b"
HMAC_SECRET = "hmac-secret-2d8a4f60"
REDIS_SECRET = "redis-secret-91be0c55"
SECRETS = (ARI_SECRET, HMAC_SECRET, REDIS_SECRET)

# The smallest file a production engine starts with: both required secrets, real values.
MINIMAL = f"""
[ari]
password = "{ARI_SECRET}"

[redis]
password = "{REDIS_SECRET}"

[privacy]
hmac_key = "{HMAC_SECRET}"
"""


ADVOCATE = '[[advocates]]\nid = "ana"\nname = "Ana"\nendpoint = "PJSIP/1001@carrier"\ntoken_sha256 = "{}"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(text)
    return path


def refusal(path: Path, **overrides) -> SettingsError:
    with pytest.raises(SettingsError) as info:
        load_settings(path, **overrides)
    return info.value


def assert_no_secret_in(text: str, *secrets: str) -> None:
    for secret in secrets or SECRETS:
        assert secret not in text


def shown(error: SettingsError) -> str:
    """What an operator sees: the message and the whole printed traceback."""
    return str(error) + "".join(traceback.format_exception(error))


# -- files that load --------------------------------------------------------------------


def test_sandbox_file_loads_as_a_sandbox_with_its_roster() -> None:
    settings = load_settings(SANDBOX_FILE)

    assert isinstance(settings, Settings)
    assert settings.engine.sandbox is True
    assert settings.ari.password.get_secret_value() == "sandbox-ari-password"
    assert [a.id for a in settings.advocates] == ["ana", "luis", "mei", "sam"]
    assert "supervisor" in next(a for a in settings.advocates if a.id == "sam").roles
    assert settings.lines.entry_for(settings.lines.spanish) == "spanish"
    assert settings.lines.entry_for(settings.lines.toll_free) is None


def test_minimal_file_takes_every_other_value_from_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))

    assert settings.engine.sandbox is False
    assert settings.ari.url == "http://127.0.0.1:8088"
    assert [q.name for q in settings.routing.queues] == ["english", "spanish", "relay"]
    assert settings.routing.relay.menu_timeout_factor == 3
    assert settings.advocates == ()


def test_production_example_loads_once_its_secrets_come_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_hash = hashlib.sha256(b"a-real-bearer-token").hexdigest()
    placeholder = "0" * 64
    example = EXAMPLE_FILE.read_text()
    assert placeholder in example
    path = write(tmp_path, example.replace(placeholder, token_hash))
    monkeypatch.setenv("HOTLINE_ARI__PASSWORD", ARI_SECRET)
    monkeypatch.setenv("HOTLINE_REDIS__PASSWORD", REDIS_SECRET)
    monkeypatch.setenv("HOTLINE_PRIVACY__HMAC_KEY", HMAC_SECRET)

    settings = load_settings(path)

    assert settings.engine.sandbox is False
    assert settings.ari.password.get_secret_value() == ARI_SECRET
    assert settings.redis.password.get_secret_value() == REDIS_SECRET
    assert settings.privacy.hmac_key.get_secret_value() == HMAC_SECRET
    assert settings.advocates[0].token_sha256 == token_hash


# -- the environment --------------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ARI__PASSWORD", "from-the-environment")
    monkeypatch.setenv("HOTLINE_ENGINE__HTTP_PORT", "9191")

    settings = load_settings(write(tmp_path, MINIMAL + '\n[engine]\nhttp_port = 8080\n'))

    assert settings.ari.password.get_secret_value() == "from-the-environment"
    assert settings.engine.http_port == 9191
    # Keys the environment does not name still come from the file.
    assert settings.privacy.hmac_key.get_secret_value() == HMAC_SECRET


def test_environment_supplies_a_secret_the_file_leaves_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ARI__PASSWORD", ARI_SECRET)

    settings = load_settings(write(tmp_path, f'[privacy]\nhmac_key = "{HMAC_SECRET}"\n'))

    assert settings.ari.password.get_secret_value() == ARI_SECRET


def test_bad_environment_value_is_refused_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ENGINE__HTTP_PORT", "not-a-port")

    assert "engine.http_port" in str(refusal(write(tmp_path, MINIMAL)))



def test_environment_override_keeps_the_rest_of_the_files_section(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ARI__PASSWORD", "from-the-environment")

    settings = load_settings(write(tmp_path, _with(MINIMAL, '[ari]\nurl = "http://10.0.0.5:8088"\n')))

    assert settings.ari.password.get_secret_value() == "from-the-environment"
    assert settings.ari.url == "http://10.0.0.5:8088"


def test_misspelt_environment_variable_is_refused_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Otherwise a typo in a unit file would leave the file's value in force unnoticed.
    monkeypatch.setenv("HOTLINE_ARI__PASSWROD", ARI_SECRET)

    error = refusal(write(tmp_path, MINIMAL))

    assert "ari.passwrod" in str(error)
    assert_no_secret_in(shown(error))


@pytest.mark.parametrize(("variable", "named"), [
    # pydantic-settings reads only known sections' variables: these two it would ignore.
    ("HOTLINE_REDS__PASSWORD", "no settings section 'reds'"),
    ("HOTLINE_ENGINE_SANDBOX", "takes two underscores: HOTLINE_ENGINE__SANDBOX"),
    ("hotline_redis_password", "takes two underscores: HOTLINE_REDIS__PASSWORD"),
])
def test_environment_variable_naming_no_section_is_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, named: str) -> None:
    monkeypatch.setenv(variable, REDIS_SECRET)

    error = refusal(write(tmp_path, MINIMAL))

    assert variable in str(error) and named in str(error)
    assert_no_secret_in(shown(error))


def test_hotline_variables_that_are_not_settings_are_left_to_their_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("HOTLINE_CONFIG", "HOTLINE_TOKEN", "HOTLINE_TEST_ARTIFACTS", "HOTLINE_UPDATE_SCREENSHOTS"):
        monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("HOTLINE_ADVOCATES", "[]")  # a whole section in one variable
    monkeypatch.setenv("HOTLINE_ROUTING__WRAP_UP_S", "4")

    settings = load_settings(write(tmp_path, MINIMAL))

    assert settings.routing.wrap_up_s == 4 and settings.advocates == ()

# -- files that do not load -------------------------------------------------------------


def test_missing_file_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    error = refusal(path)

    assert str(path) in str(error) and "not found" in str(error)


def test_invalid_toml_is_refused_without_echoing_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, f'[ari]\npassword = "{ARI_SECRET}\n')  # unterminated string

    error = refusal(path)

    assert "not valid TOML" in str(error)
    assert_no_secret_in(shown(error))


@pytest.mark.parametrize("extra, key", [
    ('[ari]\npasswrod = "x"\n', "ari.passwrod"),
    ('[enigne]\nsandbox = true\n', "enigne"),
    ('[routing]\nwrap_up = 5\n', "routing.wrap_up"),
])
def test_unknown_key_is_refused_naming_it(tmp_path: Path, extra: str, key: str) -> None:
    error = refusal(write(tmp_path, _with(MINIMAL, extra)))

    assert key in str(error)
    assert_no_secret_in(shown(error))


@pytest.mark.parametrize("extra, key", [
    ('[engine]\nhttp_port = "eighty"\n', "engine.http_port"),
    ('[engine]\nsandbox = "perhaps"\n', "engine.sandbox"),
    ('[routing]\nwrap_up_s = -1\n', "routing.wrap_up_s"),
    ('[engine]\nlog_level = "LOUD"\n', "engine.log_level"),
    ('[api]\ntrusted_proxies = ["proxy.example"]\n', "api.trusted_proxies"),
    ('[api]\nbad_tokens_max = 0\n', "api.bad_tokens_max"),
    ('[[advocates]]\nid = "a1"\nname = "A"\nendpoint = "PJSIP/a1"\ntoken_sha256 = "abc"\n',
     "advocates.0.token_sha256"),
    # Accepted once, and wrong at run time.
    ('[routing]\nadvocate_ring_s = inf\n', "routing.advocate_ring_s"),
    ('[routing.relay]\nmenu_timeout_factor = 1e9\n', "routing.relay.menu_timeout_factor"),
    ('[lines]\nbackup_destination = ""\n', "lines.backup_destination"),
    ('[lines]\nspanish = "18883737888"\n', "spanish: is the toll_free line too"),
    ('[lines.entries]\n18883737888 = "direct"\n', "entries: 18883737888 is the toll_free line too"),
    ('[routing.relay]\ndids = ["18883737888"]\n', "routing.relay.dids: 18883737888 is a main line"),
    (ADVOCATE.format("1" * 64).replace('token_sha256', 'skills = ["en,es"]\ntoken_sha256'), "advocates.0.skills"),
    (ADVOCATE.format("1" * 64).replace('token_sha256', 'roles = ["supervisors"]\ntoken_sha256'),
     "advocates.0.roles"),
    (ADVOCATE.format("1" * 64).replace('"PJSIP/1001@carrier"', '""'), "advocates.0.endpoint"),
    (ADVOCATE.format("1" * 64) + ADVOCATE.format("1" * 64).replace('"ana"', '"luis"'),
     "advocates[1].token_sha256: the same token as advocates[0]"),
])
def test_wrong_type_or_value_is_refused_naming_the_key(tmp_path: Path, extra: str, key: str) -> None:
    error = refusal(write(tmp_path, _with(MINIMAL, extra)))

    assert key in str(error)
    assert_no_secret_in(shown(error))


@pytest.mark.parametrize("section, url", [
    ("ari", "ftp://127.0.0.1:8088"),
    ("ari", "127.0.0.1:8088"),
    ("redis", "http://127.0.0.1:6379/0"),
])
def test_bad_url_is_refused_naming_the_key(tmp_path: Path, section: str, url: str) -> None:
    error = refusal(write(tmp_path, MINIMAL), **{section: {"url": url}})

    assert f"{section}.url" in str(error)
    assert "must start with" in str(error)


@pytest.mark.parametrize("missing", ["ari.password", "privacy.hmac_key"])
def test_missing_required_key_is_refused_naming_it(tmp_path: Path, missing: str) -> None:
    section, key = missing.split(".")
    text = MINIMAL.replace(f'{key} = "', f'# {key} = "')
    assert text != MINIMAL

    error = refusal(write(tmp_path, text))

    assert missing in str(error)
    assert "required" in str(error).lower()


def test_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    # A number where a string belongs: pydantic would quote the input by default.
    error = refusal(write(tmp_path, MINIMAL.replace(f'"{ARI_SECRET}"', "918273645")))

    assert "ari.password" in str(error)
    assert "918273645" not in shown(error)


# -- sample passwords -------------------------------------------------------------------


def test_production_example_as_shipped_is_refused_for_its_sample_password() -> None:
    error = refusal(EXAMPLE_FILE)

    assert "ari.password" in str(error) and "sample password" in str(error)
    assert "change-me" not in str(error)


@pytest.mark.parametrize("key", ["ari.password", "redis.password", "privacy.hmac_key"])
@pytest.mark.parametrize("sample", ["change-me", "sandbox-ari-password", "sandbox-hmac-key"])
def test_sample_password_is_refused_outside_the_sandbox(tmp_path: Path, key: str, sample: str) -> None:
    section, name = key.split(".")

    error = refusal(write(tmp_path, MINIMAL), **{section: {name: sample}})

    assert key in str(error) and "sample password" in str(error)
    assert sample not in shown(error)


def test_sample_password_is_accepted_in_the_sandbox(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL), engine={"sandbox": True}, ari={"password": "change-me"})

    assert settings.ari.password.get_secret_value() == "change-me"


def test_sandbox_file_with_sandbox_turned_off_by_the_environment_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ENGINE__SANDBOX", "false")

    error = refusal(SANDBOX_FILE)

    assert "sample password" in str(error)
    assert "sandbox-ari-password" not in shown(error)


# -- secrets stay hidden ----------------------------------------------------------------


def test_repr_and_str_of_settings_hide_every_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))

    assert_no_secret_in(repr(settings))
    assert_no_secret_in(str(settings))
    assert_no_secret_in(repr(settings.ari) + repr(settings.redis) + repr(settings.privacy))


def test_repr_of_sandbox_settings_hides_interpreter_pins() -> None:
    settings = load_settings(SANDBOX_FILE)
    pins = [p.pin.get_secret_value() for p in settings.interpreters.providers]
    assert pins

    text = repr(settings)

    for pin in pins:
        assert f"'{pin}'" not in text


def _with(base: str, extra: str) -> str:
    """`base` plus `extra`, merging a section `extra` repeats (TOML forbids two [ari])."""
    header = extra.splitlines()[0]
    if header.startswith("[") and not header.startswith("[[") and header in base:
        return base.replace(header, extra.rstrip("\n"), 1)
    return base + "\n" + extra


# -- the roster -------------------------------------------------------------------------



@pytest.mark.parametrize("sandbox", [False, True])
def test_duplicate_advocate_ids_are_refused_in_and_out_of_the_sandbox(tmp_path: Path, sandbox: bool) -> None:
    # Two roster entries share one Redis record: the second would silently
    # replace the first advocate's endpoint and token.
    text = MINIMAL + ADVOCATE.format("1" * 64) + ADVOCATE.format("2" * 64)

    error = refusal(write(tmp_path, text), engine={"sandbox": sandbox})

    assert "advocates" in str(error) and "duplicate" in str(error)


# -- a mistake next to a secret ---------------------------------------------------------

PIN_SECRET = "40963217"
PROVIDER = (f'[[interpreters.providers]]\nname = "primary"\ndial_string = "PJSIP/1800@carrier"\n'
            f'account = "4321"\npin = "{PIN_SECRET}"\nlanguages = {{ spa = "11" }}\n')


@pytest.mark.parametrize("extra, key", [
    ('[ari]\nurl = "ftp://127.0.0.1:8088"\n', "ari.url"),
    ('[ari]\nrequest_timeout_s = "soon"\n', "ari.request_timeout_s"),
    ('[redis]\nurl = "http://127.0.0.1:6379/0"\n', "redis.url"),
    ('[redis]\nkey_prefx = "hl:"\n', "redis.key_prefx"),
    ('[privacy]\nhmac_kye = "x"\n', "privacy.hmac_kye"),
    (PROVIDER.replace('account = "4321"', 'account = "43a1"'), "interpreters.providers.0.account"),
    (PROVIDER.replace('pin = "', 'connect_timeout_s = -1\npin = "'), "interpreters.providers.0.connect_timeout_s"),
    (PROVIDER.replace(f'pin = "{PIN_SECRET}"', f'pin = "{PIN_SECRET}x"'), "interpreters.providers.0.pin"),
])
def test_an_error_beside_a_secret_names_the_key_and_shows_no_secret(tmp_path: Path, extra: str, key: str) -> None:
    error = refusal(write(tmp_path, _with(MINIMAL, extra)))

    assert key in str(error)
    assert_no_secret_in(shown(error), *SECRETS, PIN_SECRET)


def test_an_ari_url_with_credentials_is_refused_without_showing_them(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, MINIMAL), ari={"url": f"http://hotline:{ARI_SECRET}x@127.0.0.1:8088"})

    assert "ari.url" in str(error) and "ari.password" in str(error)
    assert_no_secret_in(shown(error))


@pytest.mark.parametrize("pin", ["9876", "1212"])
def test_a_sandbox_interpreter_pin_is_refused_outside_the_sandbox(tmp_path: Path, pin: str) -> None:
    error = refusal(write(tmp_path, MINIMAL + PROVIDER.replace(PIN_SECRET, pin)))

    assert "interpreters.providers[0].pin" in str(error) and "sample password" in str(error)
    assert f"'{pin}'" not in shown(error) and f'"{pin}"' not in shown(error)


def test_a_line_can_enter_the_menu_at_any_entry() -> None:
    settings = load_settings(SANDBOX_FILE, lines={"entries": {"18883737998": "direct"}})

    assert settings.lines.entry_for("18883737998") == "direct"
    assert settings.lines.entry_for(settings.lines.spanish) == "spanish"


async def test_a_line_entering_an_entry_the_menu_lacks_stops_the_engine_at_start() -> None:
    from ivr.app import running_engine

    settings = load_settings(SANDBOX_FILE, lines={"entries": {"18883737998": "nowhere"}})
    with pytest.raises(SettingsError, match="lines.entries: no entry nowhere in the menu"):
        async with running_engine(settings):
            pass


def test_a_step_the_maximum_wait_comes_before_is_allowed_and_named() -> None:
    queues = [{"name": "english", "skills": ["en"], "languages": ["en", "other"], "max_wait_s": 40},
              {"name": "relay", "skills": ["relay"], "max_wait_s": 900}]
    settings = load_settings(SANDBOX_FILE, routing={"queues": queues, "relay": {"skilled_only_s": 900}})

    assert settings.routing.unreachable_steps() == [
        ("routing.crisis.escalate_after_s (45) is not below queue english's max_wait_s (40): its crisis calls go "
         "to the backup destination without ringing a supervisor"),
        ("routing.relay.skilled_only_s (900) is not below the relay queue's max_wait_s (900): relay calls never "
         "reach the language queues")]
    assert load_settings(SANDBOX_FILE).routing.unreachable_steps() == []


async def test_a_spanish_line_without_its_menu_entry_stops_the_engine_at_start(tmp_path: Path) -> None:
    from ivr.app import running_engine

    menu = tmp_path / "menu.toml"
    menu.write_text((REPO / "dialplans" / "menu.toml").read_text().replace("[entries.spanish]", "[entries.unused]"))
    settings = load_settings(SANDBOX_FILE, menu={"path": str(menu)})
    with pytest.raises(SettingsError, match=r"lines.spanish: the menu .* has no \[entries.spanish\]"):
        async with running_engine(settings):
            pass


async def test_a_menu_language_no_queue_takes_stops_the_engine_at_start() -> None:
    from ivr.app import running_engine

    settings = load_settings(SANDBOX_FILE)
    queues = [q.model_copy(update={"languages": q.languages - {"es"}}) for q in settings.routing.queues]
    settings = settings.model_copy(update={"routing": settings.routing.model_copy(update={"queues": tuple(queues)})})
    with pytest.raises(SettingsError, match="routing.queues: no queue lists the menu's language 'es'"):
        async with running_engine(settings):
            pass


async def test_an_invalid_menu_stops_the_engine_with_its_message_not_a_traceback(tmp_path: Path) -> None:
    from ivr.app import running_engine

    menu = tmp_path / "menu.toml"
    menu.write_text((REPO / "dialplans" / "menu.toml").read_text().replace("timeout = 5", "timeout = -5", 1))
    with pytest.raises(SettingsError, match="node 'language' key 'timeout'"):
        async with running_engine(load_settings(SANDBOX_FILE, menu={"path": str(menu)})):
            pass


def test_an_environment_value_that_is_not_json_is_refused_naming_the_field(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_ROUTING__QUEUES", "notjson")
    error = refusal(SANDBOX_FILE)
    assert 'field "routing"' in str(error) and "must be JSON" in str(error)


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: p.write_bytes(b"\xff\xfe[ari]")])
def test_a_settings_file_that_cannot_be_read_is_refused_naming_it(tmp_path: Path, make) -> None:
    path = tmp_path / "hotline.toml"
    make(path)
    assert "cannot be read" in str(refusal(path))
