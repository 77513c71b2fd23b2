"""deploy/: every kustomize directory renders with the real kubectl, every object validates offline, and
the rules a reviewer checks by eye hold (GPU care, a locked-down scaler, metadata the scaler accepts)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from scaler.core.config import parse_metadata
from scaler.core.target import target_from_ref
from tests.deploy.support import (
    DEPLOY,
    KEDA_CRD,
    KEDA_RELEASE_CRDS,
    REPO,
    Obj,
    ident,
    keda_crd,
    kustomize_dirs,
    of_kind,
    pod_spec,
    render,
    render_all,
    scaledobject_schema,
)

# Kubernetes versions validated against: the oldest we support (the preStop `sleep` action is on by
# default from 1.30) and the newest schema kubernetes-validate ships.
K8S_VERSIONS = ("1.31.0", "1.37.0")
# Custom resources: no upstream schema on this machine except KEDA's ScaledObject CRD; the others get
# the structural checks below.
CRD_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "ClusterIssuer"),
}
EXPECTED_DIRS = {
    "cert-manager",
    "http-add-on",
    "dcgm",
    "grafana",
    "kserve",
    "scaler",
    "scaling",
    "serving",
    "triton",
    "vllm",
}
GPU = "nvidia.com/gpu"
SCALER_NS = "llm-keda-scaler"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    return render_all()


def _all(rendered: dict[str, list[Obj]]) -> list[Obj]:
    return [o for objs in rendered.values() for o in objs]


def _one(objects: list[Obj], kind: str, name: str) -> Obj:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {[ident(o) for o in found]}"
    return found[0]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _validation_message(exc: Exception) -> str:
    path = "/".join(str(p) for p in getattr(exc, "absolute_path", []) or [])
    return f"{path or '<root>'}: {getattr(exc, 'message', str(exc))}"


# ---------------------------------------------------------------------------------------------- render


def test_the_expected_kustomize_directories_exist() -> None:
    assert set(kustomize_dirs()) == EXPECTED_DIRS


@pytest.mark.parametrize("directory", sorted(EXPECTED_DIRS))
def test_kustomize_directory_renders(directory: str) -> None:
    objects = render(directory)
    assert objects, f"deploy/{directory} rendered nothing"
    for o in objects:
        assert o.get("apiVersion") and o.get("kind") and o.get("metadata", {}).get("name"), o
        assert o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "llm-keda-scaler", ident(o)
    names = [ident(o) for o in objects]
    assert len(names) == len(set(names)), f"duplicate objects in deploy/{directory}: {names}"


def test_no_two_directories_define_the_same_object(rendered: dict[str, list[Obj]]) -> None:
    seen: dict[str, str] = {}
    for directory, objects in rendered.items():
        for o in objects:
            key = ident(o)
            assert key not in seen, f"{key} is in both deploy/{seen[key]} and deploy/{directory}"
            seen[key] = directory


# ------------------------------------------------------------------------------------ offline schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_objects_validate_strictly(rendered: dict[str, list[Obj]], version: str) -> None:
    checked = 0
    for o in _all(rendered):
        if (o["apiVersion"], o["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{ident(o)} is invalid for Kubernetes {version}: {_validation_message(exc)}")
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{ident(o)}: {o['apiVersion']} {o['kind']} is neither built in nor a known CRD")
        checked += 1
    assert checked >= 20, checked


def test_strict_validation_catches_a_typo() -> None:
    deployment = _one(render("vllm"), "Deployment", "llama")
    deployment["spec"]["template"]["spec"]["containers"][0]["startupProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def _scaledobjects(rendered: dict[str, list[Obj]]) -> list[Obj]:
    found = of_kind(_all(rendered), "ScaledObject")
    assert {o["metadata"]["name"] for o in found} == {"llama", "triton", "llama-kserve"}
    return found


# KEDA's CRD of main and of the oldest and newest release the README claims (tests/deploy/data).
KEDA_CRDS = {"main": KEDA_CRD, **KEDA_RELEASE_CRDS}


@pytest.mark.parametrize("keda", list(KEDA_CRDS))
def test_scaledobjects_validate_against_kedas_crd(rendered: dict[str, list[Obj]], keda: str) -> None:
    validator = jsonschema.Draft7Validator(scaledobject_schema(crd=KEDA_CRDS[keda]))
    for so in _scaledobjects(rendered):
        errors = sorted(validator.iter_errors(so), key=lambda e: list(e.absolute_path))
        assert not errors, f"{ident(so)} on KEDA {keda}: " + "; ".join(_validation_message(e) for e in errors)
        # The CRD's one CEL rule (x-kubernetes-validations, from 2.20), which JSON Schema cannot express.
        spec = so["spec"]
        assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100), ident(so)


@pytest.mark.parametrize("release", list(KEDA_RELEASE_CRDS))
def test_the_vendored_keda_crds_are_the_releases_they_claim(release: str) -> None:
    crd = keda_crd(KEDA_RELEASE_CRDS[release])
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "scaledobjects.keda.sh"
    # The labels KEDA's release build puts on its CRDs (data/SOURCE.md).
    assert crd["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "keda-operator",
        "app.kubernetes.io/version": release,
    }
    (v1alpha1,) = crd["spec"]["versions"]
    assert v1alpha1["name"] == "v1alpha1"
    assert v1alpha1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["triggers"]


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def test_the_vendored_keda_releases_are_the_ends_of_the_readmes_claim() -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"\*\*Versions supported\*\*: KEDA (\d+\.\d+) to (\d+\.\d+)", readme)
    assert match, "README.md no longer states the KEDA versions it supports"
    oldest, newest = (_minor(v) for v in match.groups())
    releases = sorted(_minor(r) for r in KEDA_RELEASE_CRDS)
    assert (releases[0], releases[-1]) == (oldest, newest), (match.group(0), list(KEDA_RELEASE_CRDS))


def _behavior_rules(crd: Obj) -> list[Obj]:
    (v1alpha1,) = crd["spec"]["versions"]
    props = v1alpha1["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    behavior = props["advanced"]["properties"]["horizontalPodAutoscalerConfig"]["properties"]["behavior"]
    return [behavior["properties"][d]["properties"] for d in ("scaleUp", "scaleDown")]


def test_a_field_the_oldest_keda_lacks_fails_validation(rendered: dict[str, list[Obj]]) -> None:
    """What KEDA 2.17 would say: its CRD has no HPA `tolerance`; deploy/ sets it, so validation fails."""
    oldest = min(KEDA_RELEASE_CRDS, key=_minor)
    crd = keda_crd(KEDA_RELEASE_CRDS[oldest])
    for rules in _behavior_rules(crd):
        del rules["tolerance"]
    validator = jsonschema.Draft7Validator(scaledobject_schema(crd=crd))
    for so in _scaledobjects(rendered):
        messages = [e.message for e in validator.iter_errors(so)]
        assert any("'tolerance' was unexpected" in m for m in messages), (ident(so), messages)


@pytest.mark.parametrize("keda", list(KEDA_CRDS))
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "cooldownPeriods"), 30),  # a typo: unknown fields are refused
        (("spec", "fallback", "behavior"), "sometimes"),  # not in the enum
        (("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "tolerance"), "1%"),
    ],
)
def test_every_keda_crd_refuses_bad_scaledobjects(keda: str, path: tuple[str, ...], value: Any) -> None:
    so = _one(render("scaling"), "ScaledObject", "llama")
    node = so
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    validator = jsonschema.Draft7Validator(scaledobject_schema(crd=KEDA_CRDS[keda]))
    assert list(validator.iter_errors(so)), (keda, path)


@pytest.mark.parametrize("keda", ["main", "2.20.2"])
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "tolerance"), "1%"),
        # `minimum: 0` from KEDA 2.20 on (2.18 leaves a negative count to KEDA's admission webhook)
        (("spec", "minReplicaCount"), -1),
    ],
)
def test_the_keda_schema_refuses_bad_scaledobjects(keda: str, path: tuple[str, ...], value: Any) -> None:
    so = _one(render("scaling"), "ScaledObject", "llama")
    node = so
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(jsonschema.Draft7Validator(scaledobject_schema(crd=KEDA_CRDS[keda])).iter_errors(so)), path


# ------------------------------------------------------------------------------------ ScaledObjects


def test_every_scaledobject_is_one_external_push_trigger_the_scaler_accepts(
    rendered: dict[str, list[Obj]],
) -> None:
    objects = _all(rendered)
    scaler_service = _one(objects, "Service", "llm-keda-scaler")
    grpc_port = next(p["port"] for p in scaler_service["spec"]["ports"] if p["name"] == "grpc")
    server_cert = _one(objects, "Certificate", "llm-keda-scaler-tls")
    auths = {
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in of_kind(objects, "TriggerAuthentication")
    }
    for so in _scaledobjects(rendered):
        spec, name = so["spec"], ident(so)
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "external-push", name
        assert trigger.get("metricType", "AverageValue") == "AverageValue", name
        metadata = trigger["metadata"]
        config = parse_metadata(metadata)  # raises ConfigError naming the key if the contract is broken
        # ... and the whole trigger as the scaler validates it over gRPC: a ScaledObject that may reach zero
        # has an activationQuery, confined to its own namespace.
        target_from_ref(so["metadata"]["namespace"], so["metadata"]["name"], metadata)
        assert config.deployment == spec["scaleTargetRef"]["name"], name
        assert spec["scaleTargetRef"]["kind"] == "Deployment", name
        # KEDA dials scalerAddress and checks the scaler's certificate against that host name.
        host, _, port = metadata["scalerAddress"].rpartition(":")
        assert int(port) == grpc_port, name
        assert host in server_cert["spec"]["dnsNames"], f"{name}: {host} is not a SAN of the scaler's cert"
        assert host.split(".")[:2] == ["llm-keda-scaler", SCALER_NS], name
        # TLS material comes from a TriggerAuthentication in the ScaledObject's own namespace.
        assert (so["metadata"]["namespace"], trigger["authenticationRef"]["name"]) in auths, name
        assert metadata.get("enableTLS") == "true", name
        # minReplicaCount and scaleToZero agree: 0 lets the scaler release the last replica, >= 1 never.
        min_replicas = spec.get("minReplicaCount", 0)
        assert config.scale_to_zero == (min_replicas == 0), name


INTERCEPTOR_QUERY = re.compile(
    r"sum\(interceptor_request_concurrency\{"
    r'route_namespace="(?P<ns>[a-z0-9-]+)", route_name="(?P<name>[a-z0-9-]+)"\}\)'
)


def test_scaledobjects_that_reach_zero_wake_on_the_http_add_ons_queue(rendered: dict[str, list[Obj]]) -> None:
    """At zero no pod reports a series: each ScaledObject that may reach zero reads the requests the KEDA
    HTTP add-on's interceptor holds for a route to its own Deployment, a route that leaves the
    ScaledObject to us, and the interceptor's metrics are scraped."""
    objects = _all(rendered)
    routes = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o for o in of_kind(objects, "HTTPScaledObject")
    }
    reaching_zero = [so for so in _scaledobjects(rendered) if so["spec"].get("minReplicaCount", 0) == 0]
    assert {so["metadata"]["name"] for so in reaching_zero} == {"llama", "llama-kserve"}
    for so in reaching_zero:
        query = so["spec"]["triggers"][0]["metadata"]["activationQuery"]
        m = INTERCEPTOR_QUERY.fullmatch(query)
        assert m, f"{ident(so)}: {query}"
        assert m["ns"] == so["metadata"]["namespace"], ident(so)
        route = routes[(m["ns"], m["name"])]
        assert route["spec"]["scaleTargetRef"]["name"] == so["spec"]["scaleTargetRef"]["name"], ident(so)
        # KEDA admits one ScaledObject per Deployment: the add-on must not write its own.
        assert (
            route["metadata"]["annotations"]["httpscaledobject.keda.sh/skip-scaledobject-creation"] == "true"
        )
    (monitor,) = [o for o in of_kind(objects, "ServiceMonitor") if o["metadata"]["namespace"] == "keda"]
    assert monitor["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/component": "interceptor"}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]  # the chart's 2223 Service


