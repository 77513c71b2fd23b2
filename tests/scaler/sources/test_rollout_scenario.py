"""A rolling update under a steady demand for 3 replicas, in stepped time: the Deployment controller
(maxSurge 1, maxUnavailable 0), the pods' 60 s start-up, the scaler's counting (``count_pods``, what the
Kubernetes reader and kube-state-metrics both feed ``decide``), ``decide`` itself, and the HPA as
simulations/controlplane.py models it with the shipped behaviour (windows 0, +1000 % / -100 % per 15 s,
tolerance 0).

Counting every pod the Deployment owns, as the scaler did, reproduces the audit's ratchet: the surge pod
is "warming", the answer is held at spec + 1, the HPA applies it, the Deployment surges again, 3 -> 8
(maxReplicaCount) in 75 s. Counting against spec.replicas, the answer stays 3 and the rollout finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from scaler.core.config import parse_metadata
from scaler.core.decision import decide
from scaler.core.signals import Measure, Signals
from scaler.core.state import ReplicaSource, Series, State
from scaler.sources.membership import PodFacts, count_pods
from simulations.controlplane import Hpa, HpaBehavior, HpaPolicy

STEP_S = 5.0
COLD_START_S = 60.0
MAX_REPLICAS = 8
CONFIG = parse_metadata(
    {"backend": "vllm", "deployment": "llama", "targetQueuePerReplica": "8", "coldStartSeconds": "60"}
)
IN_FLIGHT = 24.0  # 3 replicas at 8


@dataclass
class Pod:
    name: str
    new: bool  # of the ReplicaSet the rollout creates
    created_s: float

    def ready(self, now_s: float) -> bool:
        return now_s >= self.created_s + COLD_START_S


@dataclass
class Deployment:
    """The Deployment controller's rolling update, reduced to what matters here (maxSurge 1,
    maxUnavailable 0): new pods while the total is below spec + 1 and the new ReplicaSet below spec; an old
    pod removed for each Ready pod above spec; on scale-down, old pods go first."""

    spec: int
    pods: list[Pod] = field(default_factory=list)
    created: int = 0

    def reconcile(self, now_s: float) -> None:
        while len(self.pods) < self.spec + 1 and sum(p.new for p in self.pods) < self.spec:
            self.created += 1
            self.pods.append(Pod(f"new-{self.created}", True, now_s))
        ready = sum(p.ready(now_s) for p in self.pods)
        excess = max(0, ready - self.spec, len(self.pods) - self.spec - 1)
        for p in sorted(self.pods, key=lambda p: (p.new, p.created_s))[:excess]:
            self.pods.remove(p)


def run(respect_spec: bool, until_s: float = 600.0) -> tuple[list[int], Deployment]:
    """Spec over time, and the Deployment at the end."""
    d = Deployment(spec=3, pods=[Pod(f"old-{i}", False, -3600.0) for i in range(3)])
    behavior = HpaBehavior(
        up_window_s=0.0,
        up_policies=(HpaPolicy("Percent", 1000),),
        down_window_s=0.0,
        down_policies=(HpaPolicy("Percent", 100),),
    )
    hpa = Hpa(min_replicas=1, max_replicas=MAX_REPLICAS, behavior=behavior, tolerance=0.0)
    specs: list[int] = []
    replicas: list[tuple[float, float]] = []
    now = 0.0
    while now <= until_s:
        d.reconcile(now)
        facts = [PodFacts(p.name, p.created_s, p.ready(now), p.created_s + COLD_START_S) for p in d.pods]
        states = count_pods(facts, d.spec if respect_spec else None, frozenset(), now, COLD_START_S)
        replicas.append((now, float(states.total)))
        state = State(
            warming_replicas=len(states.warming_ages_s),
            warming_ages_s=states.warming_ages_s,
            replica_source=ReplicaSource.KUBERNETES,
            history={Measure.REPLICAS: Series(tuple(t for t, _ in replicas), tuple(v for _, v in replicas))},
        )
        signals = Signals(
            current_replicas=states.total, ready_replicas=states.ready, queue_requests=IN_FLIGHT
        )
        decision = decide(signals, state, CONFIG, now)
        # The HPA syncs every 15 s, the first one 15 s after the rollout starts; its currentReplicas is
        # status.replicas: every pod, the surge pod too.
        if now > 0 and now % 15.0 == 0:
            current = len(d.pods)
            desired = Hpa.external_average_value(
                float(decision.desired_replicas), 1.0, current, tolerance=0.0
            )
            new_spec = hpa.normalize(desired, current, now)
            hpa.record(now, new_spec - d.spec)
            d.spec = new_spec
        specs.append(d.spec)
        now += STEP_S
    return specs, d


def test_counting_surge_pods_ratchets_the_fleet_to_max_replicas() -> None:
    specs, _ = run(respect_spec=False, until_s=120.0)
    # 3 -> 4 at the first HPA sync after the surge pod appears, then +1 per sync: 8 after 75 s.
    assert specs[: int(15 / STEP_S)] == [3, 3, 3] and specs[int(15 / STEP_S)] == 4
    assert specs.index(MAX_REPLICAS) * STEP_S == pytest.approx(75.0)


def test_counting_against_spec_replicas_follows_demand_and_the_rollout_finishes() -> None:
    specs, d = run(respect_spec=True)
    assert set(specs) == {3}
    assert len(d.pods) == 3 and all(p.new for p in d.pods)
