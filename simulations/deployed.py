"""The control plane the ``scaler`` policy runs with, read from the ScaledObject this project ships:
``deploy/scaling/vllm.yaml`` (Triton profiles: ``triton.yaml``). Changing the manifest changes the
simulation; tests/simulations/test_deployed.py fails if the two diverge.

Read: ``pollingInterval``, ``cooldownPeriod``, ``minReplicaCount``, ``fallback`` and the HPA ``behavior``
(stabilisation windows, policies with their periods, ``selectPolicy``, per-direction ``tolerance``). A field
the manifest leaves out takes KEDA's or Kubernetes' default, and ``DeployedScaling.defaulted`` names it
(``tolerance`` may move to an overlay for clusters that support it; without it the controller's 10 %
applies, and so it does here). ``maxReplicaCount`` is read but not applied: the shipped value is the GPU
budget of that manifest's own endpoint, while the simulation caps every policy alike at ``--max-replicas``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from simulations.controlplane import (
    FALLBACK_BEHAVIORS,
    SELECT_POLICIES,
    Fallback,
    HpaBehavior,
    HpaPolicy,
)

SCALING_DIR = Path(__file__).resolve().parents[1] / "deploy" / "scaling"
MANIFESTS = {"vllm": "vllm.yaml", "triton": "triton.yaml"}
# KEDA's defaults (ScaledObject spec) and Kubernetes' (HPA controller, autoscaling/v2 defaulting).
DEFAULT_POLLING_S = 30.0
DEFAULT_COOLDOWN_S = 300.0
DEFAULT_MAX_REPLICAS = 100
DEFAULT_TOLERANCE = 0.1


class ManifestError(ValueError):
    """The ScaledObject cannot be read: the message names the file and the field."""


@dataclass(frozen=True)
class DeployedScaling:
    source: str  # "deploy/scaling/vllm.yaml (ScaledObject llama)"
    polling_s: float
    cooldown_s: float
    min_replica_count: int
    max_replica_count: int
    behavior: HpaBehavior
    fallback: Fallback | None
    defaulted: tuple[str, ...] = ()  # fields the manifest leaves out (KEDA's or Kubernetes' default used)


def manifest_for(backend: str, scaling_dir: Path = SCALING_DIR) -> Path:
    if backend not in MANIFESTS:
        raise ManifestError(
            f"no shipped ScaledObject for backend {backend!r}; allowed: {', '.join(MANIFESTS)}"
        )
    return scaling_dir / MANIFESTS[backend]


def deployed_scaling(backend: str, path: Path | None = None) -> DeployedScaling:
    """The settings of the ScaledObject shipped for ``backend`` (or the one in ``path``)."""
    return read_scaledobject(path if path is not None else manifest_for(backend))


def read_scaledobject(path: Path) -> DeployedScaling:
    """The first ScaledObject in ``path`` (a file may hold several documents)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read the ScaledObject: {str(exc).splitlines()[0]}") from None
    so = next((d for d in docs if isinstance(d, dict) and d.get("kind") == "ScaledObject"), None)
    if so is None:
        raise ManifestError(f"{path}: no document of kind ScaledObject")
    name = str(_get(so, "metadata", "name") or "?")
    where = f"{_short(path)} (ScaledObject {name})"
    spec = _mapping(so.get("spec"), f"{where}: spec")
    defaulted: list[str] = []

    def number(key: str, default: float) -> float:
        if key not in spec:
            defaulted.append(key)
            return default
        return _non_negative(spec[key], f"{where}: spec.{key}")

    polling = number("pollingInterval", DEFAULT_POLLING_S)
    cooldown = number("cooldownPeriod", DEFAULT_COOLDOWN_S)
    min_rc = int(number("minReplicaCount", 0))
    max_rc = int(number("maxReplicaCount", DEFAULT_MAX_REPLICAS))
    behavior_map = _get(spec, "advanced", "horizontalPodAutoscalerConfig", "behavior")
    behavior = _behavior(_mapping(behavior_map or {}, f"{where}: behavior"), where, defaulted)
    fallback = _fallback(spec.get("fallback"), where)
    return DeployedScaling(where, polling, cooldown, min_rc, max_rc, behavior, fallback, tuple(defaulted))


def _behavior(b: Mapping[str, Any], where: str, defaulted: list[str]) -> HpaBehavior:
    out: dict[str, Any] = {}
    for direction, prefix in (("scaleUp", "up"), ("scaleDown", "down")):
        rules = _mapping(b.get(direction) or {}, f"{where}: behavior.{direction}")
        field = f"behavior.{direction}"
        if "stabilizationWindowSeconds" in rules:
            window = _non_negative(
                rules["stabilizationWindowSeconds"], f"{where}: {field}.stabilizationWindowSeconds"
            )
            out[f"{prefix}_window_s"] = window
        else:
            defaulted.append(f"{field}.stabilizationWindowSeconds")
        select = rules.get("selectPolicy", "Max")
        if select not in SELECT_POLICIES:
            raise ManifestError(f"{where}: {field}.selectPolicy must be one of {', '.join(SELECT_POLICIES)}")
        out[f"{prefix}_select"] = select
        if "policies" in rules:
            out[f"{prefix}_policies"] = tuple(
                _policy(p, f"{where}: {field}.policies[{i}]") for i, p in enumerate(rules["policies"] or ())
            )
        else:
            defaulted.append(f"{field}.policies")
        if "tolerance" in rules:
            out[f"{prefix}_tolerance"] = _quantity(rules["tolerance"], f"{where}: {field}.tolerance")
        else:
            defaulted.append(f"{field}.tolerance")
            out[f"{prefix}_tolerance"] = DEFAULT_TOLERANCE
    return replace(HpaBehavior(), **out)


def _policy(p: Any, where: str) -> HpaPolicy:
    m = _mapping(p, where)
    kind = m.get("type")
    if kind not in ("Pods", "Percent"):
        raise ManifestError(f"{where}.type must be Pods or Percent, got {kind!r}")
    value = _non_negative(m.get("value"), f"{where}.value")
    period = _non_negative(m.get("periodSeconds"), f"{where}.periodSeconds")
    return HpaPolicy(kind, int(value), period)


def _fallback(f: Any, where: str) -> Fallback | None:
    if f is None:
        return None
    m = _mapping(f, f"{where}: spec.fallback")
    behavior = m.get("behavior", "static")
    if behavior not in FALLBACK_BEHAVIORS:
        raise ManifestError(f"{where}: spec.fallback.behavior must be one of {', '.join(FALLBACK_BEHAVIORS)}")
    threshold = _non_negative(m.get("failureThreshold"), f"{where}: spec.fallback.failureThreshold")
    replicas = _non_negative(m.get("replicas"), f"{where}: spec.fallback.replicas")
    return Fallback(int(threshold), int(replicas), behavior)


def _quantity(value: Any, where: str) -> float:
    """A Kubernetes quantity as the tolerance field takes it: "0", "0.05", "50m" (milli)."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)(m?)", text)
    if m is None:
        raise ManifestError(f"{where} must be a quantity like 0, 0.1 or 100m, got {value!r}")
    return float(m.group(1)) / (1000.0 if m.group(2) else 1.0)


def _non_negative(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ManifestError(f"{where} must be a number >= 0, got {value!r}")
    return float(value)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _get(m: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(m, Mapping):
            return None
        m = m.get(k)
    return m


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(SCALING_DIR.parents[1]))
    except ValueError:
        return str(path)
