"""A PromQL query as data (``QuerySpec``), and its rendering into PromQL text.

The plans in ``query`` build every query the scaler sends as a ``QuerySpec``; the text Prometheus receives is
``render(spec)``. Anything that answers queries without a Prometheus (the simulator's in-memory store)
evaluates the same spec, so adding a signal to a backend profile needs no second copy of its query.

The operations are the few shapes the plans use:

| op | PromQL |
|---|---|
| ``SELECT`` | ``metric{matchers}``: the series as they are |
| ``SUM`` / ``MAX`` / ``COUNT`` | ``sum by (by) (metric{matchers})``: gauges per group |
| ``RATE`` | ``rate(counter{matchers}[window])``: per series, no aggregation |
| ``SUM_RATE`` | ``sum by (by) (rate(counter{matchers}[window]))`` |
| ``HISTOGRAM_RATE`` | ``sum by (by, le) (rate(histogram_bucket{matchers}[window]))``: bucket rates |
| ``LAST_OVER_TIME`` | ``last_over_time(metric{matchers}[window])``: the last sample within a bound |
| ``SUM_AVG_OVER_TIME`` | ``sum by (by) (avg_over_time(gauge{matchers}[window]))``: a gauge's window mean |

``dedupe`` puts ``max by (dedupe) (...)`` between the function and the aggregation: each of a pod's own
series once, however many scrape jobs read it (``query.once_per_pod``). ``regroup`` wraps the whole as
``sum by (regroup.by) (label_replace(<query>, dst, replacement, src, regex))`` (the demand history, one
series per ReplicaSet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Op(StrEnum):
    SELECT = "select"
    SUM = "sum"
    MAX = "max"
    COUNT = "count"
    RATE = "rate"
    SUM_RATE = "sum_rate"
    HISTOGRAM_RATE = "histogram_rate"
    LAST_OVER_TIME = "last_over_time"
    SUM_AVG_OVER_TIME = "sum_avg_over_time"


AGGREGATIONS = {
    Op.SUM: "sum",
    Op.MAX: "max",
    Op.COUNT: "count",
    Op.SUM_RATE: "sum",
    Op.HISTOGRAM_RATE: "sum",
    Op.SUM_AVG_OVER_TIME: "sum",
}
RATES = (Op.RATE, Op.SUM_RATE, Op.HISTOGRAM_RATE)
RANGE_FUNCTIONS = (*RATES, Op.LAST_OVER_TIME, Op.SUM_AVG_OVER_TIME)  # the ops that take a window
MATCH_OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """One label matcher; regular expressions are anchored, as in Prometheus."""

    label: str
    op: str  # one of MATCH_OPS
    value: str

    def __post_init__(self) -> None:
        if self.op not in MATCH_OPS:
            raise ValueError(f"matcher op must be one of {', '.join(MATCH_OPS)}, got {self.op!r}")

    def matches(self, value: str) -> bool:
        """Prometheus semantics: a missing label is the empty string; ``=~`` matches the whole value."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = re.fullmatch(self.value, value) is not None
        return hit if self.op == "=~" else not hit

    def render(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.op}"{escaped}"'


@dataclass(frozen=True)
class Relabel:
    """``label_replace(v, dst, replacement, src, regex)``: ``dst`` set from ``src`` when ``regex`` matches it
    whole (``$1`` refers to the first group); series whose ``src`` does not match keep their labels."""

    dst: str
    replacement: str
    src: str
    regex: str

    def apply(self, labels: dict[str, str]) -> dict[str, str]:
        m = re.fullmatch(self.regex, labels.get(self.src, ""))
        if m is None:
            return labels
        value = re.sub(r"\$(\d+)", lambda g: m.group(int(g.group(1))) or "", self.replacement)
        out = dict(labels)
        if value:
            out[self.dst] = value
        else:
            out.pop(self.dst, None)
        return out


@dataclass(frozen=True)
class Regroup:
    """Sum the result of a query by ``by`` after ``relabel`` (the demand history's per-Deployment series)."""

    by: tuple[str, ...]
    relabel: Relabel


@dataclass(frozen=True)
class QuerySpec:
    """One query as data. ``metrics``: the metric names; with ``metric_set`` they are matched as one set
    (``{__name__=~"a|b", ...}``: summing two gauges per pod in one query), otherwise exactly one name.
    ``window``: the range as Prometheus duration text (``1m``), for the rates and ``last_over_time`` only.
    ``dedupe``: the labels a ``max by`` keeps before the aggregation (see the module docstring)."""

    op: Op
    metrics: tuple[str, ...]
    matchers: tuple[Matcher, ...] = ()
    by: tuple[str, ...] = ()
    window: str | None = None
    metric_set: bool = False
    regroup: Regroup | None = None
    dedupe: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError("a query needs at least one metric")
        if len(self.metrics) > 1 and not self.metric_set:
            raise ValueError("several metrics need metric_set (rate() cannot take a set)")
        if (self.op in RANGE_FUNCTIONS) != (self.window is not None):
            raise ValueError(f"{self.op}: a window is required for rates and last_over_time, and only there")
        if self.metric_set and self.op in RANGE_FUNCTIONS:
            raise ValueError("rate() of a metric set would mix series that lose __name__; use one query each")
        if self.op in (Op.SELECT, Op.RATE, Op.LAST_OVER_TIME) and self.by:
            raise ValueError(f"{self.op} does not aggregate: no 'by' labels")

    @property
    def group_labels(self) -> tuple[str, ...]:
        """The labels the aggregation keeps (``le`` added for bucket rates)."""
        return (*self.by, "le") if self.op == Op.HISTOGRAM_RATE else self.by


def duration_s(text: str) -> float:
    """Seconds of a Prometheus duration (``90s``, ``1m``, ``1h30m``, ``500ms``); ValueError otherwise."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r} (e.g. 30s, 1m, 1h30m)")
    return sum(int(n) * units[u] for n, u in parts)


def _selector(spec: QuerySpec) -> str:
    matchers = [m.render() for m in spec.matchers]
    if spec.metric_set:
        names = "|".join(re.escape(m) for m in spec.metrics)
        return "{" + ", ".join([f'__name__=~"{names}"', *matchers]) + "}"
    return spec.metrics[0] + "{" + ", ".join(matchers) + "}"


def render(spec: QuerySpec) -> str:
    """The PromQL text of ``spec``. Worked example: SUM_RATE of ``vllm:prompt_tokens_total`` by (namespace,
    pod) over 1m in namespace a gives ``sum by (namespace, pod) (rate(vllm:prompt_tokens_total{namespace=~"a"}
    [1m]))`` (on one line)."""
    expr = _selector(spec)
    if spec.op in RATES:
        expr = f"rate({expr}[{spec.window}])"
    elif spec.op == Op.LAST_OVER_TIME:
        expr = f"last_over_time({expr}[{spec.window}])"
    elif spec.op == Op.SUM_AVG_OVER_TIME:
        expr = f"avg_over_time({expr}[{spec.window}])"
    if spec.dedupe is not None:
        expr = f"max by ({', '.join(spec.dedupe)}) ({expr})"
    agg = AGGREGATIONS.get(spec.op)
    if agg is not None:
        labels = spec.group_labels
        expr = f"{agg} by ({', '.join(labels)}) ({expr})" if labels else f"{agg}({expr})"
    if spec.regroup is not None:
        r = spec.regroup.relabel
        relabelled = f'label_replace({expr}, "{r.dst}", "{r.replacement}", "{r.src}", "{r.regex}")'
        expr = f"sum by ({', '.join(spec.regroup.by)}) ({relabelled})"
    return expr
