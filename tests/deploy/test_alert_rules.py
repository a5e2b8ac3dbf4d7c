"""The Prometheus config and alert rules: valid for promtool, pointed at the
engine, and every alert proven to fire and to stay silent."""

from __future__ import annotations

from collections import defaultdict

from deploy_support import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_rules,
    load_yaml,
    promtool,
)

from ivr.settings import EngineSettings


def test_prometheus_config_and_the_rule_files_it_names_are_valid():
    output = promtool("check", "config", PROMETHEUS_CONFIG)
    assert "SUCCESS: 1 rule files found" in output


def test_prometheus_scrapes_the_engine_at_its_default_address():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == [ALERTS.name]
    (job,) = config["scrape_configs"]
    engine = EngineSettings()
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": [f"{engine.http_host}:{engine.http_port}"]}]


def test_alert_rules_are_valid():
    promtool("check", "rules", ALERTS)


def test_every_alert_says_what_happened_and_whether_to_page():
    rules = alert_rules()
    assert len(rules) == 7
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"].split()) >= 10, rule["alert"]
        assert "for" in rule, f"{rule['alert']}: a single bad scrape must not alert"


def test_alert_unit_tests_pass():
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS)


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_silent():
    fires: dict[str, int] = defaultdict(int)
    silent: dict[str, int] = defaultdict(int)
    for group in load_yaml(ALERT_TESTS)["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent)[case["alertname"]] += 1
    names = {rule["alert"] for rule in alert_rules()}
    assert {name for name in names if not fires[name]} == set()
    assert {name for name in names if not silent[name]} == set()
    assert set(fires) | set(silent) <= names, "a test names an alert that does not exist"