def test_the_fallback_comment_counts_errors_as_keda_does() -> None:
    """KEDA's fallback starts once NumberOfFailures > FailureThreshold: the 4th error with threshold 3."""
    text = (DEPLOY / "scaling" / "vllm.yaml").read_text()
    so = _one(render("scaling"), "ScaledObject", "llama")
    threshold = so["spec"]["fallback"]["failureThreshold"]
    ordinal = {3: "3rd", 4: "4th", 5: "5th"}[threshold + 1]
    assert f"the {ordinal} error with {threshold}" in text
    assert "After 3 consecutive scaler errors" not in text


def test_the_scaler_owns_stabilisation_and_scale_to_zero(rendered: dict[str, list[Obj]]) -> None:
    for so in _scaledobjects(rendered):
        spec, name = so["spec"], ident(so)
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        # The scaler already holds scale-down for >= 60 s and a cold start; the HPA must not add 300 s.
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 0, name
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0, name
        # Scale-up policies must not cut a right-sized first step short (1 -> 8 in one period).
        allowed = max(
            (p["value"] / 100 * 1 if p["type"] == "Percent" else p["value"])
            for p in behavior["scaleUp"]["policies"]
        )
        assert 1 + allowed >= spec["maxReplicaCount"], name
        # The scaler decides when releasing the last replica pays and pushes it; a KEDA cooldown would
        # add its length to every release (30 s x 4 GPUs each time on the simulator's default profile).
        assert spec["cooldownPeriod"] == 0, name
        # Errors never shrink a loaded fleet.
        assert spec["fallback"]["behavior"] == "currentReplicasIfHigher", name
        assert spec["fallback"]["replicas"] >= 1, name
        assert spec["advanced"]["restoreToOriginalReplicaCount"] is False, name


