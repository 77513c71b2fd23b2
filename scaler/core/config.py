"""ScaledObject trigger metadata, parsed and validated at the edge.

KEDA passes the trigger's ``metadata`` map verbatim as ``scalerMetadata`` (every value a string).
``parse_metadata`` turns it into a typed, frozen ``ScalerConfig`` or raises ``ConfigError`` naming the
offending key and what is allowed. The gRPC service maps ``ConfigError`` to INVALID_ARGUMENT and the
CLI to a one-line message with a non-zero exit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# A map larger than this is refused outright: KEDA's own metadata for this scaler is ~15 keys.
MAX_METADATA_KEYS = 64
MAX_VALUE_CHARS = 2048

# Keys KEDA itself reads from the same map and passes along; they are accepted and ignored here.
KEDA_KEYS = frozenset({"scalerAddress", "enableTLS", "unsafeSsl"})

# RFC 1123 label (namespaces) and subdomain (Deployment names).
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Model names are label values ("meta-llama/Llama-3.1-8B-Instruct"); they are matched client-side and
# never enter PromQL, but we still refuse anything that could not be a sane label value.
_MODEL = re.compile(r"[A-Za-z0-9._:/@+\-]{1,256}")


class ConfigError(ValueError):
    """Bad metadata: ``key`` is the metadata key at fault, ``message`` says what is allowed."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"metadata key '{key}': {message}")
        self.key = key
        self.message = message


class Backend(StrEnum):
    VLLM = "vllm"
    TRITON = "triton"


class TritonBackend(StrEnum):
    """Which Triton backend serves the model (metadata ``tritonBackend``): the metrics it exports differ.
    ``auto`` tells them apart per Deployment from the families its pods export."""

    AUTO = "auto"
    TENSORRTLLM = "tensorrtllm"  # TensorRT-LLM backend, in-flight batching (nv_trt_llm_* families)
    VLLM = "vllm"  # Triton's vLLM backend (vllm:* families with Triton's model/version labels)
    GENERIC = "generic"  # any other backend (nv_inference_* only)


class LatencyMetric(StrEnum):
    E2E = "e2e"
    TTFT = "ttft"


def _positive_finite(value: float | None, allowed: str) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be {allowed}, got {value!r}")
    return value


class ScalerConfig(BaseModel):
    """One ScaledObject trigger's settings. Field aliases are the metadata keys (camelCase, like KEDA)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False)

    backend: Backend
    deployment: str
    server_address: str | None = Field(default=None, alias="serverAddress")
    model: str | None = None
    triton_backend: TritonBackend = Field(default=TritonBackend.AUTO, alias="tritonBackend")
    target_queue_per_replica: float | None = Field(default=None, alias="targetQueuePerReplica")
    target_tokens_per_s_per_replica: float | None = Field(
        default=None, alias="targetTokensPerSecondPerReplica"
    )
    target_gpu_util_percent: float | None = Field(default=None, alias="targetGpuUtilization")
    latency_slo_s: float | None = Field(default=None, alias="latencySloSeconds")
    latency_quantile: float = Field(default=0.99, alias="latencyQuantile")
    latency_metric: LatencyMetric = Field(default=LatencyMetric.E2E, alias="latencyMetric")
    # Cold start (issue 3). The query is confined to the ScaledObject's namespace in target_from_ref.
    activation_query: str | None = Field(default=None, alias="activationQuery")
    activation_threshold: float = Field(default=0.0, alias="activationThreshold")
    cold_start_s: float = Field(default=60.0, alias="coldStartSeconds")
    predictive: bool = True
    scale_to_zero: bool = Field(default=True, alias="scaleToZero")
    min_idle_s: float = Field(default=0.0, alias="minIdleSeconds")

    @field_validator("deployment")
    @classmethod
    def _deployment(cls, v: str) -> str:
        if len(v) > 253 or not _DNS_SUBDOMAIN.fullmatch(v):
            raise ValueError(
                f"must be an RFC 1123 name (lower-case letters, digits, '-' and '.', at most 253), got {v!r}"
            )
        return v

    @field_validator("server_address")
    @classmethod
    def _server_address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return validate_prometheus_url(v)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is not None and not _MODEL.fullmatch(v):
            raise ValueError(
                "must be 1-256 characters of letters, digits and . _ : / @ + -, "
                f"got {v[:64]!r}{'...' if len(v) > 64 else ''}"
            )
        return v

    @field_validator("target_queue_per_replica", "target_tokens_per_s_per_replica", "latency_slo_s")
    @classmethod
    def _positive(cls, v: float | None) -> float | None:
        return _positive_finite(v, "a finite number > 0")

    @field_validator("cold_start_s")
    @classmethod
    def _cold_start(cls, v: float) -> float:
        if not math.isfinite(v) or not 0 < v <= 3600:
            raise ValueError(f"must be seconds in (0, 3600], got {v!r}")
        return v

    @field_validator("min_idle_s", "activation_threshold")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"must be a finite number >= 0, got {v!r}")
        return v

    @field_validator("predictive", "scale_to_zero", mode="before")
    @classmethod
    def _boolean(cls, v: object) -> object:
        if isinstance(v, str) and v.lower() not in ("true", "false"):
            raise ValueError(f"must be true or false, got {v[:64]!r}")
        return v.lower() == "true" if isinstance(v, str) else v

    @field_validator("activation_query")
    @classmethod
    def _activation_query(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must be a PromQL expression, got an empty string")
        return v

    @field_validator("target_gpu_util_percent")
    @classmethod
    def _percent(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 100:
            raise ValueError(f"must be a percentage in (0, 100], got {v!r}")
        return v

    @field_validator("latency_quantile")
    @classmethod
    def _quantile(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"must be a quantile in (0, 1) such as 0.99, got {v!r}")
        return v

    @model_validator(mode="after")
    def _targets(self) -> ScalerConfig:
        if not self.has_any_target():
            raise ValueError(
                "at least one target is required: targetQueuePerReplica, targetTokensPerSecondPerReplica, "
                "targetGpuUtilization or latencySloSeconds"
            )
        return self

    def has_any_target(self) -> bool:
        return any(
            t is not None
            for t in (
                self.target_queue_per_replica,
                self.target_tokens_per_s_per_replica,
                self.target_gpu_util_percent,
                self.latency_slo_s,
            )
        )


def validate_prometheus_url(url: str) -> str:
    """Return ``url`` without a trailing slash if it is an http(s) URL with a host; else ValueError."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or c in "\"'<>`\\" for c in url)
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"must be an http:// or https:// URL with a host and no query, got {url[:128]!r}")
    try:
        _ = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError(f"has an invalid port: {url[:128]!r}") from exc
    return url.rstrip("/")


