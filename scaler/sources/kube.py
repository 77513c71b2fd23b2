"""The Kubernetes reader: pods of each Deployment, which are Ready, which are warming, how long they took.

Uses the ``kubernetes`` client, in-cluster or from a kubeconfig. One ``list pods`` call per namespace per
refresh, whatever the number of ScaledObjects in it. Read-only: the RBAC in deploy/ grants get/list/watch
on pods and deployments and nothing else.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from scaler.core.target import Target
from scaler.sources.query import PodStates, pod_pattern

log = logging.getLogger("scaler.sources.kube")

Key = tuple[str, str, str]


class KubeError(RuntimeError):
    """The Kubernetes API could not be read; the message names the call."""


def _seconds(t: dt.datetime | None) -> float | None:
    return t.timestamp() if t is not None else None


class KubernetesReader:
    """Reads pod states through the official client; ``timeout_s`` bounds every call."""

    def __init__(self, api: Any, timeout_s: float = 5.0) -> None:
        self._api = api  # kubernetes.client.CoreV1Api
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
        return cls(client.CoreV1Api(client.ApiClient(cfg)), timeout_s=timeout_s)

    def pod_states(self, targets: Sequence[Target], now_s: float) -> dict[Key, PodStates]:
        """Pod states per target; raises KubeError if any namespace cannot be listed."""
        by_ns: dict[str, list[Target]] = defaultdict(list)
        for t in targets:
            by_ns[t.namespace].append(t)
        out: dict[Key, PodStates] = {}
        for namespace, ts in sorted(by_ns.items()):
            try:
                pods = self._api.list_namespaced_pod(namespace, _request_timeout=self.timeout_s).items
            except Exception as exc:  # ApiException, urllib3 errors, timeouts: all mean "cannot read"
                raise KubeError(f"list pods in namespace {namespace}: {_short(exc)}") from exc
            for t in ts:
                out[(t.namespace, t.name, t.config.deployment)] = summarise_pods(
                    [p for p in pods if pod_pattern(t.config.deployment).fullmatch(p.metadata.name or "")],
                    now_s,
                )
        return out


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


def summarise_pods(pods: Sequence[Any], now_s: float) -> PodStates:
    """Ready and warming pods (terminating ones excluded) and the creation -> Ready durations."""
    total = ready = 0
    warming: list[float] = []
    starts: list[tuple[float, float]] = []
    for pod in pods:
        meta = pod.metadata
        if meta.deletion_timestamp is not None or (
            pod.status and pod.status.phase in ("Succeeded", "Failed")
        ):
            continue
        created = _seconds(meta.creation_timestamp)
        total += 1
        cond = _ready_condition(pod)
        if cond is not None and cond.status == "True":
            ready += 1
            ready_at = _seconds(cond.last_transition_time)
            if created is not None and ready_at is not None and ready_at > created:
                starts.append((created, ready_at - created))
        else:
            warming.append(max(0.0, now_s - created) if created is not None else 0.0)
    return PodStates(
        total=total,
        ready=ready,
        warming_ages_s=tuple(sorted(warming, reverse=True)),
        cold_starts_s=tuple(d for _, d in sorted(starts)),
    )


def _ready_condition(pod: Any) -> Any:
    conditions = (pod.status.conditions if pod.status else None) or []
    return next((c for c in conditions if c.type == "Ready"), None)


def _short(exc: BaseException) -> str:
    return str(exc).replace("\n", " ")[:200]
