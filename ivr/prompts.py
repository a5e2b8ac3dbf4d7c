"""Prompt texts, and the build that turns them into audio Asterisk can play.

`dialplans/prompts/<lang>.toml` maps prompt id -> text (or an array of `{ lang, text }`
parts for bilingual prompts). The build synthesises each prompt with espeak-ng and
converts it with sox to `<out>/<lang>/hotline/<id>.wav`: 8 kHz mono 16-bit signed PCM,
the one layout Asterisk's format_wav reads, so `sound:hotline/<id>` on a channel whose
language is `<lang>` finds it without transcoding.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Prompt language (and part `lang`) -> espeak-ng voice. es-419 is Latin American
# Spanish, closer than Castilian to most of the hotline's Spanish-speaking callers.
VOICES = {"en": "en-us", "es": "es-419"}
# A little slower than espeak's 175 wpm default: callers may be scared, on a bad line,
# or not native speakers.
WORDS_PER_MINUTE = 150
# Output layout and loudness; changing this string rebuilds every prompt.
SOX_OUTPUT = ("-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "wav")
SOX_EFFECTS = ("gain", "-n", "-3")
TOOL_TIMEOUT = 60  # seconds; espeak-ng and sox take well under one per prompt


class PromptError(Exception):
    """A prompt file is invalid, or a prompt could not be built."""


@dataclass(frozen=True)
class PromptPart:
    lang: str
    text: str


@dataclass(frozen=True)
class Prompt:
    language: str  # the directory it is built into
    id: str
    parts: tuple[PromptPart, ...]

    def build_hash(self) -> str:
        # everything that shapes the audio, so a change to any of it rebuilds the file
        recipe = {"voices": [(VOICES[p.lang], p.text) for p in self.parts],
                  "wpm": WORDS_PER_MINUTE, "sox": [*SOX_OUTPUT, *SOX_EFFECTS]}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def load_prompts(prompts_dir: str | Path) -> dict[str, dict[str, Prompt]]:
    """Every `<lang>.toml` in `prompts_dir`, as language -> id -> Prompt."""
    prompts_dir = Path(prompts_dir)
    files = sorted(prompts_dir.glob("*.toml"))
    if not files:
        raise PromptError(f"{prompts_dir}: no <language>.toml prompt files")
    return {path.stem: _load_file(path) for path in files}


def prompt_catalog(prompts: Mapping[str, Mapping[str, Prompt]]) -> dict[str, frozenset[str]]:
    """language -> prompt ids, the shape `ivr.menu.load_menu` checks a menu against."""
    return {language: frozenset(ids) for language, ids in prompts.items()}


def _load_file(path: Path) -> dict[str, Prompt]:
    language = path.stem
    if language not in VOICES:
        raise PromptError(f"{path.name}: no voice for language {language!r} "
                          f"(known: {', '.join(sorted(VOICES))})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PromptError(f"{path.name}: {exc}") from exc
    return {prompt_id: Prompt(language, prompt_id, _parts(path.name, prompt_id, raw, language))
            for prompt_id, raw in data.items()}


def _parts(file: str, prompt_id: str, raw: object, language: str) -> tuple[PromptPart, ...]:
    where = f"{file}: prompt {prompt_id!r}"
    if isinstance(raw, str):
        raw = [{"lang": language, "text": raw}]
    if not isinstance(raw, list) or not raw:
        raise PromptError(f"{where}: must be a text or a non-empty array of {{ lang, text }}")
    parts = []
    for part in raw:
        if not isinstance(part, dict) or set(part) != {"lang", "text"}:
            raise PromptError(f"{where}: each part must be {{ lang = ..., text = ... }}")
        if part["lang"] not in VOICES:
            raise PromptError(f"{where}: no voice for lang {part['lang']!r}")
        if not isinstance(part["text"], str) or not part["text"].strip():
            raise PromptError(f"{where}: text must not be empty")
        parts.append(PromptPart(part["lang"], " ".join(part["text"].split())))
    return tuple(parts)


def build_prompts(prompts_dir: str | Path, out_dir: str | Path, *,
                  espeak: str = "espeak-ng", sox: str = "sox", jobs: int = 2) -> list[Path]:
    """Build every prompt's audio; return the paths of all of them, built or up to date.

    A prompt whose `.hash` sidecar matches its text and voice is skipped, so rebuilding
    after a one-word change costs one synthesis.
    """
    tools = {name: shutil.which(name) for name in (espeak, sox)}
    for name, found in tools.items():
        if found is None:
            raise PromptError(f"{name} not found on PATH: it is needed to build the prompt "
                              "audio (Debian packages espeak-ng and sox)")
    prompts = [p for by_id in load_prompts(prompts_dir).values() for p in by_id.values()]
    out_dir = Path(out_dir)
    # Threads, not asyncio: the work is in the subprocesses, and a plain function can be
    # called from a deploy script or from inside a running event loop alike.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(
            lambda p: _build_one(p, out_dir, tools[espeak], tools[sox]), prompts))
    built = sum(1 for _, was_built in results if was_built)
    log.info("prompt audio: %d built, %d up to date, in %s",
             built, len(results) - built, out_dir)
    return [path for path, _ in results]


def _build_one(prompt: Prompt, out_dir: Path, espeak: str, sox: str) -> tuple[Path, bool]:
    target = out_dir / prompt.language / "hotline" / f"{prompt.id}.wav"
    sidecar = target.with_suffix(".hash")
    digest = prompt.build_hash()
    if target.exists() and sidecar.exists() and sidecar.read_text().strip() == digest:
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hotline-prompt-") as tmp:
        part_files = []
        for index, part in enumerate(prompt.parts):
            part_file = Path(tmp) / f"part{index}.wav"
            # the text goes in on stdin, so a text starting with "-" is never an option
            _run(prompt, [espeak, "-v", VOICES[part.lang], "-s", str(WORDS_PER_MINUTE),
                          "-w", str(part_file), "--stdin"], stdin=part.text)
            part_files.append(str(part_file))
        # written next to the target and renamed, so Asterisk never plays a half file
        partial = target.with_name(f".{target.name}.partial")
        _run(prompt, [sox, *part_files, *SOX_OUTPUT, str(partial), *SOX_EFFECTS])
        os.replace(partial, target)
    sidecar.write_text(digest + "\n")
    return target, True


def _run(prompt: Prompt, command: Sequence[str], stdin: str | None = None) -> None:
    tool = Path(command[0]).name
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, text=True,
                              timeout=TOOL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PromptError(f"{tool} failed for prompt {prompt.language}/{prompt.id}: "
                          f"{exc}") from exc
    if done.returncode != 0:
        raise PromptError(f"{tool} exited {done.returncode} for prompt "
                          f"{prompt.language}/{prompt.id}: {done.stderr.strip()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ivr.prompts",
        description="Build the hotline prompt audio (8 kHz mono 16-bit WAV) for Asterisk.")
    parser.add_argument("prompts_dir", type=Path, help="directory of <language>.toml files")
    parser.add_argument("out_dir", type=Path, help="Asterisk sounds directory to build into")
    parser.add_argument("--jobs", type=int, default=2, help="concurrent syntheses")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    try:
        paths = build_prompts(args.prompts_dir, args.out_dir, jobs=args.jobs)
    except PromptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(paths)} prompts in {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