def validate_namespace(namespace: str) -> str:
    """The ScaledObject's namespace must be an RFC 1123 label; it is used in every PromQL selector."""
    if not _DNS_LABEL.fullmatch(namespace):
        raise ConfigError(
            "namespace", f"must be an RFC 1123 label (at most 63 of a-z 0-9 -), got {namespace[:64]!r}"
        )
    return namespace


TARGET_KEYS = (
    "targetQueuePerReplica",
    "targetTokensPerSecondPerReplica",
    "targetGpuUtilization",
    "latencySloSeconds",
)

# Keys whose presence only makes sense with another key.
_REQUIRES = {
    "latencyQuantile": "latencySloSeconds",
    "latencyMetric": "latencySloSeconds",
    "activationThreshold": "activationQuery",
}
# Keys that only make sense with one backend.
_BACKEND_ONLY = {"tritonBackend": "triton"}


def parse_metadata(metadata: Mapping[str, str]) -> ScalerConfig:
    """Validate KEDA trigger metadata; raise ConfigError naming the key at fault."""
    if len(metadata) > MAX_METADATA_KEYS:
        raise ConfigError(
            "scalerMetadata", f"has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed"
        )
    data: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise ConfigError(str(key)[:64], "must be a string")
        if len(value) > MAX_VALUE_CHARS:
            raise ConfigError(
                key[:64], f"value is {len(value)} characters; at most {MAX_VALUE_CHARS} are allowed"
            )
        if key in KEDA_KEYS:
            continue
        data[key] = value.strip()
    for key, needed in _REQUIRES.items():
        if key in data and needed not in data:
            raise ConfigError(key, f"is only allowed together with {needed}")
    for required in ("backend", "deployment"):
        if not data.get(required):
            raise ConfigError(required, "is required")
    for key, backend in _BACKEND_ONLY.items():
        if key in data and data.get("backend") != backend:
            raise ConfigError(key, f"is only allowed with backend: {backend}")
    if not any(data.get(k) for k in TARGET_KEYS):
        raise ConfigError("/".join(TARGET_KEYS), "at least one of these targets is required")
    try:
        return ScalerConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc) from None


_FIELD_TO_KEY = {name: (field.alias or name) for name, field in ScalerConfig.model_fields.items()}
ALLOWED_KEYS = tuple(sorted(_FIELD_TO_KEY.values()))


def _config_error(exc: ValidationError) -> ConfigError:
    err = exc.errors(include_url=False)[0]
    loc = err.get("loc", ())
    key = str(loc[0]) if loc else "scalerMetadata"
    key = _FIELD_TO_KEY.get(key, key)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return ConfigError(key[:64], f"is not a known key; allowed keys: {', '.join(ALLOWED_KEYS)}")
    if kind == "enum":
        expected = err.get("ctx", {}).get("expected", "")
        return ConfigError(key, f"must be one of {expected}, got {str(err.get('input'))[:64]!r}")
    if kind in ("float_parsing", "float_type", "finite_number"):
        return ConfigError(key, f"must be a finite number, got {str(err.get('input'))[:64]!r}")
    if kind == "value_error":
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        return ConfigError(key, msg)
    return ConfigError(key, str(err.get("msg", "is invalid")))