def test_trigger_authentication_maps_the_client_secret(rendered: dict[str, list[Obj]]) -> None:
    objects = _all(rendered)
    (auth,) = of_kind(objects, "TriggerAuthentication")
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    client = _one(objects, "Certificate", "llm-keda-scaler-client")
    secret = client["spec"]["secretName"]
    assert refs == {
        "caCert": (secret, "ca.crt"),
        "tlsClientCert": (secret, "tls.crt"),
        "tlsClientKey": (secret, "tls.key"),
    }
    assert client["metadata"]["namespace"] == auth["metadata"]["namespace"]
    assert "client auth" in client["spec"]["usages"]


# ----------------------------------------------------------------------------------------- GPU pods


def _gpu_containers(rendered: dict[str, list[Obj]]) -> list[tuple[str, Obj, Obj]]:
    """(name, pod spec, container) for every container that asks for a GPU, workloads and KServe."""
    out: list[tuple[str, Obj, Obj]] = []
    for o in _all(rendered):
        spec = pod_spec(o)
        if spec is None and o["kind"] == "InferenceService":
            spec = o["spec"]["predictor"]
        if spec is None:
            continue
        for c in spec.get("containers", []):
            if GPU in c.get("resources", {}).get("limits", {}):
                out.append((f"{ident(o)}/{c['name']}", spec, c))
    return out


