"""Reporting: summary.json, summary.md and the plots (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from simulations.engine import Comparison, RunResult
from simulations.oracle import OracleBound

COLUMNS = (
    "slo_attainment",
    "ttft_p50_s",
    "ttft_p99_s",
    "e2e_p99_s",
    "tpot_p99_s",
    "gpu_hours",
    "cold_starts",
    "max_replicas",
    "dropped",
)


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most 5 times a second."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self._last = 0.0
        self._decile = -1
        self._started = time.monotonic()

    def __call__(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        tty = self.stream.isatty()
        # On a terminal: redraw in place 5 times a second. In a log: one line per 10 %.
        if tty and fraction < 1.0 and now - self._last < 0.2:
            return
        decile = int(10 * min(1.0, fraction))
        if not tty and decile <= self._decile:
            return
        self._last, self._decile = now, decile
        filled = int(self.width * min(1.0, fraction))
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% {now - self._started:5.1f}s {message}"
        self.stream.write(f"\r{line[:119]:<119}" if tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream.isatty():
            self.stream.write("\n")
        self.stream.flush()


# What each row of a run's decisions.jsonl carries besides the replicas and the reason.
DECISION_EVIDENCE = ("capacity", "projection", "burst", "headroom", "floors")
PLOTS_HINT = "plots skipped: matplotlib is not installed; pip install 'llm-keda-scaler[sim]' for them"
WATCHES = {
    "keda-queue": "KEDA on vllm:num_requests_waiting",
    "keda-tuned": "KEDA on running + waiting, gateway activation",
    "hpa-gpu": "HPA on DCGM GPU utilisation",
    "kpa": "Knative KPA on concurrency",
    "static-peak": "always on, sized with hindsight",
    "hindsight": "the oracle LP's schedule replayed",
}


def summary_table(summary: dict[str, Any]) -> str:
    """The markdown table of summary.json (plus GPU-hours relative to the oracle), and the frontier."""
    oracle = summary.get("oracle_gpu_hours")
    head = ["policy", *COLUMNS, "bound_gpu_hours", "x oracle"]
    lines = [
        f"Trace `{summary['trace']}`: {summary['requests']} requests; profile {summary.get('profile')}, "
        f"cold start {summary.get('cold_start_s')} s, TTFT SLO {summary.get('ttft_slo_s')} s, "
        f"seed {summary.get('seed')}. Oracle lower bound: {oracle} GPU-hours.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, row in summary["policies"].items():
        ratio = f"{row['gpu_hours'] / oracle:.2f}" if oracle else "-"
        label = f"{name} ({WATCHES[name]})" if name in WATCHES else name
        cells = [
            label,
            *("-" if row.get(c) is None else f"{row[c]:g}" for c in (*COLUMNS, "bound_gpu_hours")),
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "slo_attainment: fraction of all requests whose TTFT met the SLO (dropped ones count as misses); "
        "latency percentiles are over the requests served; gpu_hours include loading and draining replicas. "
        "Oracle: the LP bound no policy serving every request in time beats (cold starts paid); "
        "bound_gpu_hours: the bound at that policy's own attainment (simulations/oracle.py).",
    ]
    fr = summary.get("frontier")
    if fr:
        lines += [
            "",
            "Frontier: GPU-hours each baseline needs to reach the scaler's attainment "
            f"({summary['policies']['scaler']['slo_attainment']}), the fewest among its swept settings "
            "(unreachable: none reached it).",
            "",
            "| baseline | GPU-hours at the scaler's attainment | setting | points swept |",
            "|---|---|---|---|",
        ]
        for name, f in fr.items():
            if not isinstance(f, dict):
                continue
            at = f["gpu_hours_at_scaler_attainment"]
            cells = [
                name,
                "unreachable" if at is None else f"{at:g}",
                f["setting_at_scaler_attainment"] or "-",
                str(len(f["points"])),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    if len(x) < window:
        return x
    c = np.cumsum(np.r_[0.0, x])
    out = (c[window:] - c[:-window]) / window
    padded: np.ndarray = np.concatenate([np.full(window - 1, out[0]), out])
    return padded


def plot(
    runs: dict[str, RunResult],
    out_dir: Path,
    oracle_curve: tuple[float, np.ndarray] | None = None,
    slo_s: float | None = None,
) -> list[Path]:
    """replicas.png (replicas over time vs demand, one panel per policy) and latency.png (TTFT CDFs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    n = len(runs)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.2 * n + 0.6), sharex=True, squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], runs.items(), strict=True):
        t_min = r.times_s / 60.0
        ax.fill_between(t_min, r.holding, step="post", alpha=0.25, color="tab:blue", label="GPU-holding")
        ax.step(t_min, r.replicas, where="post", color="tab:blue", lw=1.2, label="replicas")
        ax.step(t_min, r.ready, where="post", color="tab:green", lw=0.9, label="ready")
        if oracle_curve is not None:
            bin_s, curve = oracle_curve
            ax.step(
                np.arange(len(curve)) * bin_s / 60.0,
                curve,
                where="post",
                color="k",
                lw=0.8,
                ls=":",
                label="oracle bound",
            )
        ax.set_ylabel(name)
        ax2 = ax.twinx()
        ax2.plot(t_min, _rolling(r.arrivals_per_s, 60), color="tab:orange", lw=0.9, label="req/s (1 min)")
        ax2.set_ylabel("req/s", color="tab:orange")
        s = r.summary()
        ax.set_title(
            f"{name}: SLO {s['slo_attainment']}, {s['gpu_hours']} GPU-h, {s['cold_starts']} cold starts",
            fontsize=9,
            loc="left",
        )
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1, 0].set_xlabel("minutes")
    fig.tight_layout()
    p = out_dir / "replicas.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, r in runs.items():
        x = np.sort(np.nan_to_num(r.ttft_s, nan=np.inf))
        x = x[np.isfinite(x)]
        if len(x):
            ax.plot(np.maximum(x, 1e-3), np.arange(1, len(x) + 1) / len(r.ttft_s), label=name, lw=1.2)
    if slo_s is not None:
        ax.axvline(slo_s, color="k", ls="--", lw=0.8, label=f"SLO {slo_s:g} s")
    ax.set_xscale("log")
    ax.set_xlabel("time to first token (s)")
    ax.set_ylabel("fraction of all requests")
    # Show the upper tail, low enough that every policy's attainment at the SLO is visible.
    worst = min((r.summary()["slo_attainment"] or 0.0) for r in runs.values()) if runs else 1.0
    ax.set_ylim(min(0.8, max(0.0, np.floor((worst - 0.05) * 10) / 10)), 1.001)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("TTFT distribution (upper tail)")
    fig.tight_layout()
    p = out_dir / "latency.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    paths.append(p)
    return paths


