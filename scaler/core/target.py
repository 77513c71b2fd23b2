"""One ScaledObject trigger as the scaler knows it, and the validation of a ScaledObjectRef into one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scaler.core.config import ConfigError, ScalerConfig, parse_metadata, validate_namespace
from scaler.core.promql import QueryError, confine_query


@dataclass(frozen=True)
class Target:
    """One ScaledObject as the refresher knows it."""

    namespace: str
    name: str
    config: ScalerConfig

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def target_from_ref(namespace: str, name: str, metadata: Mapping[str, str]) -> Target:
    """Validate a ScaledObjectRef; raises ConfigError naming the key."""
    validate_namespace(namespace)
    if not name or len(name) > 253:
        raise ConfigError("name", "the ScaledObject name must be 1-253 characters")
    config = parse_metadata(metadata)
    if config.activation_query is not None:
        try:
            confine_query(config.activation_query, namespace)
        except QueryError as exc:
            raise ConfigError("activationQuery", str(exc)) from None
    return Target(namespace=namespace, name=name, config=config)
