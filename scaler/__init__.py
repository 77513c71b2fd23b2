"""llm-keda-scaler: a KEDA external scaler for vLLM and Triton inference deployments.

Public surface: ``parse_metadata`` / ``ScalerConfig`` (the metadata contract), ``Signals`` (inputs),
``decide`` / ``Decision`` / ``State`` (the pure core).
"""

from scaler.core.config import ConfigError, ScalerConfig, parse_metadata
from scaler.core.decision import Decision, SignalVerdict, decide
from scaler.core.signals import SignalName, Signals
from scaler.core.state import Observation, State

__all__ = [
    "ConfigError",
    "Decision",
    "Observation",
    "ScalerConfig",
    "SignalName",
    "SignalVerdict",
    "Signals",
    "State",
    "decide",
    "parse_metadata",
]
__version__ = "0.1.0"
