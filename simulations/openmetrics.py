"""Export a run's time series as an OpenMetrics text file that ``promtool tsdb create-blocks-from
openmetrics`` accepts, under the names the real systems use: the scaler's own ``llm_scaler_*`` gauges
(scaler/telemetry.py) and every series the simulated Prometheus scraped (``vllm:*`` as vLLM exports them,
``DCGM_FI_DEV_GPU_UTIL``, ``up``, the gateway's queue), so the project's dashboards and queries work on
simulated data too. One sample per scrape; timestamps are seconds since ``base_epoch_s``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

import numpy as np

from simulations.engine import RunResult
from simulations.policy import DEPLOYMENT, SCALEDOBJECT

BASE_EPOCH_S = 1_700_000_000.0  # 2023-11-14T22:13:20Z; any fixed origin keeps files reproducible


def labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    """``{k="v",...}`` with the values escaped as the exposition format requires."""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number_text(v: float) -> str:
    """A sample value as OpenMetrics text (10 significant digits)."""
    return f"{v:.10g}"


class Families:
    """Samples grouped by family, then series, in time order (OpenMetrics forbids interleaving families)."""

    def __init__(self) -> None:
        self.types: dict[str, tuple[str, str]] = {}
        self.samples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))

    def declare(self, family: str, kind: str, help_text: str) -> None:
        self.types.setdefault(family, (kind, help_text))

    def add(self, family: str, sample_name: str, labels: str, value: float, ts: float) -> None:
        line = f"{sample_name}{labels} {number_text(value)} {ts:.3f}"
        self.samples[family][sample_name + labels].append(line)

    def series(self, family: str, key: str) -> list[str]:
        """The lines of one series, to extend in time order."""
        return self.samples[family][key]

    def write(self, out: TextIO) -> None:
        """Every declared family with samples, then ``# EOF``."""
        for family, (kind, help_text) in self.types.items():
            if family not in self.samples:
                continue
            out.write(f"# TYPE {family} {kind}\n# HELP {family} {help_text}\n")
            for lines in self.samples[family].values():
                out.write("\n".join(lines) + "\n")
        out.write("# EOF\n")


def _fleet(f: Families, r: RunResult, namespace: str, base: float) -> None:
    """Every sample every target gave the simulated Prometheus (``tsdb``), under its exposed name and
    labels, with the namespace of this run."""
    for tg in r.store.targets:
        if not tg.times:
            continue
        target = [(k, namespace if k == "namespace" else v) for k, v in tg.labels.items()]
        ts = [f"{base + t:.3f}" for t in tg.times]
        values = np.asarray(tg.rows)
        for fam in tg.schema.families:
            f.declare(fam.name, fam.kind, fam.help)
            for c in range(fam.start, fam.stop):
                col = tg.schema.columns[c]
                labels = labels_text([*target, *col.labels])
                # NaN: the series was absent from that scrape (a loading pod's failed scrape has only up).
                lines = [
                    f"{col.name}{labels} {number_text(v)} {t}"
                    for v, t in zip(values[:, c].tolist(), ts, strict=True)
                    if v == v
                ]
                if lines:
                    f.series(fam.name, col.name + labels).extend(lines)


def _scaler(f: Families, r: RunResult, namespace: str, base: float) -> None:
    if not r.decisions:
        return
    so = [("namespace", namespace), ("scaledobject", SCALEDOBJECT), ("deployment", DEPLOYMENT)]
    ls = labels_text(so)
    for name, help_text in (
        ("llm_scaler_desired_replicas", "Replicas the scaler asks for (the value returned to KEDA)."),
        ("llm_scaler_current_replicas", "Pods of the Deployment that exist, as the scaler sees them."),
        ("llm_scaler_ready_replicas", "Pods of the Deployment that serve and report metrics."),
        ("llm_scaler_active", "1 if the scaler reports the ScaledObject active."),
        ("llm_scaler_warming_replicas", "Pods that exist but are not Ready yet."),
        ("llm_scaler_cold_start_seconds", "Cold-start estimate used by the decision."),
        ("llm_scaler_signal_value", "Measured value of each signal."),
        ("llm_scaler_signal_desired_replicas", "Replicas each signal alone would ask for."),
    ):
        f.declare(name, "gauge", help_text)
    i = 0
    decisions = r.decisions
    # The scaler's own /metrics is scraped like the gateway: every interval over the whole run.
    scraped = next(tg.times for tg in r.store.targets if tg.job == "gateway")
    for at in scraped:
        while i + 1 < len(decisions) and decisions[i + 1][0] <= at:
            i += 1
        t, d = decisions[i]
        if t > at:
            continue
        ts = base + at
        f.add("llm_scaler_desired_replicas", "llm_scaler_desired_replicas", ls, d.desired_replicas, ts)
        if d.current_replicas is not None:
            f.add("llm_scaler_current_replicas", "llm_scaler_current_replicas", ls, d.current_replicas, ts)
        if d.ready_replicas is not None:
            f.add("llm_scaler_ready_replicas", "llm_scaler_ready_replicas", ls, d.ready_replicas, ts)
        f.add("llm_scaler_active", "llm_scaler_active", ls, 1.0 if d.active else 0.0, ts)
        if d.warming_replicas is not None:
            f.add(
                "llm_scaler_warming_replicas",
                "llm_scaler_warming_replicas",
                ls,
                float(d.warming_replicas),
                ts,
            )
        f.add("llm_scaler_cold_start_seconds", "llm_scaler_cold_start_seconds", ls, d.cold_start.seconds, ts)
        for v in d.signals:
            sl = labels_text([*so, ("signal", v.signal.value)])
            if v.value is not None:
                f.add("llm_scaler_signal_value", "llm_scaler_signal_value", sl, float(v.value), ts)
            if v.desired_replicas is not None:
                f.add(
                    "llm_scaler_signal_desired_replicas",
                    "llm_scaler_signal_desired_replicas",
                    sl,
                    float(v.desired_replicas),
                    ts,
                )


def write_openmetrics(runs: dict[str, RunResult], path: Path, base_epoch_s: float = BASE_EPOCH_S) -> int:
    """Write every run (namespace ``sim-<policy>``) to ``path``; returns the number of samples."""
    f = Families()
    for name, r in runs.items():
        if not any(tg.times for tg in r.store.targets) or not r.store.keep_all:
            raise ValueError(f"run {name!r} kept no scrapes; simulate with keep_scrapes=True")
        namespace = f"sim-{name}"
        _scaler(f, r, namespace, base_epoch_s)
        _fleet(f, r, namespace, base_epoch_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        f.write(out)
    return sum(len(v) for fam in f.samples.values() for v in fam.values())
