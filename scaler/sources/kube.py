"""The Kubernetes reader: each Deployment's pods by ownership, which are Ready, which are warming, how long
clean start-ups took.

Uses the ``kubernetes`` client, in-cluster or from a kubeconfig. Three list calls per namespace per refresh
(Deployments, ReplicaSets, pods), whatever the number of ScaledObjects in it. A Deployment's pods are those
whose controller is one of the ReplicaSets whose controller is the Deployment (owner references by uid),
not those whose names look like it. Read-only: the RBAC in deploy/ grants get/list/watch on Deployments,
ReplicaSets and pods and nothing else. A namespace that cannot be read (no RoleBinding: 403) is reported
on its own, so only its ScaledObjects fall back to kube-state-metrics.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scaler.core.target import Target
from scaler.sources.membership import (
    PodFacts,
    PodStates,
    count_pods,
    generated_prefix,
    not_a_deployment,
)

log = logging.getLogger("scaler.sources.kube")

Key = tuple[str, str, str]


class KubeError(RuntimeError):
    """The Kubernetes API could not be read; the message names the call."""


def _seconds(t: dt.datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


class KubernetesReader:
    """Reads Deployments, ReplicaSets and pods with the official client; ``timeout_s`` bounds every call."""

    def __init__(self, core: Any, apps: Any, timeout_s: float = 5.0) -> None:
        self._core = core  # kubernetes.client.CoreV1Api
        self._apps = apps  # kubernetes.client.AppsV1Api
        self.timeout_s = timeout_s

    @classmethod
    def connect(cls, kubeconfig: str | None = None, timeout_s: float = 5.0) -> KubernetesReader:
        """In-cluster config when running in a pod, else ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config)."""
        import yaml
        from kubernetes import client, config

        # A private Configuration, not the client's global default: explain and tests may hold several.
        cfg = client.Configuration()
        try:
            if kubeconfig is None:
                try:
                    config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                except config.ConfigException:
                    config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            else:
                config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        except (OSError, TypeError, ValueError, AttributeError, config.ConfigException, yaml.YAMLError) as e:
            # A kubeconfig that is not YAML, or YAML of the wrong shape, is a one-line error, not a traceback.
            raise KubeError(f"no Kubernetes configuration: {_short(e)}") from e
        api = client.ApiClient(cfg)
        return cls(client.CoreV1Api(api), client.AppsV1Api(api), timeout_s=timeout_s)

    def pod_states(
        self, targets: Sequence[Target], now_s: float
    ) -> tuple[dict[Key, PodStates], dict[str, str]]:
        """Pod states per target, and for each namespace that could not be read, why (its targets are left
        out: the caller falls back for them alone)."""
        by_ns: dict[str, list[Target]] = defaultdict(list)
        for t in targets:
            by_ns[t.namespace].append(t)
        out: dict[Key, PodStates] = {}
        failed: dict[str, str] = {}
        for namespace, ts in sorted(by_ns.items()):
            try:
                objects = self._read(namespace)
            except KubeError as exc:
                failed[namespace] = str(exc)
                continue
            for t in ts:
                out[(t.namespace, t.name, t.config.deployment)] = objects.summarise(
                    t.config.deployment, now_s, t.config.cold_start_s
                )
        return out, failed

    def _read(self, namespace: str) -> _Namespace:
        calls = (
            ("deployments", self._apps.list_namespaced_deployment),
            ("replicasets", self._apps.list_namespaced_replica_set),
            ("pods", self._core.list_namespaced_pod),
        )
        items: dict[str, list[Any]] = {}
        for what, call in calls:
            try:
                items[what] = call(namespace, _request_timeout=self.timeout_s).items or []
            except Exception as exc:  # ApiException (403 without a RoleBinding), urllib3 errors, timeouts
                raise KubeError(f"list {what} in namespace {namespace}: {_short(exc)}") from exc
        return _Namespace.index(namespace, items["deployments"], items["replicasets"], items["pods"])


@dataclass
class _Namespace:
    """One namespace's objects, indexed once per refresh so each ScaledObject reads only its own pods."""

    namespace: str
    deployments: dict[str, Any] = field(default_factory=dict)  # name -> V1Deployment
    replicasets: dict[str, list[Any]] = field(default_factory=dict)  # Deployment uid -> its ReplicaSets
    pods: dict[str, list[Any]] = field(default_factory=dict)  # ReplicaSet uid -> its pods
    statefulsets: frozenset[str] = frozenset()  # names of StatefulSets that own pods here

    @classmethod
    def index(
        cls, namespace: str, deployments: list[Any], replicasets: list[Any], pods: list[Any]
    ) -> _Namespace:
        ns = cls(namespace, deployments={d.metadata.name: d for d in deployments})
        by_owner: dict[str, list[Any]] = defaultdict(list)
        for rs in replicasets:
            owner = _controller(rs)
            if owner is not None and owner.kind == "Deployment":
                by_owner[owner.uid].append(rs)
        ns.replicasets = dict(by_owner)
        pods_by_owner: dict[str, list[Any]] = defaultdict(list)
        statefulsets: set[str] = set()
        for pod in pods:
            owner = _controller(pod)
            if owner is None:
                continue
            if owner.kind == "ReplicaSet":
                pods_by_owner[owner.uid].append(pod)
            elif owner.kind == "StatefulSet":
                statefulsets.add(owner.name)
        ns.pods = dict(pods_by_owner)
        ns.statefulsets = frozenset(statefulsets)
        return ns

    def summarise(self, name: str, now_s: float, prior_cold_start_s: float) -> PodStates:
        deployment = self.deployments.get(name)
        if deployment is None:
            return not_a_deployment(self.namespace, name, self.statefulsets, "Kubernetes API")
        replicasets = self.replicasets.get(deployment.metadata.uid, [])
        pods = [p for rs in replicasets for p in self.pods.get(rs.metadata.uid, [])]
        spec = deployment.spec.replicas if deployment.spec is not None else None
        return count_pods(
            [facts for p in pods if (facts := pod_facts(p)) is not None],
            spec if spec is not None else 1,  # the API's default for an unset spec.replicas
            frozenset(generated_prefix(rs.metadata.name) for rs in replicasets),
            now_s,
            prior_cold_start_s,
        )


