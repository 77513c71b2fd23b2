"""``scaler`` in the simulator decides exactly what the real gRPC service answers for the same signals."""

from __future__ import annotations

from types import ModuleType

import grpc
import numpy as np

from scaler.core.decision import decide
from simulations.closedloop import GrpcScalerPolicy
from simulations.controlplane import ScrapeStore
from simulations.engine import fleet_config, simulate
from simulations.fleet import Fleet
from simulations.policies import make_policy
from simulations.policy import KEY, NAMESPACE, SCALEDOBJECT, SimSettings, merged_settings, scaler_metadata
from simulations.profile import profile_named
from simulations.trace import Trace, load_trace


def _bursty() -> Trace:
    # Twelve minutes of the code trace, which has idle minutes: exercises 0 -> 1, pushes and keep-warm.
    return load_trace("azure-code").slice(0, 720)


def test_grpc_answers_equal_decide_for_the_same_observation(keda_pb: tuple[ModuleType, ModuleType]) -> None:
    pb, pb_grpc = keda_pb  # the KEDA-side client, generated from the upstream proto at test time
    trace = _bursty()
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=30.0)
    pol = GrpcScalerPolicy("scaler", merged_settings("scaler", {}), sim, metadata=scaler_metadata(sim))
    fleet = Fleet(trace, fleet_config(sim), initial_replicas=pol.initial_replicas)
    store = ScrapeStore()
    pol.attach(fleet, store)
    assert pol.runner is not None and pol.source is not None
    compared = 0
    try:
        with grpc.insecure_channel(pol.runner.address) as channel:
            stub = pb_grpc.ExternalScalerStub(channel)
            ref = pb.ScaledObjectRef(name=SCALEDOBJECT, namespace=NAMESPACE, scalerMetadata=pol.metadata)
            steps = int(600 / sim.dt_s)
            for k in range(steps):
                t = k * sim.dt_s
                store.collect(fleet, t)
                pol.tick(k, t)
                # Right after a refresh (every 2 s) that no KEDA poll or HPA sync (every 15 s, at k % 60 == 0)
                # followed, so the fleet is as the refresh saw it.
                if k % 120 == 8:
                    obs = pol.source.observe(pol.target, t)
                    want = decide(obs.signals, obs.state, pol.config, t)
                    if want.valid:
                        got = stub.GetMetrics(
                            pb.GetMetricsRequest(scaledObjectRef=ref, metricName=pol.metric_name)
                        )
                        active = stub.IsActive(ref)
                        assert got.metricValues[0].metricValueFloat == float(want.desired_replicas), t
                        assert active.result == want.active, t
                        compared += 1
                fleet.step(t, sim.dt_s)
    finally:
        pol.close()
    assert compared >= 5


def test_closed_loop_run_equals_in_process_run() -> None:
    trace = _bursty()
    sim = SimSettings(profile=profile_named("llama70b-h100x4"), tail_s=60.0)
    direct = simulate(trace, make_policy("scaler", sim, trace), sim)
    loop_pol = GrpcScalerPolicy("scaler", merged_settings("scaler", {}), sim, metadata=scaler_metadata(sim))
    loop = simulate(trace, loop_pol, sim)
    assert [(t, d.desired_replicas, d.active, d.reason) for t, d in direct.decisions] == [
        (t, d.desired_replicas, d.active, d.reason) for t, d in loop.decisions
    ]
    assert loop.summary() == direct.summary()
    assert np.array_equal(loop.replicas, direct.replicas)
    assert loop_pol.rpc_calls["GetMetrics"] > 10 and loop_pol.rpc_calls["IsActive"] > 5
    assert KEY[0] == NAMESPACE
