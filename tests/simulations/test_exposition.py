"""The simulated pods expose what vLLM exposes: names, types, labels and buckets as in the sample scrape
composed from ../shared/metrics/REFERENCE.md (vLLM 0.33, --max-model-len 8192)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from scaler.sources.query import pod_pattern
from simulations.exposition import DEPLOYMENT, FINISHED_REASONS, pod_name, vllm_schema

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [Path("/work/shared/metrics/vllm.prom"), ROOT.parent / "shared" / "metrics" / "vllm.prom"]


def _reference() -> dict[str, Metric]:
    path = next((p for p in SAMPLES if p.exists()), None)
    if path is None:
        message = f"the vLLM sample scrape is not at {' or '.join(map(str, SAMPLES))}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip("SKIPPING: " + message)
    return {f.name: f for f in text_string_to_metric_families(path.read_text())}


def test_vllm_families_names_types_labels_and_buckets_match_vllm() -> None:
    ref = _reference()
    schema = vllm_schema("meta-llama/Llama-3.1-8B-Instruct", 8192)
    checked = 0
    for fam in schema.families:
        if fam.name == "up":
            continue  # Prometheus' own, not vLLM's
        assert fam.name in ref, fam.name
        theirs = ref[fam.name]
        assert fam.kind == theirs.type, fam.name
        cols = schema.columns[fam.start : fam.stop]
        assert {c.name for c in cols} == {s.name for s in theirs.samples if not s.name.endswith("_created")}
        for c in cols:
            labels = dict(c.labels)
            match = [
                s
                for s in theirs.samples
                if s.name == c.name
                and all(s.labels.get(k) == v for k, v in labels.items() if k != "model_name")
            ]
            assert match, (c.name, labels)
            assert set(labels) == set(match[0].labels), c.name
            checked += 1
    assert checked > 150
    reasons = {
        s.labels["finished_reason"] for s in ref["vllm:request_success"].samples if s.name.endswith("_total")
    }
    assert reasons == set(FINISHED_REASONS)


def test_pods_are_named_like_the_deployments_pods() -> None:
    for pod_id in (0, 7, 1234):
        assert pod_pattern(DEPLOYMENT).fullmatch(pod_name(pod_id))
    assert not pod_pattern("ll").fullmatch(pod_name(0))
