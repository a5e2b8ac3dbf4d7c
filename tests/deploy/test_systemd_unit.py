"""deploy/systemd/hotline.service keeps the engine running whatever happens
to it: restarted after any exit, and never given up on."""

from __future__ import annotations

import configparser

from ivr.settings import REPO

UNIT = REPO / "deploy" / "systemd" / "hotline.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def test_the_engine_is_restarted_after_any_exit_and_never_given_up_on():
    parsed = unit()

    assert parsed["Service"]["Restart"] == "always"
    # Without it, five quick exits in ten seconds (Redis down at start-up) stop the restarts for good.
    assert parsed["Unit"]["StartLimitIntervalSec"] == "0"
    assert "StartLimitBurst" not in parsed["Service"] and "StartLimitBurst" not in parsed["Unit"]
