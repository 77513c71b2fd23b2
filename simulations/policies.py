"""Every policy by name: ``make_policy`` builds one with its settings."""

from __future__ import annotations

from collections.abc import Mapping

from simulations.baselines import (
    HindsightPolicy,
    HpaGpuPolicy,
    KedaQueuePolicy,
    KedaTunedPolicy,
    KpaPolicy,
    StaticPolicy,
    hindsight_schedule,
    static_peak_replicas,
)
from simulations.oracle import OracleBound, oracle_bound
from simulations.policy import (
    Policy,
    PolicyError,
    ScalerPolicy,
    SimSettings,
    _float,
    merged_settings,
    scaler_metadata,
)
from simulations.trace import Trace


def checked_settings(name: str, given: Mapping[str, str] | None) -> dict[str, str]:
    """A policy's settings merged with its defaults, each a number (or empty: derived); PolicyError else."""
    settings = merged_settings(name, given or {})
    for key, value in settings.items():
        if value != "":
            _float(settings, key, name)
    return settings


def make_policy(
    name: str,
    sim: SimSettings,
    trace: Trace,
    given: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
    bound: OracleBound | None = None,
) -> Policy:
    """Build a policy by name with its settings (defaults in DEFAULTS; unknown keys are refused).

    ``hindsight`` replays ``bound``'s schedule (solved here when not given); its scale, when empty, is 1
    here and sized by ``engine.compare``."""
    settings = checked_settings(name, given)
    if name == "scaler":
        return ScalerPolicy(name, settings, sim, metadata=scaler_metadata(sim, metadata))
    if metadata:
        raise PolicyError(f"--metadata applies to the scaler policy only, not {name!r}")
    if name == "keda-queue":
        return KedaQueuePolicy(name, settings, sim)
    if name == "keda-tuned":
        return KedaTunedPolicy(name, settings, sim)
    if name == "hindsight":
        if not 0 < float(settings["target_attainment"]) <= 1:
            raise PolicyError("hindsight: setting target_attainment must be in (0, 1]")
        scale = float(settings["scale"]) if settings["scale"] else 1.0
        schedule = hindsight_schedule(bound if bound is not None else oracle_bound(trace, sim), sim, scale)
        first = int(schedule[0]) if len(schedule) else 0
        return HindsightPolicy(name, settings, sim, initial_replicas=first, deployment=schedule)
    if name == "hpa-gpu":
        return HpaGpuPolicy(name, settings, sim)
    if name == "kpa":
        return KpaPolicy(name, settings, sim)
    if not 0 < float(settings["target_attainment"]) <= 1:
        raise PolicyError("static-peak: setting target_attainment must be in (0, 1]")
    n = (
        int(_float(settings, "replicas", name))
        if settings["replicas"]
        else static_peak_replicas(trace, sim.profile)
    )
    if n < 1:
        raise PolicyError("static-peak: setting replicas must be >= 1")
    return StaticPolicy(name, settings, sim, initial_replicas=min(n, sim.max_replicas))
