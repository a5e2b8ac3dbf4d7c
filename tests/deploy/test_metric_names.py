"""Every metric the alerts, their unit tests and the dashboard name is one
the engine exposes: a renamed or misspelt metric would otherwise leave an
alert that can never fire and a panel that stays empty, silently."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest
from deploy_support import ALERT_TESTS, alert_rules, dashboard_queries, load_yaml

from metrics.hotline import HotlineMetrics

# A name starting with hotline_, not part of a longer identifier. Looser than
# "followed by {, [, ) or a space" on purpose: `hotline_redis_up==0` counts too.
_NAME = re.compile(r"(?<![\w:])hotline_[A-Za-z0-9_:]*(?![\w:])")

# The series each metric type is exposed as (prometheus_client's text format).
_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
             "summary": ("", "_sum", "_count")}


def metric_names(expr: str) -> set[str]:
    return set(_NAME.findall(expr))


def exposed_names() -> set[str]:
    names = set()
    for family in HotlineMetrics().registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def unknown_names(queries: Mapping[str, str]) -> dict[str, set[str]]:
    exposed = exposed_names()
    found = {where: metric_names(expr) - exposed for where, expr in queries.items()}
    return {where: names for where, names in found.items() if names}


def alert_queries() -> dict[str, str]:
    queries = {f"alert {rule['alert']}": rule["expr"] for rule in alert_rules()}
    for group in load_yaml(ALERT_TESTS)["tests"]:
        for i, series in enumerate(group["input_series"]):
            queries[f"{ALERT_TESTS.name}: {group['name']}, series {i}"] = series["series"]
    return queries


def test_names_are_read_from_promql_wherever_they_stand():
    expr = ('sum(rate(hotline_calls_offered_total{queue="x"}[5m])) / on (queue) hotline_queue_depth\n'
            "and hotline_redis_up==1 or absent(hotline_ari_connected)")
    assert metric_names(expr) == {"hotline_calls_offered_total", "hotline_queue_depth", "hotline_redis_up",
                                  "hotline_ari_connected"}
    assert metric_names('up{job="hotline"} and my_hotline_x') == set()


def test_counters_and_histograms_are_known_by_their_exposed_series_only():
    exposed = exposed_names()
    assert {"hotline_calls_offered_total", "hotline_wait_seconds_bucket", "hotline_wait_seconds_count",
            "hotline_queue_depth", "hotline_advocates_by_skill", "hotline_queue_available_advocates"} <= exposed
    assert "hotline_calls_offered" not in exposed and "hotline_wait_seconds" not in exposed


def test_a_query_naming_a_metric_the_engine_lacks_is_reported():
    assert unknown_names({"rule": "hotline_calls_offered > 0 and hotline_queue_depth > 0"}) == {
        "rule": {"hotline_calls_offered"}}


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_named_exists_in_the_engine(source):
    queries = alert_queries() if source == "alerts" else dashboard_queries()
    assert queries
    assert all(metric_names(expr) for expr in queries.values()), "a query names no hotline metric"
    assert unknown_names(queries) == {}