def test_every_model_server_asks_for_a_gpu(rendered: dict[str, list[Obj]]) -> None:
    names = {n for n, _, _ in _gpu_containers(rendered)}
    assert names == {
        "Deployment/llm-serving/llama/vllm",
        "Deployment/llm-serving/triton/triton",
        "InferenceService/llm-serving/llama-kserve/kserve-container",
    }


def test_gpu_containers_have_shm_probes_and_gpu_scheduling(rendered: dict[str, list[Obj]]) -> None:
    for name, spec, c in _gpu_containers(rendered):
        limits, requests = c["resources"]["limits"], c["resources"].get("requests", {})
        assert int(limits[GPU]) >= 1 and requests.get(GPU, limits[GPU]) == limits[GPU], name
        assert "memory" in limits, f"{name}: no memory limit (the shm emptyDir counts against it)"
        # /dev/shm: an in-memory emptyDir with a size limit (the 64 MiB default breaks NCCL/PyTorch).
        shm = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"]
        assert len(shm) == 1, f"{name}: no /dev/shm mount"
        volume = next(v for v in spec["volumes"] if v["name"] == shm[0]["name"])
        assert volume["emptyDir"]["medium"] == "Memory", name
        assert re.fullmatch(r"[0-9]+Gi", volume["emptyDir"]["sizeLimit"]), name
        # Probes: startup long enough to load a model, then readiness and liveness.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{name}: no {probe}"
        startup = c["startupProbe"]
        budget_s = startup["periodSeconds"] * startup["failureThreshold"]
        assert budget_s >= 600, (
            f"{name}: startupProbe gives up after {budget_s} s, model loading takes minutes"
        )
        ready_path = c["readinessProbe"]["httpGet"]["path"]
        assert ready_path in ("/health", "/v2/health/ready"), name
        # Only on GPU nodes, tolerating their taint.
        assert spec["nodeSelector"].get("nvidia.com/gpu.present") == "true", name
        assert any(t["key"] == GPU and t["operator"] == "Exists" for t in spec["tolerations"]), name
        # Model weights come from a volume, not from the image or a fresh download per pod.
        claims = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
        assert claims, f"{name}: no model volume"


