"""The Grafana dashboards: well-formed for provisioning, and every panel query parses in a real
Prometheus and returns data while the scaler answers ScaledObjects and the test exporter runs."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import NS, DashboardWorld
from tests.deploy.support import DEPLOY

DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
# Grafana's built-in intervals, as Grafana would fill them for a 1 s scrape interval and a short range.
BUILTINS = {"$__rate_interval": "10s", "$__interval": "5s", "$__range": "5m"}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel, rows included."""
    out = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
    return out


def _all_exprs() -> list[tuple[str, str, str]]:
    return [(path.name, title, expr) for path in DASHBOARDS for title, expr in _targets(_load(path))]


def substitute(expr: str, namespace: str, deployments: str) -> str:
    """Fill the template variables the way Grafana does for the Prometheus datasource: a multi-value
    selection becomes a regex alternation, with ${var:regex} the same."""
    out = expr
    for key, value in BUILTINS.items():
        out = out.replace(key, value)
    for name, value in (("namespace", namespace), ("deployment", deployments)):
        out = out.replace(f"${{{name}:regex}}", value).replace(f"${{{name}}}", value)
        out = re.sub(rf"\${name}\b", value, out)
    return out


def _api(prom_url: str, path: str, params: dict[str, str]) -> dict[str, Any]:
    url = f"{prom_url}{path}?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body: dict[str, Any] = json.load(r)
    except urllib.error.HTTPError as exc:  # 400 bad_data: the query does not parse
        body = json.loads(exc.read() or b"{}")
    return body


def _has_data(body: dict[str, Any]) -> bool:
    result = body.get("data", {}).get("result", [])
    return any(math.isfinite(float(s["value"][1])) for s in result)


# --------------------------------------------------------------------------------------------- static


def test_both_dashboards_are_there() -> None:
    assert [p.name for p in DASHBOARDS] == ["fleet.json", "scaler.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable(path: Path) -> None:
    d = _load(path)
    assert d["uid"] and len(d["uid"]) <= 40 and d["title"]
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "namespace", "deployment"]
    ds = d["templating"]["list"][0]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for panel in d["panels"]:
        if panel["type"] == "row":
            continue
        # Every panel and query uses the datasource variable, never a hard-coded datasource.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == panel["datasource"], panel["title"]
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
    # No unknown variable: after substitution nothing with a $ is left (label_replace's "$1" aside).
    for title, expr in _targets(d):
        left = substitute(expr, NS, "(a|b)").replace('"$1"', "")
        assert "$" not in left, f"{path.name} / {title}: unknown variable in {left}"


def test_dashboards_cover_the_issue() -> None:
    exprs = " ".join(e for _, _, e in _all_exprs())
    for metric in (
        "llm_scaler_desired_replicas",
        "llm_scaler_current_replicas",
        "llm_scaler_ready_replicas",
        "llm_scaler_signal_desired_replicas",
        "llm_scaler_active",
        "llm_scaler_decisions_total",
        "llm_scaler_scale_from_zero_total",
        "llm_scaler_cold_start_seconds",
        "llm_scaler_prometheus_query_duration_seconds_bucket",
        "llm_scaler_prometheus_query_errors_total",
        "llm_scaler_rpc_duration_seconds_bucket",
        "vllm:num_requests_",
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        "DCGM_FI_DEV_GPU_UTIL",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:e2e_request_latency_seconds_bucket",
        "nv_inference_pending_request_count",
        "nv_inference_request_summary_us",
        'nv_trt_llm_request_metrics{request_type="waiting"',
        'nv_trt_llm_request_metrics{request_type="active"',
        'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"',
    ):
        assert metric in exprs, metric


# ---------------------------------------------------------------------------------- real Prometheus


@pytest.fixture(scope="module")
def answered(dashboard_world: DashboardWorld) -> DashboardWorld:
    """The world once every query that should return data does (or the time bound is hit); polls the
    scaler like KEDA meanwhile, so RPC and refresh histograms have fresh observations."""
    w = dashboard_world
    selections = [(NS, "(" + "|".join(w.deployments) + ")"), (".*", ".*")]
    wanted = [e for _, _, e in _all_exprs()]
    deadline = time.monotonic() + 60
    missing: list[str] = wanted
    while time.monotonic() < deadline:
        w.poll()
        missing = [
            substitute(e, ns, dep)
            for e in wanted
            for ns, dep in selections
            if not _has_data(_api(w.prometheus.url, "/api/v1/query", {"query": substitute(e, ns, dep)}))
        ]
        if not missing:
            return w
        time.sleep(1.0)
    pytest.fail(f"{len(missing)} dashboard queries never returned data:\n" + "\n".join(missing))


def test_variables_list_the_scaled_deployments(answered: DashboardWorld) -> None:
    # label_values(llm_scaler_desired_replicas{namespace=~"$namespace"}, deployment), as Grafana asks it.
    for path in DASHBOARDS:
        variables = {v["name"]: v for v in _load(path)["templating"]["list"]}
        ns_query = variables["namespace"]["query"]["query"]
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", ns_query).groups()  # type: ignore[union-attr]
        body = _api(answered.prometheus.url, f"/api/v1/label/{label}/values", {"match[]": metric})
        assert NS in body["data"], body
        dep_query = substitute(variables["deployment"]["query"]["query"], NS, NS)
        metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", dep_query).groups()  # type: ignore[union-attr]
        body = _api(answered.prometheus.url, f"/api/v1/label/{label}/values", {"match[]": metric})
        # Every ScaledObject with a decision; "orphan" (its Prometheus is down) never had one.
        assert set(body["data"]) == set(answered.deployments) - {"orphan"}, body


@pytest.mark.parametrize(("dashboard", "title", "expr"), _all_exprs(), ids=lambda v: str(v)[:60])
def test_every_query_parses_and_returns_data(
    answered: DashboardWorld, dashboard: str, title: str, expr: str
) -> None:
    query = substitute(expr, NS, "(" + "|".join(answered.deployments) + ")")
    body = _api(answered.prometheus.url, "/api/v1/query", {"query": query})
    assert body.get("status") == "success", f"{dashboard} / {title}: {body.get('error')} in {query}"
    assert _has_data(body), f"{dashboard} / {title}: no data for {query}"


def test_a_typo_in_a_query_is_caught(answered: DashboardWorld) -> None:
    """The checks above can fail: a misspelt metric returns nothing, a broken expression does not parse."""
    ok = 'max by (namespace, deployment) (llm_scaler_desired_replicas{namespace=~"dash"})'
    assert _has_data(_api(answered.prometheus.url, "/api/v1/query", {"query": ok}))
    typo = ok.replace("desired", "desire")
    assert not _has_data(_api(answered.prometheus.url, "/api/v1/query", {"query": typo}))
    broken = _api(answered.prometheus.url, "/api/v1/query", {"query": ok.replace("by (", "by ((")})
    assert broken["status"] == "error" and broken["errorType"] == "bad_data"
