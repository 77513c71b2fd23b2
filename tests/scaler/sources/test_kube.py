"""A Deployment's pods by ownership, from real-shaped Kubernetes objects (the official client's models)."""

from __future__ import annotations

import datetime as dt

from kubernetes.client import (
    V1ContainerStatus,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodCondition,
    V1PodStatus,
    V1PodTemplateSpec,
    V1ReplicaSet,
    V1ReplicaSetSpec,
)

from scaler.sources.kube import _Namespace, pod_facts

NOW_S = 1_700_000_000.0
NS = "ml"


def _t(s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(s, tz=dt.UTC)


def _owner(kind: str, name: str) -> V1OwnerReference:
    return V1OwnerReference(api_version="apps/v1", kind=kind, name=name, uid=f"uid-{name}", controller=True)


def deployment(name: str, replicas: int | None) -> V1Deployment:
    return V1Deployment(
        metadata=V1ObjectMeta(name=name, namespace=NS, uid=f"uid-{name}"),
        spec=V1DeploymentSpec(replicas=replicas, selector=V1LabelSelector(), template=V1PodTemplateSpec()),
    )


def replicaset(name: str, deployment: str) -> V1ReplicaSet:
    meta = V1ObjectMeta(
        name=name, namespace=NS, uid=f"uid-{name}", owner_references=[_owner("Deployment", deployment)]
    )
    return V1ReplicaSet(metadata=meta, spec=V1ReplicaSetSpec(selector=V1LabelSelector()))


def pod(
    name: str,
    created_s: float,
    ready_s: float | None,
    owner: tuple[str, str] = ("ReplicaSet", "llama-5d4f8b7c9"),
    phase: str = "Running",
    deleting: bool = False,
    restarts: int = 0,
) -> V1Pod:
    cond = V1PodCondition(
        type="Ready",
        status="True" if ready_s is not None else "False",
        last_transition_time=_t(ready_s if ready_s is not None else created_s),
    )
    meta = V1ObjectMeta(
        name=name,
        creation_timestamp=_t(created_s),
        deletion_timestamp=_t(NOW_S) if deleting else None,
        owner_references=[_owner(*owner)],
    )
    status = V1ContainerStatus(
        name="vllm", image="v", image_id="", ready=ready_s is not None, restart_count=restarts
    )
    return V1Pod(
        metadata=meta, status=V1PodStatus(phase=phase, conditions=[cond], container_statuses=[status])
    )


def test_ready_warming_terminating_and_finished_pods() -> None:
    pods = [
        pod("llama-5d4f8b7c9-bcdfg", NOW_S - 500, NOW_S - 460),  # Ready after 40 s
        pod("llama-5d4f8b7c9-hjklm", NOW_S - 300, NOW_S - 250),  # Ready after 50 s
        pod("llama-5d4f8b7c9-npqrs", NOW_S - 30, None),  # warming for 30 s
        pod("llama-5d4f8b7c9-tvwxz", NOW_S - 5, None, phase="Pending"),  # warming (unscheduled yet) for 5 s
        pod("llama-5d4f8b7c9-24567", NOW_S - 900, NOW_S - 850, deleting=True),  # terminating: not counted
        pod("llama-5d4f8b7c9-89bcd", NOW_S - 900, None, phase="Failed"),  # evicted: not counted
    ]
    ns = _Namespace.index(NS, [deployment("llama", 4)], [replicaset("llama-5d4f8b7c9", "llama")], pods)
    s = ns.summarise("llama", NOW_S, 60.0)
    assert (s.total, s.ready) == (4, 2)
    assert s.warming_ages_s == (30.0, 5.0)  # oldest first
    assert s.cold_starts_s == (40.0, 50.0)  # in order of creation
    assert s.prefixes == frozenset({"llama-5d4f8b7c9-"})
    assert len(s.pods) == 4


def test_only_pods_its_replicasets_own_are_the_deployments() -> None:
    # The case: llama-canary-0 (a StatefulSet's) and llama-warmup-x7k2p (a Job's) are not llama's,
    # nor are pods of another Deployment whose name starts with llama-.
    pods = [
        pod("llama-5d4f8b7c9-bcdfg", NOW_S - 500, NOW_S - 460),
        pod("llama-canary-0", NOW_S - 500, NOW_S - 460, owner=("StatefulSet", "llama-canary")),
        pod("llama-warmup-x7k2p", NOW_S - 500, None, owner=("Job", "llama-warmup")),
        pod("llama-8b-6f9c7b8d5-x2kqp", NOW_S - 500, NOW_S - 460, owner=("ReplicaSet", "llama-8b-6f9c7b8d5")),
    ]
    rss = [replicaset("llama-5d4f8b7c9", "llama"), replicaset("llama-8b-6f9c7b8d5", "llama-8b")]
    ns = _Namespace.index(NS, [deployment("llama", 1), deployment("llama-8b", 1)], rss, pods)
    s = ns.summarise("llama", NOW_S, 60.0)
    assert s.pods == frozenset({"llama-5d4f8b7c9-bcdfg"}) and (s.total, s.ready) == (1, 1)


def test_a_rolling_updates_surge_pod_is_not_counted() -> None:
    rss = [replicaset("llama-5d4f8b7c9", "llama"), replicaset("llama-6b5c4d7f8", "llama")]
    pods = [pod(f"llama-5d4f8b7c9-{s}", NOW_S - 900, NOW_S - 800) for s in ("bcdfg", "hjklm", "npqrs")]
    pods.append(pod("llama-6b5c4d7f8-tvwxz", NOW_S - 20, None, owner=("ReplicaSet", "llama-6b5c4d7f8")))
    s = _Namespace.index(NS, [deployment("llama", 3)], rss, pods).summarise("llama", NOW_S, 60.0)
    assert (s.total, s.ready, s.warming_ages_s) == (3, 3, ())
    assert len(s.pods) == 4  # its metrics are still the Deployment's demand
    assert s.prefixes == frozenset({"llama-5d4f8b7c9-", "llama-6b5c4d7f8-"})
    assert "surge" in s.notes["rollout"]


def test_a_statefulset_or_a_missing_deployment_is_an_error_not_zero() -> None:
    pods = [pod("canary-0", NOW_S - 500, NOW_S - 460, owner=("StatefulSet", "canary"))]
    ns = _Namespace.index(NS, [], [], pods)
    assert "is a StatefulSet" in (ns.summarise("canary", NOW_S, 60.0).error or "")
    assert ns.summarise("gone", NOW_S, 60.0).error == f"no Deployment {NS}/gone (Kubernetes API)"


def test_unset_spec_replicas_is_the_apis_default_of_one() -> None:
    pods = [pod(f"llama-5d4f8b7c9-{s}", NOW_S - 900, NOW_S - 800) for s in ("bcdfg", "hjklm")]
    s = _Namespace.index(NS, [deployment("llama", None)], [replicaset("llama-5d4f8b7c9", "llama")], pods)
    assert s.summarise("llama", NOW_S, 60.0).total == 1


def test_a_pod_without_conditions_is_warming() -> None:
    p = V1Pod(
        metadata=V1ObjectMeta(name="x", creation_timestamp=_t(NOW_S - 12)),
        status=V1PodStatus(phase="Pending"),
    )
    facts = pod_facts(p)
    assert facts is not None and (facts.ready, facts.created_s) == (False, NOW_S - 12)