def test_readiness_paths_match_the_backend(rendered: dict[str, list[Obj]]) -> None:
    llama = _one(_all(rendered), "Deployment", "llama")["spec"]["template"]["spec"]["containers"][0]
    triton = _one(_all(rendered), "Deployment", "triton")["spec"]["template"]["spec"]["containers"][0]
    assert llama["image"].startswith("vllm/vllm-openai:")
    assert llama["readinessProbe"]["httpGet"]["path"] == "/health"
    assert triton["image"].startswith("nvcr.io/nvidia/tritonserver:")
    assert triton["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert {"name": "metrics", "containerPort": 8002, "protocol": "TCP"} in triton["ports"]
    # The scaler's Triton latency signals need these (summary for e2e p99, histogram for TTFT).
    assert "--metrics-config=summary_latencies=true" in triton["args"]
    assert "--metrics-config=histogram_latencies=true" in triton["args"]


def test_model_servers_are_scraped_with_pod_labels(rendered: dict[str, list[Obj]]) -> None:
    for directory in ("vllm", "triton"):
        objects = rendered[directory]
        (monitor,) = of_kind(objects, "PodMonitor")
        deployments = of_kind(objects, "Deployment")
        selector = monitor["spec"]["selector"]["matchLabels"]
        scraped = [d for d in deployments if _matches(selector, d["spec"]["template"]["metadata"]["labels"])]
        assert scraped == deployments, directory
        ports = {p["name"] for d in deployments for c in pod_spec(d)["containers"] for p in c["ports"]}  # type: ignore[index]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports, directory


# ------------------------------------------------------------------------------------------- scaler


def test_scaler_runs_non_root_read_only_spread_and_probed(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["scaler"]
    deployment = _one(objects, "Deployment", "llm-keda-scaler")
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc.get("runAsNonRoot", True) is True
    # Two replicas never on the same node.
    hostname = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"] == "kubernetes.io/hostname"]
    assert hostname and hostname[0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert _matches(
        hostname[0]["labelSelector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    # gRPC health for readiness and liveness (see test_health_check.py for the check itself).
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"] == ["python", "/app/grpc_health_check.py"], probe
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 9090, "metrics": 8080}


def test_scaler_env_matches_its_cli(rendered: dict[str, list[Obj]]) -> None:
    """Every SCALER_* variable the Deployment sets is one `python -m scaler serve` reads."""
    deployment = _one(rendered["scaler"], "Deployment", "llm-keda-scaler")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    help_text = subprocess.run(
        [sys.executable, "-m", "scaler", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SCALER_")},
    ).stdout
    for name in env:
        if name.startswith("SCALER_"):
            assert f"[{name}" in help_text, f"{name} is not a serve option"
    assert c["args"] == ["serve"]
    # TLS files live under the mounted Secret, which is the cert-manager server certificate's Secret.
    mount = next(m for m in c["volumeMounts"] if m["name"] == "tls")
    for key in ("SCALER_TLS_CERT", "SCALER_TLS_KEY", "SCALER_TLS_CLIENT_CA"):
        assert env[key].startswith(mount["mountPath"] + "/"), key
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls")
    cert = _one(_all(rendered), "Certificate", "llm-keda-scaler-tls")
    assert volume["secret"]["secretName"] == cert["spec"]["secretName"]
    assert cert["metadata"]["namespace"] == SCALER_NS
    # The in-pod health check presents the scaler's own certificate under mTLS: it needs both usages
    # and the localhost SAN (test_health_check.py shows the check failing without client auth).
    assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
    assert "localhost" in cert["spec"]["dnsNames"]


def test_scaler_service_pdb_and_monitor_select_the_scaler(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["scaler"]
    labels = _one(objects, "Deployment", "llm-keda-scaler")["spec"]["template"]["metadata"]["labels"]
    service = _one(objects, "Service", "llm-keda-scaler")
    assert service["spec"]["clusterIP"] == "None"  # KEDA's round robin needs every pod IP in DNS
    assert _matches(service["spec"]["selector"], labels)
    pdb = _one(objects, "PodDisruptionBudget", "llm-keda-scaler")
    assert _matches(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["minAvailable"] == 1
    monitor = _one(objects, "ServiceMonitor", "llm-keda-scaler")
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # The scaler's `namespace` label is the ScaledObject's; without honorLabels it would be rewritten.
    assert endpoint["honorLabels"] is True


def test_scaler_rbac_is_read_only_and_namespaced(rendered: dict[str, list[Obj]]) -> None:
    objects = _all(rendered)
    role = _one(objects, "ClusterRole", "llm-keda-scaler-read")
    granted = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == {("apps", "deployments"), ("apps", "replicasets"), ("", "pods")}
    for rule in role["rules"]:
        assert set(rule["verbs"]) == {"get", "list", "watch"}
    assert not of_kind(objects, "ClusterRoleBinding"), "the scaler must not read every namespace"
    bindings = of_kind(objects, "RoleBinding")
    served = {so["metadata"]["namespace"] for so in of_kind(objects, "ScaledObject")}
    assert {b["metadata"]["namespace"] for b in bindings} == served
    for b in bindings:
        assert b["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "llm-keda-scaler-read",
        }
        assert b["subjects"] == [
            {"kind": "ServiceAccount", "name": "llm-keda-scaler", "namespace": SCALER_NS}
        ]


def test_dockerfile_builds_a_slim_non_root_image(rendered: dict[str, list[Obj]]) -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    froms = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert froms and all(f == "python:3.11-slim" for f in froms), froms
    assert any("pip install ." in ln for ln in lines)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    entry = next(ln for ln in lines if ln.startswith("ENTRYPOINT "))
    cmd = next(ln for ln in lines if ln.startswith("CMD "))
    assert json.loads(entry.removeprefix("ENTRYPOINT ")) + json.loads(cmd.removeprefix("CMD ")) == [
        "python",
        "-m",
        "scaler",
        "serve",
    ]
    # The Deployment's uid is the image's, and the probe script is in the image where the probe looks.
    spec = _one(rendered["scaler"], "Deployment", "llm-keda-scaler")["spec"]["template"]["spec"]
    assert users[-1].split(":")[0] == str(spec["securityContext"]["runAsUser"])
    assert "COPY deploy/docker/grpc_health_check.py /app/grpc_health_check.py" in lines
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    for needed in ("!pyproject.toml", "!scaler/", "!deploy/docker/grpc_health_check.py"):
        assert needed in ignore, needed


# --------------------------------------------------------------------------------- KServe and DCGM


def test_kserve_inference_service_hands_scaling_to_this_scaler(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["kserve"]
    (isvc,) = of_kind(objects, "InferenceService")
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    # KServe writes no ScaledObject of its own (it could not carry an external-push trigger).
    assert annotations["serving.kserve.io/autoscalerClass"] == "external"
    (so,) = of_kind(objects, "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == f"{isvc['metadata']['name']}-predictor"
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container"
    (monitor,) = of_kind(objects, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": isvc["metadata"]["name"]
    }
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in container["ports"]}


def test_dcgm_exporter_maps_gpus_to_pods(rendered: dict[str, list[Obj]]) -> None:
    objects = rendered["dcgm"]
    daemonset = _one(objects, "DaemonSet", "dcgm-exporter")
    (c,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["DCGM_EXPORTER_KUBERNETES"] == "true"  # the -k flag
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/var/lib/kubelet/pod-resources" in mounts
    volume = daemonset["spec"]["template"]["spec"]["volumes"][0]
    assert volume["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    monitor = _one(objects, "ServiceMonitor", "dcgm-exporter")
    assert all(e["honorLabels"] is True for e in monitor["spec"]["endpoints"])
    service = _one(objects, "Service", "dcgm-exporter")
    assert _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert _matches(service["spec"]["selector"], daemonset["spec"]["template"]["metadata"]["labels"])


def test_custom_resources_are_structurally_sound(rendered: dict[str, list[Obj]]) -> None:
    """No upstream schema for these here: the fields their controllers require, and references that
    resolve within deploy/."""
    objects = _all(rendered)
    issuers = {o["metadata"]["name"] for o in of_kind(objects, "ClusterIssuer")}
    for cert in of_kind(objects, "Certificate"):
        spec = cert["spec"]
        assert cert["metadata"].get("namespace"), ident(cert)
        assert spec["secretName"] and spec["issuerRef"]["kind"] == "ClusterIssuer", ident(cert)
        assert spec["issuerRef"]["name"] in issuers, ident(cert)
    for issuer in of_kind(objects, "ClusterIssuer"):
        assert len(issuer["spec"]) == 1 and next(iter(issuer["spec"])) in ("selfSigned", "ca"), ident(issuer)
    for monitor in of_kind(objects, "ServiceMonitor") + of_kind(objects, "PodMonitor"):
        spec = monitor["spec"]
        endpoints = spec.get("endpoints") or spec.get("podMetricsEndpoints")
        assert spec["selector"]["matchLabels"] and endpoints, ident(monitor)
        for e in endpoints:
            assert e["port"] and e["path"] == "/metrics" and e["interval"].endswith("s"), ident(monitor)
    for auth in of_kind(objects, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            assert set(ref) == {"parameter", "name", "key"}, ident(auth)


def test_grafana_configmaps_carry_the_dashboards_for_the_sidecar(rendered: dict[str, list[Obj]]) -> None:
    maps = of_kind(rendered["grafana"], "ConfigMap")
    files = {}
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1", ident(cm)
        files.update(cm["data"])
    assert (
        set(files) == {p.name for p in (DEPLOY / "grafana").glob("*.json")} == {"scaler.json", "fleet.json"}
    )
    for name, text in files.items():
        assert text == (DEPLOY / "grafana" / name).read_text(), name
