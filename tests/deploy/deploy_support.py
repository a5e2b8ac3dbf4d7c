"""Shared helpers of the deploy tests: where the Prometheus and Grafana files
are, promtool, and the PromQL each file holds (a unique module name, so it
cannot collide with other test folders' helpers on sys.path)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hotline-dashboard.json"

PROMTOOL_TIMEOUT_S = 60

# What Grafana puts in place of its variables, so that promtool can parse a
# panel's query. A variable missing here fails the test that needs it.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "6h", "queue": ".*"}


def promtool(*args: str | Path) -> str:
    """Run promtool; its output, or the test fails with that output."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make apt` installs it (Debian package prometheus)")
    result = subprocess.run([path, *map(str, args)], capture_output=True, text=True, check=False,
                            timeout=PROMTOOL_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_queries() -> dict[str, str]:
    """Every PromQL query of the dashboard, by where it is. A query variable's
    label_values(selector, label) gives its selector."""
    board = dashboard()
    queries = {
        f"panel {panel['id']} ({panel['title']}) {target['refId']}": target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    }
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"])
            assert match, f"variable {variable['name']}: expected label_values(selector, label)"
            queries[f"variable {variable['name']}"] = match.group(1)
    return queries


def with_grafana_variables(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in GRAFANA_VARIABLES:
            pytest.fail(f"no test value for the Grafana variable ${name} in {expr!r}")
        return GRAFANA_VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)