def pod_facts(pod: Any) -> PodFacts | None:
    """A live pod's facts; None for a terminating or finished one (it is neither capacity nor coming)."""
    meta = pod.metadata
    if meta.deletion_timestamp is not None or (pod.status and pod.status.phase in ("Succeeded", "Failed")):
        return None
    cond = _ready_condition(pod)
    ready = cond is not None and cond.status == "True"
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return PodFacts(
        name=meta.name or "",
        created_s=_seconds(meta.creation_timestamp),
        ready=ready,
        ready_at_s=_seconds(cond.last_transition_time) if ready and cond is not None else None,
        restarts=sum(s.restart_count or 0 for s in statuses),
    )


def open_kubernetes(mode: str, timeout_s: float = 5.0) -> KubernetesReader | None:
    """``off``: no reader. ``auto``: in-cluster or the default kubeconfig if there is one, else None (the
    scaler then falls back to kube-state-metrics). Anything else is a kubeconfig path that must load."""
    if mode == "off":
        return None
    if mode == "auto":
        try:
            return KubernetesReader.connect(timeout_s=timeout_s)
        except KubeError as exc:
            log.info("no Kubernetes API access (%s); warming pods from kube-state-metrics if present", exc)
            return None
    return KubernetesReader.connect(mode, timeout_s=timeout_s)


def _controller(obj: Any) -> Any:
    refs = obj.metadata.owner_references or []
    return next((r for r in refs if r.controller), None)


def _ready_condition(pod: Any) -> Any:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == "Ready"), None)


def _short(exc: BaseException) -> str:
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    if isinstance(status, int) and reason:  # kubernetes ApiException: its str() carries every header
        return f"HTTP {status} {reason}"
    return str(exc).replace("\n", " ")[:200]
