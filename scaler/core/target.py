"""One ScaledObject trigger as the scaler knows it, and the validation of a ScaledObjectRef into one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scaler.core.config import (
    MAX_VALUE_CHARS,
    ConfigError,
    Problem,
    ScalerConfig,
    parse_metadata,
    validate_namespace,
)
from scaler.core.promql import NAMESPACE_LABELS, QueryError, confine_query

# Why a ScaledObject that may reach zero needs an activationQuery, and the two ways out. Kept short: it is
# one part of a message that lists every problem of a map on one line (config.MAX_MESSAGE_CHARS).
WAKE_FROM_ZERO = (
    'is required while scaleToZero is "true" (the default): at zero no pod reports metrics, so only a '
    "query on the demand waiting in front (e.g. the KEDA HTTP add-on's interceptor_request_concurrency) "
    'can wake it. Add an activationQuery, or set scaleToZero: "false" and minReplicaCount >= 1'
)


@dataclass(frozen=True)
class Target:
    """One ScaledObject as the refresher knows it."""

    namespace: str
    name: str
    config: ScalerConfig

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def target_from_ref(
    namespace: str,
    name: str,
    metadata: Mapping[str, str],
    namespace_labels: tuple[str, ...] = NAMESPACE_LABELS,
) -> Target:
    """Validate a ScaledObjectRef; raises ConfigError listing every problem: the namespace, the name, the
    metadata's, the activationQuery's confinement to the namespace (``namespace_labels``: the labels that
    may pin its selectors to it) and a way back from zero (WAKE_FROM_ZERO). The last two are checked even
    when other keys are bad, so fixing those does not reveal them one apply later."""
    problems: list[Problem] = []
    try:
        validate_namespace(namespace)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if not name or len(name) > 253:
        problems.append(Problem("name", "the ScaledObject name must be 1-253 characters"))
    config: ScalerConfig | None = None
    try:
        config = parse_metadata(metadata)
    except ConfigError as exc:
        problems.extend(exc.problems)
    query = config.activation_query if config is not None else _unjudged_query(metadata, problems)
    # Confinement needs a valid namespace to confine to; a bad one is already a problem.
    if query is not None and not any(p.key == "namespace" for p in problems):
        try:
            confine_query(query, namespace, namespace_labels)
        except QueryError as exc:
            problems.append(Problem("activationQuery", str(exc)))
    if _may_reach_zero_unwakeable(config, metadata, problems):
        problems.append(Problem("activationQuery", WAKE_FROM_ZERO))
    if problems:
        raise ConfigError.of(problems)
    assert config is not None  # no problems: parse_metadata returned
    return Target(namespace=namespace, name=name, config=config)


def _unjudged_query(metadata: Mapping[str, str], problems: Sequence[Problem]) -> str | None:
    """The activationQuery of a map parse_metadata refused for other reasons, if the parser found nothing
    wrong with the query itself (and did not refuse the whole map)."""
    query = metadata.get("activationQuery")
    if not isinstance(query, str) or len(query) > MAX_VALUE_CHARS or not query.strip():
        return None
    if any(p.key in ("activationQuery", "scalerMetadata") for p in problems):
        return None
    return query.strip()


def _may_reach_zero_unwakeable(
    config: ScalerConfig | None, metadata: Mapping[str, str], problems: Sequence[Problem]
) -> bool:
    """Scale to zero allowed and no activationQuery to wake from it. For a map parse_metadata refused, read
    from the raw map unless the parser already named scaleToZero or activationQuery (or the whole map)."""
    if config is not None:
        return config.scale_to_zero and config.activation_query is None
    if any(p.key in ("activationQuery", "scaleToZero", "scalerMetadata") for p in problems):
        return False
    query = metadata.get("activationQuery")
    if isinstance(query, str) and query.strip():
        return False
    scale_to_zero = metadata.get("scaleToZero", "true")
    return isinstance(scale_to_zero, str) and scale_to_zero.strip().lower() == "true"
