"""The ``scaler`` policy runs the KEDA and HPA settings of the ScaledObject this project ships."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from simulations.controlplane import Fallback, HpaPolicy
from simulations.deployed import DEFAULT_TOLERANCE, ManifestError, deployed_scaling, read_scaledobject
from simulations.engine import simulate
from simulations.fleet import Fleet, FleetConfig
from simulations.policies import make_policy
from simulations.policy import ScalerPolicy, SimSettings
from simulations.profile import profile_named
from simulations.trace import Trace
from simulations.tsdb import ScrapeStore

ROOT = Path(__file__).resolve().parents[2]


def _attached(sim: SimSettings, trace: Trace) -> ScalerPolicy:
    pol = make_policy("scaler", sim, trace)
    assert isinstance(pol, ScalerPolicy)
    pol.attach(Fleet(trace, FleetConfig(sim.profile)), ScrapeStore())
    return pol


@pytest.mark.parametrize(
    ("profile", "manifest"), [("llama70b-h100x4", "vllm.yaml"), ("triton-encoder-h100", "triton.yaml")]
)
def test_simulated_scaler_runs_what_deploy_scaling_ships(profile: str, manifest: str, conv: Trace) -> None:
    # The expected values are read here with plain dictionary access, independently of simulations.deployed.
    so = yaml.safe_load((ROOT / "deploy" / "scaling" / manifest).read_text())
    spec = so["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    pol = _attached(SimSettings(profile=profile_named(profile)), conv.slice(0, 60))
    keda = pol.keda
    assert keda is not None
    assert keda.polling_s == spec["pollingInterval"]
    assert keda.cooldown_s == spec["cooldownPeriod"]
    assert keda.min_replica_count == spec["minReplicaCount"]
    assert keda.hpa.min_replicas == max(1, spec["minReplicaCount"])
    fb = spec["fallback"]
    assert keda.fallback == Fallback(fb["failureThreshold"], fb["replicas"], fb["behavior"])
    b = keda.hpa.behavior
    for prefix, rules in (("up", behavior["scaleUp"]), ("down", behavior["scaleDown"])):
        assert getattr(b, f"{prefix}_window_s") == rules["stabilizationWindowSeconds"]
        assert getattr(b, f"{prefix}_select") == rules.get("selectPolicy", "Max")
        want = tuple(HpaPolicy(p["type"], p["value"], p["periodSeconds"]) for p in rules["policies"])
        assert getattr(b, f"{prefix}_policies") == want
        tolerance = float(rules["tolerance"]) if "tolerance" in rules else DEFAULT_TOLERANCE
        assert getattr(b, f"{prefix}_tolerance") == tolerance
    assert pol.settings["manifest"] == f"deploy/scaling/{manifest} (ScaledObject {so['metadata']['name']})"


def _edit(tmp_path: Path, change: Any) -> Path:
    so = yaml.safe_load((ROOT / "deploy" / "scaling" / "vllm.yaml").read_text())
    change(so)
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(so))
    return path


def test_changing_the_manifest_changes_the_simulation(tmp_path: Path, conv: Trace) -> None:
    def slow_scale_up(so: dict[str, Any]) -> None:
        up = so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
        up["policies"] = [{"type": "Pods", "value": 1, "periodSeconds": 120}]
        so["spec"]["pollingInterval"] = 45

    trace = conv.slice(1500, 1800)
    base = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=60.0, warmup_s=0.0)
    edited = SimSettings(
        profile=base.profile, tail_s=60.0, warmup_s=0.0, scaling_manifest=_edit(tmp_path, slow_scale_up)
    )
    pol = _attached(edited, trace)
    assert pol.keda is not None and pol.keda.polling_s == 45
    assert pol.keda.hpa.behavior.up_policies == (HpaPolicy("Pods", 1, 120.0),)
    a = simulate(trace, make_policy("scaler", base, trace), base)
    b = simulate(trace, make_policy("scaler", edited, trace), edited)
    # One pod per 2 minutes cannot follow the scaler's right-sized steps.
    assert b.replicas.max() < a.replicas.max()
    assert b.settings["polling_s"] == "45" and a.settings["polling_s"] == "15"


def test_fields_left_out_take_the_defaults_and_say_so(tmp_path: Path) -> None:
    def strip(so: dict[str, Any]) -> None:
        for rules in so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"].values():
            rules.pop("tolerance")  # e.g. moved to an overlay for clusters with HPAConfigurableTolerance
        del so["spec"]["cooldownPeriod"]

    d = read_scaledobject(_edit(tmp_path, strip))
    assert (d.behavior.up_tolerance, d.behavior.down_tolerance) == (0.1, 0.1)
    assert d.cooldown_s == 300.0
    assert set(d.defaulted) == {
        "cooldownPeriod",
        "behavior.scaleUp.tolerance",
        "behavior.scaleDown.tolerance",
    }


def _set(path: str, value: Any) -> Any:
    def change(so: dict[str, Any]) -> None:
        keys = path.split(".")
        node = so
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value

    return change


BEHAVIOR = "spec.advanced.horizontalPodAutoscalerConfig.behavior"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (_set("spec.pollingInterval", "soon"), "spec.pollingInterval must be a number"),
        (
            _set(f"{BEHAVIOR}.scaleUp.tolerance", "ten percent"),
            "behavior.scaleUp.tolerance must be a quantity",
        ),
        (
            _set(f"{BEHAVIOR}.scaleDown.selectPolicy", "Most"),
            "selectPolicy must be one of Max, Min, Disabled",
        ),
        (_set(f"{BEHAVIOR}.scaleUp.policies.0.type", "Nodes"), "policies[0].type must be Pods or Percent"),
        (_set("spec.fallback.behavior", "later"), "spec.fallback.behavior must be one of"),
        (_set("kind", "Deployment"), "no document of kind ScaledObject"),
    ],
)
def test_bad_manifests_name_the_field(tmp_path: Path, change: Any, needle: str) -> None:
    with pytest.raises(ManifestError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        read_scaledobject(_edit(tmp_path, change))


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("0.05", 0.05), ("50m", 0.05)])
def test_tolerance_quantities(tmp_path: Path, text: str, value: float) -> None:
    d = read_scaledobject(_edit(tmp_path, _set(f"{BEHAVIOR}.scaleUp.tolerance", text)))
    assert d.behavior.up_tolerance == pytest.approx(value)


def test_unknown_backend_lists_the_shipped_ones() -> None:
    with pytest.raises(ManifestError, match="allowed: vllm, triton"):
        deployed_scaling("tgi")
