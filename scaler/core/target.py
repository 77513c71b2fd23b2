"""One ScaledObject trigger as the scaler knows it, and the validation of a ScaledObjectRef into one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scaler.core.config import ConfigError, ScalerConfig, parse_metadata, validate_namespace
from scaler.core.promql import NAMESPACE_LABELS, QueryError, confine_query

# Why a ScaledObject that may reach zero needs an activationQuery, and the two ways out.
WAKE_FROM_ZERO = (
    'is required when the Deployment may scale to zero (scaleToZero "true", the default): at zero no pod '
    "reports a series, so without a query reading the demand waiting in front of it (e.g. the KEDA HTTP "
    "add-on's interceptor_request_concurrency) nothing can ever wake it. Add an activationQuery, or set "
    'scaleToZero: "false" and minReplicaCount >= 1 in the ScaledObject'
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
    """Validate a ScaledObjectRef; raises ConfigError naming the key. ``namespace_labels``: the labels
    that may pin an activationQuery's selectors to the ScaledObject's namespace."""
    validate_namespace(namespace)
    if not name or len(name) > 253:
        raise ConfigError("name", "the ScaledObject name must be 1-253 characters")
    config = parse_metadata(metadata)
    if config.activation_query is not None:
        try:
            confine_query(config.activation_query, namespace, namespace_labels)
        except QueryError as exc:
            raise ConfigError("activationQuery", str(exc)) from None
    elif config.scale_to_zero:
        raise ConfigError("activationQuery", WAKE_FROM_ZERO)
    return Target(namespace=namespace, name=name, config=config)
