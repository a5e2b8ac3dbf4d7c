"""Fixtures for the menu and prompt tests: the real menu and prompts from dialplans/."""

from pathlib import Path

import pytest

from ivr.menu import MenuDefinition, load_menu
from ivr.prompts import load_prompts, prompt_catalog

DIALPLANS = Path(__file__).resolve().parents[2] / "dialplans"
MENU_FILE = DIALPLANS / "menu.toml"
PROMPTS_DIR = DIALPLANS / "prompts"


@pytest.fixture(scope="session")
def menu_file() -> Path:
    return MENU_FILE


@pytest.fixture(scope="session")
def prompts_dir() -> Path:
    return PROMPTS_DIR


@pytest.fixture(scope="session")
def catalog() -> dict[str, frozenset[str]]:
    return prompt_catalog(load_prompts(PROMPTS_DIR))


@pytest.fixture(scope="session")
def menu(catalog) -> MenuDefinition:
    return load_menu(MENU_FILE, catalog)
