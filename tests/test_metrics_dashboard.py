"""The Grafana dashboard and the Prometheus example in cluster/ agree with the metrics berg_ray defines (fast)."""

from __future__ import annotations

import json
import re

import yaml

from berg_ray.cluster.metrics import METRICS, PROMETHEUS_PREFIX, prometheus_names, route_of
from tests.conftest import REPO_ROOT

DASHBOARD = REPO_ROOT / "cluster" / "grafana-berg-ray.json"
EXPORTED = {name: spec for spec in METRICS for name in prometheus_names(spec)}
SERIES = re.compile(r"\b" + PROMETHEUS_PREFIX + r"berg_ray_\w+")


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def test_every_dashboard_query_uses_a_defined_metric():
    exprs = expressions()
    assert exprs
    for expr in exprs:
        names = SERIES.findall(expr)
        assert names, f"a panel queries no berg_ray metric: {expr}"
        unknown = [n for n in names if n not in EXPORTED]
        assert not unknown, f"{unknown} in {expr!r} are not exported names of berg_ray.cluster.metrics.METRICS"
        for name in names:  # a label the query filters or groups by must be one of the metric's tags
            labels = set(re.findall(r"(\w+)\s*=~?", expr)) | {
                label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
            assert labels <= set(EXPORTED[name].tag_keys) | {"le"}, (name, labels, expr)


def test_every_metric_has_a_panel():
    used = {name for expr in expressions() for name in SERIES.findall(expr)}
    assert {spec.name for spec in METRICS} == {EXPORTED[name].name for name in used}


def test_metric_catalogue():
    assert all(spec.name.startswith("berg_ray_") for spec in METRICS)
    assert len({spec.name for spec in METRICS}) == len(METRICS)
    assert all(spec.kind in ("counter", "histogram", "gauge") for spec in METRICS)
    assert all(bool(spec.boundaries) == (spec.kind == "histogram") for spec in METRICS)
    assert route_of("GET", "/v1/metadata/session-8_scan-5") == "GET /v1/metadata/{train_session}"
    assert route_of("GET", "/v1/encode") == route_of("DELETE", "/anything") == "unmatched"


def test_prometheus_example_scrapes_the_ray_nodes_and_a_local_port():
    config = yaml.safe_load((REPO_ROOT / "cluster" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["ray"]["file_sd_configs"][0]["files"] == ["/tmp/ray/prom_metrics_service_discovery.json"]
    assert jobs["berg-ray-local"]["static_configs"][0]["targets"] == ["127.0.0.1:9101"]
