"""The prompt audio build, run for real with espeak-ng and sox into a temporary dir."""

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from ivr.prompts import PromptError, build_prompts, load_prompts


def audio(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getcomptype() == "NONE"  # plain PCM, what format_wav reads
        return (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(),
                wav.getnframes() / wav.getframerate())


def mtimes(paths) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


@pytest.fixture(scope="module")
def built(prompts_dir, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("sounds")
    return out, build_prompts(prompts_dir, out)


@pytest.fixture
def small_prompts(tmp_path) -> Path:
    directory = tmp_path / "prompts"
    directory.mkdir()
    (directory / "en.toml").write_text('invalid = "Sorry, that is not a valid choice."\n'
                                       'connecting = "Please hold."\n', encoding="utf-8")
    (directory / "es.toml").write_text('invalid = "Lo sentimos, esa opción no es válida."\n'
                                       'connecting = "Por favor, espere."\n', encoding="utf-8")
    return directory


def test_every_prompt_is_built_per_language_into_hotline_dir(built, prompts_dir):
    out, paths = built
    expected = {out / language / "hotline" / f"{prompt_id}.wav"
                for language, prompts in load_prompts(prompts_dir).items()
                for prompt_id in prompts}
    assert set(paths) == expected
    assert {p.parent.parent.name for p in paths} == {"en", "es"}


def test_prompt_audio_is_8khz_mono_16bit_with_a_plausible_duration(built, prompts_dir):
    out, paths = built
    prompts = load_prompts(prompts_dir)
    for path in paths:
        rate, channels, width, seconds = audio(path)
        assert (rate, channels, width) == (8000, 1, 2), path
        characters = sum(len(p.text) for p in prompts[path.parent.parent.name][path.stem].parts)
        # espeak at 150 wpm speaks about 14 characters a second
        assert characters / 30 < seconds < characters / 6, (path, seconds)
        assert seconds > 0.5


def test_second_build_is_skipped(built, prompts_dir):
    out, paths = built
    before = mtimes(paths)
    assert build_prompts(prompts_dir, out) == paths
    assert mtimes(paths) == before


def test_changing_one_text_rebuilds_only_that_prompt(small_prompts, tmp_path):
    out = tmp_path / "sounds"
    paths = build_prompts(small_prompts, out, jobs=2)
    assert len(paths) == 4
    before = mtimes(paths)
    en = small_prompts / "en.toml"
    en.write_text(en.read_text(encoding="utf-8").replace("Please hold.", "Please hold on."),
                  encoding="utf-8")
    after = mtimes(build_prompts(small_prompts, out))
    changed = {p for p in paths if after[p] != before[p]}
    assert changed == {out / "en" / "hotline" / "connecting.wav"}


def test_deleted_audio_is_rebuilt_even_with_its_hash_left(small_prompts, tmp_path):
    out = tmp_path / "sounds"
    target = out / "es" / "hotline" / "invalid.wav"
    build_prompts(small_prompts, out)
    target.unlink()
    build_prompts(small_prompts, out)
    assert audio(target)[:3] == (8000, 1, 2)


def test_missing_tool_is_named(small_prompts, tmp_path):
    with pytest.raises(PromptError, match="espeak-ng-not-installed not found on PATH"):
        build_prompts(small_prompts, tmp_path, espeak="espeak-ng-not-installed")
    with pytest.raises(PromptError, match="sox-not-installed not found on PATH"):
        build_prompts(small_prompts, tmp_path, sox="sox-not-installed")
    assert not any(tmp_path.rglob("*.wav"))


@pytest.mark.parametrize(("text", "message"), [
    ('greeting = ""', "es.toml: prompt 'greeting': text must not be empty"),
    ('greeting = 3', "es.toml: prompt 'greeting': must be a text or a non-empty array"),
    ('greeting = [{ lang = "fr", text = "Bonjour" }]',
     "es.toml: prompt 'greeting': no voice for lang 'fr'"),
    ('greeting = "unterminated', "es.toml: "),
])
def test_invalid_prompt_file_names_the_file_and_prompt(small_prompts, text, message):
    (small_prompts / "es.toml").write_text(text + "\n", encoding="utf-8")
    with pytest.raises(PromptError, match="^" + message.replace("[", r"\[")):
        load_prompts(small_prompts)


def test_prompt_file_for_a_language_without_a_voice_is_rejected(small_prompts):
    (small_prompts / "xx.toml").write_text('invalid = "?"\n', encoding="utf-8")
    with pytest.raises(PromptError, match="xx.toml: no voice for language 'xx'"):
        load_prompts(small_prompts)


def test_command_line_entry_point_builds(small_prompts, tmp_path):
    out = tmp_path / "sounds"
    done = subprocess.run([sys.executable, "-m", "ivr.prompts", str(small_prompts), str(out)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "4 prompts" in done.stdout
    assert audio(out / "en" / "hotline" / "connecting.wav")[:3] == (8000, 1, 2)
