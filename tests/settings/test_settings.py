"""Settings: one TOML file plus the environment; a bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.settings import REPO, SettingsError, load_settings

SANDBOX = REPO / "deploy" / "sandbox" / "hotline.toml"
EXAMPLE = REPO / "deploy" / "hotline.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hotline.toml"
    path.write_text(text)
    return path


MINIMAL = '[ari]\npassword = "a-real-secret"\n[privacy]\nhmac_key = "another-real-secret"\n'


def test_the_sandbox_settings_load():
    settings = load_settings(SANDBOX)
    assert settings.engine.sandbox and len(settings.advocates) == 4
    assert settings.lines.entry_for("18883737889") == "spanish"


@pytest.mark.parametrize("text, key, problem", [
    ("[ari]\n", "ari.password", "Field required"),
    (MINIMAL + "[engine]\nhttp_port = 'eighty'\n", "engine.http_port", "valid integer"),
    (MINIMAL + "[engine]\ncolour = 'red'\n", "engine.colour", "Extra inputs"),
    (MINIMAL.replace('[ari]\n', '[ari]\nurl = "ftp://x"\n'), "ari.url", "http://"),
    (MINIMAL + "[routing]\nadvocate_ring_s = -1\n", "routing.advocate_ring_s", "greater than 0"),
    (MINIMAL + "[engine]\nlog_level = 'LOUD'\n", "engine.log_level", "one of"),
])
def test_a_bad_value_is_refused_naming_the_key(tmp_path, text, key, problem):
    with pytest.raises(SettingsError) as error:
        load_settings(write(tmp_path, text))
    assert key in str(error.value) and problem in str(error.value)


def test_a_missing_file_and_bad_toml_say_so(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nowhere.toml")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(write(tmp_path, "[ari\n"))


def test_the_environment_wins_over_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOTLINE_ARI__PASSWORD", "from-the-environment")
    monkeypatch.setenv("HOTLINE_ROUTING__WRAP_UP_S", "45")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.ari.password.get_secret_value() == "from-the-environment"
    assert settings.routing.wrap_up_s == 45


def test_sample_passwords_are_refused_outside_the_sandbox(monkeypatch):
    with pytest.raises(SettingsError, match="ari.password: is a sample password"):
        load_settings(EXAMPLE)
    for name in ("ARI__PASSWORD", "REDIS__PASSWORD", "PRIVACY__HMAC_KEY"):
        monkeypatch.setenv(f"HOTLINE_{name}", f"real-{name.lower()}-value")
    assert not load_settings(EXAMPLE).engine.sandbox


def test_secrets_never_show_in_errors_or_repr(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL))
    assert "a-real-secret" not in repr(settings) and "another-real-secret" not in repr(settings)
    with pytest.raises(SettingsError) as error:
        load_settings(write(tmp_path, MINIMAL + "[engine]\nhttp_port = 'x'\n"))
    assert "a-real-secret" not in str(error.value)
