"""Fixtures for the settings tests: an environment without HOTLINE_* variables.

load_settings reads the environment, so a variable left in a developer's
shell (or by another test) would silently change what these tests load.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HOTLINE_"):
            monkeypatch.delenv(name)
