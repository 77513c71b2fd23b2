"""A minimal stand-in for the Kubernetes API server, on loopback, for tests only.

No kube-apiserver can be installed on this machine, so this answers the three list calls the scaler
makes per namespace, with objects shaped like the real ones (the official client deserialises them):

- ``GET /apis/apps/v1/namespaces/<ns>/deployments``: DeploymentList
- ``GET /apis/apps/v1/namespaces/<ns>/replicasets``: ReplicaSetList
- ``GET /api/v1/namespaces/<ns>/pods``: PodList

A namespace in ``forbidden`` answers 403, as one without the scaler's RoleBinding does; everything else is
404. It is deliberately small: no controller runs here. A test writes down the world it wants (a
Deployment, its ReplicaSets, their pods, owner references between them; a rolling update is a second
ReplicaSet whose pods surge above ``spec.replicas``) and the stand-in serves it as it is. Deployment
status is counted from the pods, as the Deployment controller would report it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Kubernetes' generateName: a base longer than 58 characters is cut to 58, then 5 random characters are
# appended (k8s.io/apiserver/pkg/storage/names: maxNameLength 63 - randomLength 5).
MAX_GENERATED_BASE = 58
# The owner kinds a test may give a pod, with their API groups.
_OWNER_API = {"ReplicaSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}


def generated_pod_name(owner: str, suffix: str) -> str:
    """The name Kubernetes gives a pod of ``owner`` (generateName ``<owner>-``) with random ``suffix``.

    ``llama-5d4f8b7c9`` + ``x2kqp`` -> ``llama-5d4f8b7c9-x2kqp``; a 49-character Deployment's ReplicaSet
    ``<49>-5d4f8b7c9f`` (60 characters) gives ``<49>-5d4f8b7c`` + ``x2kqp``: no hyphen before the suffix.
    """
    return (owner + "-")[:MAX_GENERATED_BASE] + suffix


def uid(kind: str, namespace: str, name: str) -> str:
    return f"uid-{kind.lower()}-{namespace}-{name}"


@dataclass
class FakeKubePod:
    namespace: str
    name: str
    created_s: float
    ready_s: float | None = None  # None: not Ready (warming); else the Ready condition's last transition
    deleting: bool = False
    owner: tuple[str, str] | None = None  # (kind, name) of the controller: ReplicaSet, StatefulSet or Job
    restarts: int = 0  # container restarts
    phase: str = "Running"

    def to_json(self) -> dict[str, object]:
        conditions = [
            {
                "type": "Ready",
                "status": "True" if self.ready_s is not None else "False",
                "lastTransitionTime": _iso(self.ready_s if self.ready_s is not None else self.created_s),
            }
        ]
        meta: dict[str, object] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": uid("Pod", self.namespace, self.name),
            "creationTimestamp": _iso(self.created_s),
        }
        if self.owner is not None:
            kind, name = self.owner
            meta["ownerReferences"] = [_owner_reference(kind, self.namespace, name)]
        if self.deleting:
            meta["deletionTimestamp"] = _iso(self.created_s + 1)
        container_status = {
            "name": "vllm",
            "image": "vllm/vllm-openai",
            "imageID": "",
            "ready": self.ready_s is not None,
            "restartCount": self.restarts,
        }
        return {
            "metadata": meta,
            "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
            "status": {
                "phase": self.phase,
                "conditions": conditions,
                "containerStatuses": [container_status],
            },
        }


@dataclass
class FakeReplicaSet:
    namespace: str
    name: str  # <deployment>-<pod-template-hash>
    deployment: str

    def to_json(self) -> dict[str, object]:
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": uid("ReplicaSet", self.namespace, self.name),
                "ownerReferences": [_owner_reference("Deployment", self.namespace, self.deployment)],
            },
            "spec": {"selector": {"matchLabels": {"app": self.deployment}}},
        }


@dataclass
class FakeDeployment:
    namespace: str
    name: str
    replicas: int  # spec.replicas
    max_surge: int = 1
    replicasets: list[FakeReplicaSet] = field(default_factory=list)  # oldest first; the last is the newest

    def to_json(self, pods: list[FakeKubePod]) -> dict[str, object]:
        mine = {rs.name for rs in self.replicasets}
        live = [p for p in pods if p.owner and p.owner[1] in mine and not p.deleting and p.phase == "Running"]
        newest = self.replicasets[-1].name if self.replicasets else ""
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "uid": uid("Deployment", self.namespace, self.name),
                "generation": 1,
            },
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {"app": self.name}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": self.max_surge}},
                "template": {
                    "metadata": {"labels": {"app": self.name}},
                    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai"}]},
                },
            },
            "status": {
                "observedGeneration": 1,
                "replicas": len(live),
                "updatedReplicas": sum(1 for p in live if p.owner and p.owner[1] == newest),
                "readyReplicas": sum(1 for p in live if p.ready_s is not None),
            },
        }


def _owner_reference(kind: str, namespace: str, name: str) -> dict[str, object]:
    return {
        "apiVersion": _OWNER_API.get(kind, "apps/v1"),
        "kind": kind,
        "name": name,
        "uid": uid(kind, namespace, name),
        "controller": True,
    }


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubeAPI:
    """The world (``deployments``, ``pods``, ``forbidden`` namespaces) is mutable; ``requests`` records
    every path asked."""

    def __init__(self) -> None:
        self.deployments: list[FakeDeployment] = []
        self.pods: list[FakeKubePod] = []
        self.forbidden: set[str] = set()
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.requests.append(self.path)
                status, body = api._answer(self.path.split("?")[0].strip("/").split("/"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    # -- building the world -------------------------------------------------------------------------
    def add_deployment(
        self, namespace: str, name: str, replicas: int, template_hash: str = "5d4f8b7c9"
    ) -> FakeDeployment:
        """A Deployment with one ReplicaSet, ``<name>-<template_hash>``."""
        deployment = FakeDeployment(namespace, name, replicas)
        deployment.replicasets.append(FakeReplicaSet(namespace, f"{name}-{template_hash}", name))
        self.deployments.append(deployment)
        return deployment

    def rollout(self, deployment: FakeDeployment, template_hash: str) -> FakeReplicaSet:
        """Start a rolling update: a new ReplicaSet beside the old ones (pods are added by the test)."""
        rs = FakeReplicaSet(deployment.namespace, f"{deployment.name}-{template_hash}", deployment.name)
        deployment.replicasets.append(rs)
        return rs

    def add_pod(
        self,
        owner: FakeReplicaSet,
        suffix: str,
        created_s: float,
        ready_s: float | None = None,
        **extra: object,
    ) -> FakeKubePod:
        """A pod of ReplicaSet ``owner``, named as Kubernetes names it."""
        pod = FakeKubePod(
            owner.namespace,
            generated_pod_name(owner.name, suffix),
            created_s,
            ready_s,
            owner=("ReplicaSet", owner.name),
            **extra,  # type: ignore[arg-type]
        )
        self.pods.append(pod)
        return pod

    # -- serving ------------------------------------------------------------------------------------
    def _answer(self, parts: list[str]) -> tuple[int, dict[str, object]]:
        core = len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"]
        apps = len(parts) == 6 and parts[:4] == ["apis", "apps", "v1", "namespaces"]
        if not (core or apps):
            return 404, {"kind": "Status", "apiVersion": "v1", "code": 404, "message": "not served"}
        namespace, resource = parts[-2], parts[-1]
        if namespace in self.forbidden:
            return 403, {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Forbidden",
                "code": 403,
                "message": f'{resource} is forbidden: User "system:serviceaccount:llm-keda-scaler:'
                f'llm-keda-scaler" cannot list resource "{resource}" in the namespace "{namespace}"',
            }
        items: list[dict[str, object]]
        if core and resource == "pods":
            kind, items = "PodList", [p.to_json() for p in self.pods if p.namespace == namespace]
        elif apps and resource == "deployments":
            kind = "DeploymentList"
            items = [d.to_json(self.pods) for d in self.deployments if d.namespace == namespace]
        elif apps and resource == "replicasets":
            kind = "ReplicaSetList"
            items = [
                rs.to_json() for d in self.deployments if d.namespace == namespace for rs in d.replicasets
            ]
        else:
            return 404, {"kind": "Status", "apiVersion": "v1", "code": 404, "message": "not served"}
        api_version = "v1" if core else "apps/v1"
        return 200, {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {"token": "test-token"}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class TextExporter:
    """Serves a settable exposition-format body at ``/metrics`` (a gateway queue, kube-state-metrics)."""

    def __init__(self) -> None:
        self.body = ""
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = exporter.body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._httpd.server_port}"

    def scrape_config(self) -> str:
        """A scrape job (for PrometheusProcess's ``extra_scrape``) that keeps the body's own labels."""
        return f"""  - job_name: text
    honor_labels: true
    static_configs:
      - targets: ["{self.address}"]
"""

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
