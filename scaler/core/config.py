"""ScaledObject trigger metadata, parsed and validated at the edge.

KEDA passes the trigger's ``metadata`` map verbatim as ``scalerMetadata`` (every value a string).
``parse_metadata`` turns it into a typed, frozen ``ScalerConfig`` or raises ``ConfigError`` listing every
problem in the map at once: each key at fault with what is allowed, and the keys that are missing, in a
stable order, on one line of bounded length. The gRPC service maps ``ConfigError`` to INVALID_ARGUMENT
(KEDA shows the message in the ScaledObject's events) and the CLI to that line with a non-zero exit, so
a user fixes everything in one apply instead of meeting one error per KEDA round trip.

Rules that relate keys slot in at two places, and every problem they find is collected: ``MAP_RULES``
(functions of the raw string map, run on every map, even one whose values are bad) and model validators
on ``ScalerConfig`` (run once every field is valid; raise ``ConfigError(key, message)``, or ``ConfigError.of``
for several, to name the key).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
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


# KEDA shows the message in the ScaledObject's events after its own "rpc error: code = InvalidArgument
# desc = " (45 characters), and Kubernetes keeps at most 1,024 characters of an event's message: 900
# leaves room, and holds the allowed-keys list (~260) with six or more problems before it.
MAX_MESSAGE_CHARS = 900
_KEY_CHARS = 64  # a key named in a message is cut to this (a hostile map may carry a 10,000-character key)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: the key at fault (``a/b/c`` for a group of which one is needed) and what is
    allowed."""

    key: str
    message: str


class ConfigError(ValueError):
    """Bad metadata: ``problems`` is every problem found, in a stable order; ``key`` and ``message`` are
    the first's. ``str()`` is the one-line message (``metadata key 'a': ...; key 'b': ...``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(_render((Problem(key, message),)))
        self.key = key
        self.message = message
        self.problems: tuple[Problem, ...] = (Problem(key, message),)

    @classmethod
    def of(cls, problems: Iterable[Problem]) -> ConfigError:
        """One error for all of ``problems`` (at least one): duplicates dropped, in the stable order."""
        ordered = _ordered(problems)
        err = cls(ordered[0].key, ordered[0].message)
        err.problems = ordered
        err.args = (_render(ordered),)
        return err


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
        # parse_metadata finds this in the map already (_one_target); this keeps a ScalerConfig built in
        # code to the same contract, and says it in the same words (so parse_metadata reports it once).
        if not self.has_any_target():
            raise ConfigError(TARGETS_KEY, TARGETS_REQUIRED)
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
TARGETS_KEY = "/".join(TARGET_KEYS)  # the key a "none of these" problem names
TARGETS_REQUIRED = "at least one of these targets is required"
REQUIRED = "is required"
UNKNOWN_KEY = "is not a known key"

# Keys whose presence only makes sense with another key.
_REQUIRES = {
    "latencyQuantile": "latencySloSeconds",
    "latencyMetric": "latencySloSeconds",
    "activationThreshold": "activationQuery",
}
# Keys that only make sense with one backend.
_BACKEND_ONLY = {"tritonBackend": "triton"}

_FIELD_TO_KEY = {name: (field.alias or name) for name, field in ScalerConfig.model_fields.items()}
ALLOWED_KEYS = tuple(sorted(_FIELD_TO_KEY.values()))
_KNOWN_KEYS = frozenset(ALLOWED_KEYS)
REQUIRED_KEYS = tuple(_FIELD_TO_KEY[n] for n, f in ScalerConfig.model_fields.items() if f.is_required())

# A rule over the map as KEDA sent it (values stripped, KEDA's own keys left out): the problems it finds.
# These run on every map, so a missing key is reported beside bad values of the others.
MapRule = Callable[[Mapping[str, str]], Iterable[Problem]]


def _required(data: Mapping[str, str]) -> Iterator[Problem]:
    for key in REQUIRED_KEYS:
        if not data.get(key):
            yield Problem(key, REQUIRED)


def _only_together(data: Mapping[str, str]) -> Iterator[Problem]:
    for key, needed in _REQUIRES.items():
        if key in data and needed not in data:
            yield Problem(key, f"is only allowed together with {needed}")


def _one_target(data: Mapping[str, str]) -> Iterator[Problem]:
    if not any(data.get(k) for k in TARGET_KEYS):
        yield Problem(TARGETS_KEY, TARGETS_REQUIRED)


def _backend_only(data: Mapping[str, str]) -> Iterator[Problem]:
    for key, backend in _BACKEND_ONLY.items():
        if key in data and data.get("backend") != backend:
            yield Problem(key, f"is only allowed with backend: {backend}")


MAP_RULES: tuple[MapRule, ...] = (_required, _only_together, _backend_only, _one_target)


def parse_metadata(metadata: Mapping[str, str]) -> ScalerConfig:
    """Validate KEDA trigger metadata; raise ConfigError listing every problem (see the module doc)."""
    if len(metadata) > MAX_METADATA_KEYS:
        # Refused outright: the problems of a map this size would not make a readable message.
        raise ConfigError(
            "scalerMetadata", f"has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed"
        )
    problems: list[Problem] = []
    data: dict[str, str] = {}
    refused: set[str] = set()  # present, but too bad to validate further
    for key, value in metadata.items():
        if not isinstance(value, str):
            problems.append(Problem(str(key)[:_KEY_CHARS], "must be a string"))
            continue
        if key in KEDA_KEYS:
            continue
        if len(value) > MAX_VALUE_CHARS:
            problems.append(
                Problem(
                    key[:_KEY_CHARS],
                    f"value is {len(value)} characters; at most {MAX_VALUE_CHARS} are allowed",
                )
            )
            refused.add(key)
        if key not in _KNOWN_KEYS:
            # Also a field's Python name ("latency_quantile"): the model would take it (populate_by_name,
            # for ScalerConfig built in code), but metadata keys are the camelCase ones KEDA users write.
            problems.append(Problem(key[:_KEY_CHARS], UNKNOWN_KEY))
            continue
        data[key] = value.strip()
    for rule in MAP_RULES:
        problems.extend(rule(data))
    # A required key that is missing or empty is reported once, as required, not also as an invalid value.
    refused.update(p.key for p in problems if p.message == REQUIRED)
    try:
        config = ScalerConfig.model_validate({k: v for k, v in data.items() if k not in refused})
    except ValidationError as exc:
        problems.extend(p for p in _validation_problems(exc) if p.key not in refused)
        if not problems:  # only "missing" errors, and a map rule names each: unreachable, but never silent
            problems.append(Problem("scalerMetadata", str(exc).splitlines()[0]))
    else:
        if not problems:
            return config
    raise ConfigError.of(problems)


def _validation_problems(exc: ValidationError) -> Iterator[Problem]:
    """Every error pydantic collected: each field's, and a model validator's (which only runs once the
    fields are valid). A missing required field is a map rule's to report (_required)."""
    for err in exc.errors(include_url=False):
        kind = err.get("type", "")
        if kind == "missing":
            continue
        loc = err.get("loc", ())
        if not loc:  # a model validator: its ConfigError names the key(s)
            cause = err.get("ctx", {}).get("error")
            if isinstance(cause, ConfigError):
                yield from cause.problems
            else:
                yield Problem(
                    "scalerMetadata", str(err.get("msg", "is invalid")).removeprefix("Value error, ")
                )
            continue
        key = _FIELD_TO_KEY.get(str(loc[0]), str(loc[0]))
        got = str(err.get("input"))[:64]
        if kind == "extra_forbidden":
            yield Problem(key[:_KEY_CHARS], UNKNOWN_KEY)
        elif kind == "enum":
            yield Problem(key, f"must be one of {err.get('ctx', {}).get('expected', '')}, got {got!r}")
        elif kind in ("float_parsing", "float_type", "finite_number"):
            yield Problem(key, f"must be a finite number, got {got!r}")
        elif kind == "value_error":
            yield Problem(key, str(err.get("msg", "")).removeprefix("Value error, "))
        else:
            yield Problem(key, str(err.get("msg", "is invalid")))