def write_comparison(c: Comparison, out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = c.summary()
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(summary_table(summary))
    try:
        plot(c.runs, out_dir, (c.oracle.bin_s, c.oracle.replicas_per_bin), c.sim.ttft_slo_s)
        if c.frontier:
            plot_frontier(summary, out_dir)
    except ImportError:
        print(PLOTS_HINT, file=sys.stderr)
    return summary


def write_run(r: RunResult, out_dir: Path, oracle: OracleBound | None) -> dict[str, Any]:
    """summary.json, summary.md, decisions.jsonl (scaler) and the plots of one run. ``oracle`` None: the
    bound was not computed (no scipy); its keys are null."""
    out_dir.mkdir(parents=True, exist_ok=True)
    row = r.summary()
    row["bound_gpu_hours"] = round(oracle.at_met(r.met()), 4) if oracle is not None else None
    summary = {
        "trace": r.trace,
        "requests": len(r.ttft_s),
        "oracle_gpu_hours": round(oracle.gpu_hours, 4) if oracle is not None else None,
        "profile": r.sim.profile.name,
        "cold_start_s": r.sim.cold_start_s,
        "ttft_slo_s": r.sim.ttft_slo_s,
        "seed": r.sim.seed,
        "settings": r.settings,
        **({"metadata": r.metadata} if r.metadata else {}),
        "policies": {r.policy: row},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out_dir / "summary.md").write_text(summary_table(summary))
    if r.decisions:
        with (out_dir / "decisions.jsonl").open("w") as fh:
            for t, d in r.decisions:
                # The evidence as `explain` shows it (Decision.to_dict): the capacity estimate with its
                # learned costs, the projection, the headroom and each floor.
                record = d.to_dict()
                evidence = {k: record[k] for k in DECISION_EVIDENCE if k in record}
                row = {
                    "t_s": t,
                    "desired": d.desired_replicas,
                    "active": d.active,
                    "valid": d.valid,
                    "reason": d.reason.value,
                    "current": d.current_replicas,
                    "ready": d.ready_replicas,
                    **evidence,
                }
                fh.write(json.dumps(row) + "\n")
    try:
        plot({r.policy: r}, out_dir, None, r.sim.ttft_slo_s)
    except ImportError:
        print(PLOTS_HINT, file=sys.stderr)
    return summary


def plot_frontier(summary: dict[str, Any], out_dir: Path) -> Path:
    """frontier.png: each baseline's swept points (GPU-hours against attainment) joined in order of cost,
    the scaler's point, and the scaler's attainment as a vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = summary["frontier"]
    scaler = summary["policies"]["scaler"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, f in fr.items():
        if not isinstance(f, dict) or not f["points"]:
            continue
        pts = sorted(f["points"], key=lambda p: p[1])
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3.5, lw=1.0, label=name)
    ax.plot(
        [scaler["slo_attainment"]], [scaler["gpu_hours"]], marker="*", ms=14, color="k", ls="", label="scaler"
    )
    ax.axvline(scaler["slo_attainment"], color="k", lw=0.6, ls=":")
    ax.axhline(summary["oracle_gpu_hours"], color="tab:gray", lw=0.8, ls="--", label="oracle bound")
    ax.set_xlabel("SLO attainment")
    ax.set_ylabel("GPU-hours")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{summary['trace']}: each baseline's knob swept; the scaler's point", fontsize=10)
    fig.tight_layout()
    p = out_dir / "frontier.png"
    fig.savefig(p, dpi=90)
    plt.close(fig)
    return p
