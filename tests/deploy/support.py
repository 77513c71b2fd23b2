"""Rendering deploy/ with the real kubectl and validating what comes out.

``render(dir)`` runs ``kubectl kustomize``; ``strict_crd_schema`` turns a CRD's openAPIV3Schema into a
JSON Schema that refuses unknown fields, as the API server does with strict field validation.
"""

from __future__ import annotations

import copy
import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.harness.prometheus import require_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KEDA_CRD = Path("/work/shared/upstream/keda/keda.sh_scaledobjects.yaml")
if not KEDA_CRD.exists():  # the same file, wherever the shared directory is mounted
    KEDA_CRD = REPO.parent / "shared" / "upstream" / "keda" / "keda.sh_scaledobjects.yaml"

# KEDA's ScaledObject CRD as released, for the oldest and the newest release the README claims (see
# data/SOURCE.md for where each file comes from): release -> file.
DATA = Path(__file__).resolve().parent / "data"
KEDA_RELEASE_CRDS = {
    "2.18.0": DATA / "keda-2.18.0.scaledobjects.yaml",
    "2.20.2": DATA / "keda-2.20.2.scaledobjects.yaml",
}

Obj = dict[str, Any]


def kustomize_dirs() -> list[str]:
    """Every directory under deploy/ that has a kustomization.yaml, relative to deploy/."""
    return sorted(p.parent.relative_to(DEPLOY).as_posix() for p in DEPLOY.rglob("kustomization.yaml"))


def require_tool(name: str) -> str:
    """Path of a command-line tool the deploy tests render manifests with (see require_binary)."""
    return require_binary(name, "deploy tests render manifests with it")


@functools.cache
def _render_text(directory: str) -> str:
    kubectl = require_tool("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"kubectl kustomize deploy/{directory} failed: {proc.stderr.strip()}")
    return proc.stdout


def render(directory: str) -> list[Obj]:
    """The objects ``kubectl kustomize deploy/<directory>`` renders (fresh copies: tests may mutate)."""
    return [copy.deepcopy(o) for o in yaml.safe_load_all(_render_text(directory)) if o]


def render_all() -> dict[str, list[Obj]]:
    return {d: render(d) for d in kustomize_dirs()}


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o.get("kind") == kind]


def ident(o: Obj) -> str:
    meta = o.get("metadata", {})
    ns = meta.get("namespace")
    return f"{o.get('kind')}/{(ns + '/') if ns else ''}{meta.get('name')}"


def pod_spec(o: Obj) -> Obj | None:
    """The pod spec of a workload (Deployment, DaemonSet, StatefulSet), or None."""
    if o.get("kind") in ("Deployment", "DaemonSet", "StatefulSet"):
        spec: Obj = o["spec"]["template"]["spec"]
        return spec
    return None


def strict_crd_schema(schema: Obj) -> Obj:
    """A CRD openAPIV3Schema as JSON Schema, strict like ``kubectl apply --validate=strict``.

    - ``x-kubernetes-int-or-string`` becomes ``anyOf: [integer, string]`` where the CRD lacks it;
    - an object with ``properties`` and neither ``additionalProperties`` nor
      ``x-kubernetes-preserve-unknown-fields`` refuses unknown fields (the API server prunes or, with
      strict field validation, rejects them; a typo like ``cooldownPeriods`` must fail here).
    ``x-kubernetes-validations`` (CEL) are not JSON Schema: tests check those rules themselves.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out

    result: Obj = walk(schema)
    return result


@functools.cache
def _crd_text(path: Path) -> str:
    return path.read_text()


def keda_crd(path: Path = KEDA_CRD) -> Obj:
    """A KEDA ScaledObject CRD file, parsed (a fresh copy: tests may mutate it)."""
    crd: Obj = yaml.safe_load(_crd_text(path))
    return crd


def scaledobject_schema(version: str = "v1alpha1", crd: Path | Obj = KEDA_CRD) -> Obj:
    """The strict JSON Schema of a ScaledObject for KEDA's CRD (main by default; a path or a parsed CRD)."""
    parsed = keda_crd(crd) if isinstance(crd, Path) else crd
    for v in parsed["spec"]["versions"]:
        if v["name"] == version:
            return strict_crd_schema(v["schema"]["openAPIV3Schema"])
    raise AssertionError(f"KEDA CRD has no version {version}")
