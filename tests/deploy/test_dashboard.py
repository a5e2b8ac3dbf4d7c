"""The Grafana dashboard: importable anywhere (the datasource is a
variable), laid out without overlaps, every query valid PromQL, and the
panels the supervisors asked for present."""

from __future__ import annotations

import itertools
import re

import yaml
from deploy_support import (
    dashboard,
    dashboard_queries,
    promtool,
    with_grafana_variables,
)

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
GRID_COLUMNS = 24


def test_the_datasource_is_a_variable_every_panel_and_query_uses():
    board = dashboard()
    (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("DS_PROMETHEUS", "prometheus")
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_panels_have_unique_ids_and_refids_and_do_not_overlap():
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(set(refs)) == len(refs), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS

    def cells(panel):
        g = panel["gridPos"]
        return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}

    for a, b in itertools.combinations(panels, 2):
        assert not cells(a) & cells(b), f"{a['title']!r} overlaps {b['title']!r}"


def test_every_query_is_valid_promql(tmp_path):
    # promtool parses PromQL only inside rule files: one recording rule a query.
    rules = [{"record": f"dashboard:query_{i}", "expr": with_grafana_variables(expr)}
             for i, expr in enumerate(dashboard_queries().values())]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", path)


def test_the_supervisors_panels_are_all_there():
    exprs = "\n".join(dashboard_queries().values())
    wanted = [
        "hotline_queue_depth", "hotline_queue_longest_wait_seconds", "hotline_queue_available_advocates",
        "hotline_calls_offered_total", "hotline_calls_answered_total", "hotline_calls_abandoned_total",
        "hotline_wait_seconds_bucket", "hotline_calls_answered_within_target_total",
        "hotline_advocates", "hotline_advocates_by_skill",
        "hotline_interpreter_requests_total", "hotline_interpreter_failures_total",
        "hotline_escalations_total", "hotline_fallbacks_total", "hotline_ari_connected", "hotline_redis_up",
    ]
    assert [name for name in wanted if not re.search(rf"\b{name}\b", exprs)] == []
    assert re.search(r"histogram_quantile\(0\.9, sum by \(le\) \(rate\(hotline_wait_seconds_bucket", exprs)