# -- the one-line message --------------------------------------------------------------------------------


# Known keys in the order of the metadata table (the model's fields) with the targets group after the
# last target, after the ScaledObjectRef's own fields; unknown keys after all of them, alphabetically.
def _key_order() -> dict[str, int]:
    keys = ["scalerMetadata", "namespace", "name"]
    for key in _FIELD_TO_KEY.values():
        keys.append(key)
        if key == TARGET_KEYS[-1]:
            keys.append(TARGETS_KEY)
    return {k: i for i, k in enumerate(keys)}


_RANK = _key_order()


def _ordered(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    unique = list(dict.fromkeys(problems))  # the first of each (key, message)
    if not unique:
        raise ValueError("ConfigError.of needs at least one problem")
    # A stable sort: the problems of one key keep the order they were found in (map rules, fields, model
    # validators), which does not depend on the order of the map.
    return tuple(sorted(unique, key=lambda p: (0, _RANK[p.key], "") if p.key in _RANK else (1, 0, p.key)))


def _render(problems: Sequence[Problem]) -> str:
    """``metadata key 'a': what is allowed; key 'b': ... and ...`` on one line of at most
    MAX_MESSAGE_CHARS: a key's problems are joined with "and"; keys that do not fit are counted
    (``and 3 more``); the allowed keys are listed once, at the end (unknown keys sort last)."""
    allowed = (
        f"; allowed keys: {', '.join(ALLOWED_KEYS)}"
        if any(p.message == UNKNOWN_KEY for p in problems)
        else ""
    )
    by_key: dict[str, list[str]] = {}
    for p in problems:
        by_key.setdefault(p.key, []).append(_printable(p.message))
    parts: list[str] = []
    used = len("metadata ") + len(allowed)
    for i, (key, messages) in enumerate(by_key.items()):
        part = _cut(f"key '{_printable(key)}': {' and '.join(messages)}", _PART_CHARS)
        left_after = len(by_key) - i - 1
        reserve = len(f"; and {left_after} more") if left_after else 0
        if parts and used + 2 + len(part) + reserve > MAX_MESSAGE_CHARS:
            parts.append(f"and {len(by_key) - i} more")  # fits: the previous part reserved its room
            break
        parts.append(part)
        used += 2 + len(part)
    return "metadata " + "; ".join(parts) + allowed


# One key's problems: keys from the map are cut to 64 characters (_KEY_CHARS) and messages echo at most
# 64 characters of a value; this bounds a part when escaping or a long PromQL complaint makes it longer.
# The longest message written here, target.WAKE_FROM_ZERO, is 285 characters and fits whole.
_PART_CHARS = 330


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _printable(text: str) -> str:
    """Keys and echoed values on one line: newlines and other control characters escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
