"""No ``asyncio.wait_for`` in the engine's code.

On Python 3.11 ``wait_for`` returns the awaited result when its task is
cancelled in the turn that result arrives, and the cancel is lost: a task
that should have ended goes on acting on calls (routing.connection and
ivr.ari.socket_requests say where that bit). ``async with asyncio.timeout``
delivers it.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _wait_fors(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), str(path))
    return [node.lineno for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "wait_for"
            and isinstance(node.value, ast.Name) and node.value.id == "asyncio"]


def test_the_engine_s_code_bounds_its_waits_with_asyncio_timeout() -> None:
    files = [p for package in ("ivr", "routing", "metrics") for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20
    found = [f"{p.relative_to(ROOT)}:{line}" for p in files for line in _wait_fors(p)]
    assert not found, found


def test_the_check_finds_a_wait_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nasync def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n")
    assert _wait_fors(sample) == [3]
