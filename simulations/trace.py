"""Request traces: arrival times and token counts, loaded from CSV or generated.

Formats: the Azure LLM inference CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``) and a plain CSV
(``arrival_s,input_tokens,output_tokens``). Generators: Poisson, diurnal, bursts, idle gaps and flash
crowds, all deterministic for a seed. Arrivals are seconds from the first request, sorted.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

BUNDLED_DIR = Path(__file__).parent / "traces"
BUNDLED = {
    "azure-conv": BUNDLED_DIR / "azure_llm_2023_conv.csv",
    "azure-code": BUNDLED_DIR / "azure_llm_2023_code.csv",
}


class TraceError(ValueError):
    """A trace that cannot be read: the message names the file, the line and what is allowed."""


@dataclass(frozen=True)
class Trace:
    name: str
    arrival_s: np.ndarray  # float64, sorted, first = 0
    input_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def sped_up(self, factor: float) -> Trace:
        """The same requests arriving ``factor`` times faster (the load ``factor`` times higher, the same
        mix and burst shapes, each ``factor`` times shorter): a busier service than the trace's own. The
        conversation trace at 2x is 11 requests/s over 30 minutes where the whole hour averaged 5.5."""
        if not (math.isfinite(factor) and factor > 0):
            raise TraceError(f"the speed-up must be a finite number > 0, got {factor!r}")
        if factor == 1:
            return self
        a = self.arrival_s / factor
        return Trace(f"{self.name} x{factor:g}", a, self.input_tokens, self.output_tokens)

    def slice(self, start_s: float, end_s: float) -> Trace:
        """Requests arriving in [start_s, end_s), re-based to start at 0."""
        keep = (self.arrival_s >= start_s) & (self.arrival_s < end_s)
        if not keep.any():
            raise TraceError(f"{self.name}: no requests in [{start_s:g}, {end_s:g}) s")
        a = self.arrival_s[keep]
        return Trace(
            f"{self.name}[{start_s:g}:{end_s:g}]", a - a[0], self.input_tokens[keep], self.output_tokens[keep]
        )


def _make(name: str, arrival: list[float], inp: list[int], out: list[int]) -> Trace:
    a = np.asarray(arrival, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    a = a[order]
    return Trace(
        name,
        a - a[0],
        np.asarray(inp, dtype=np.int64)[order],
        np.asarray(out, dtype=np.int64)[order],
    )


def _positive_int(text: str, path: Path, line: int, column: str) -> int:
    try:
        value = int(float(text))
    except ValueError:
        raise TraceError(f"{path}:{line}: {column} must be an integer >= 0, got {text[:40]!r}") from None
    if value < 0:
        raise TraceError(f"{path}:{line}: {column} must be an integer >= 0, got {value}")
    return max(value, 1)  # a zero-token request still costs one token of work; 0 would divide nothing


def load_trace(path: str | Path) -> Trace:
    """Read an Azure or plain CSV trace, or a bundled one by name (``azure-conv``, ``azure-code``)."""
    p = BUNDLED.get(str(path), Path(path))
    if not p.is_file():
        raise TraceError(
            f"trace {str(path)!r} is not a file; give a CSV path or one of: {', '.join(sorted(BUNDLED))}"
        )
    with p.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        rows = list(reader)
    arrival: list[float] = []
    inp: list[int] = []
    out: list[int] = []
    if header == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]:
        epoch = None
        for i, row in enumerate(rows, start=2):
            if len(row) != 3:
                raise TraceError(f"{p}:{i}: expected 3 columns, got {len(row)}")
            try:
                # Azure writes 7 fractional digits; datetime takes at most 6.
                ts = row[0].strip()
                if "." in ts:
                    head, frac = ts.split(".", 1)
                    ts = f"{head}.{frac[:6]}"
                t = datetime.fromisoformat(ts).timestamp()
            except ValueError:
                raise TraceError(
                    f"{p}:{i}: TIMESTAMP must look like 2023-11-16 18:15:46.6805900, got {row[0][:40]!r}"
                ) from None
            epoch = t if epoch is None else epoch
            arrival.append(t - epoch)
            inp.append(_positive_int(row[1], p, i, "ContextTokens"))
            out.append(_positive_int(row[2], p, i, "GeneratedTokens"))
    elif header == ["arrival_s", "input_tokens", "output_tokens"]:
        for i, row in enumerate(rows, start=2):
            if len(row) != 3:
                raise TraceError(f"{p}:{i}: expected 3 columns, got {len(row)}")
            try:
                t = float(row[0])
            except ValueError:
                raise TraceError(f"{p}:{i}: arrival_s must be seconds, got {row[0][:40]!r}") from None
            if not math.isfinite(t) or t < 0:
                raise TraceError(f"{p}:{i}: arrival_s must be finite and >= 0, got {row[0][:40]!r}")
            arrival.append(t)
            inp.append(_positive_int(row[1], p, i, "input_tokens"))
            out.append(_positive_int(row[2], p, i, "output_tokens"))
    else:
        raise TraceError(
            f"{p}: unknown header {','.join(header)[:80]!r}; allowed: "
            "'TIMESTAMP,ContextTokens,GeneratedTokens' (Azure) or 'arrival_s,input_tokens,output_tokens'"
        )
    if not arrival:
        raise TraceError(f"{p}: no requests")
    return _make(p.stem, arrival, inp, out)


def write_trace(trace: Trace, path: Path) -> None:
    """Write the plain CSV format."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["arrival_s", "input_tokens", "output_tokens"])
        for a, i, o in zip(trace.arrival_s, trace.input_tokens, trace.output_tokens, strict=True):
            w.writerow([f"{a:.6f}", int(i), int(o)])


def _tokens(
    rng: np.random.Generator, n: int, mean_in: float, mean_out: float
) -> tuple[np.ndarray, np.ndarray]:
    # Log-normal lengths (sigma 0.8) with the given means: mean = exp(mu + sigma^2 / 2).
    sigma = 0.8
    inp = rng.lognormal(math.log(mean_in) - sigma**2 / 2, sigma, n)
    out = rng.lognormal(math.log(mean_out) - sigma**2 / 2, sigma, n)
    return np.maximum(1, inp.round()).astype(np.int64), np.maximum(1, out.round()).astype(np.int64)


def _from_rate(
    name: str, rate: np.ndarray, step_s: float, seed: int, mean_in: float, mean_out: float
) -> Trace:
    """A non-homogeneous Poisson process with piecewise-constant ``rate`` (req/s) on ``step_s`` bins."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * step_s)
    starts = np.repeat(np.arange(len(rate)) * step_s, counts)
    arrival = np.sort(starts + rng.uniform(0, step_s, len(starts)))
    if len(arrival) == 0:
        raise TraceError(f"{name}: the generated trace has no requests; raise the rate or the duration")
    inp, out = _tokens(rng, len(arrival), mean_in, mean_out)
    return Trace(name, arrival - arrival[0], inp, out)


def poisson(
    rate_per_s: float, duration_s: float, seed: int = 0, mean_in: float = 1000, mean_out: float = 200
) -> Trace:
    return _from_rate("poisson", np.full(int(duration_s), rate_per_s), 1.0, seed, mean_in, mean_out)


def diurnal(
    mean_rate_per_s: float, duration_s: float, period_s: float = 3600, amplitude: float = 0.8, seed: int = 0
) -> Trace:
    t = np.arange(int(duration_s))
    rate = mean_rate_per_s * (1 + amplitude * np.sin(2 * np.pi * t / period_s))
    return _from_rate("diurnal", np.maximum(rate, 0), 1.0, seed, 1000, 200)


def bursts(
    base_rate_per_s: float,
    burst_rate_per_s: float,
    duration_s: float,
    burst_every_s: float = 600,
    burst_len_s: float = 60,
    seed: int = 0,
) -> Trace:
    t = np.arange(int(duration_s))
    rate = np.where((t % burst_every_s) < burst_len_s, burst_rate_per_s, base_rate_per_s)
    return _from_rate("bursts", rate.astype(float), 1.0, seed, 1000, 200)


def idle_gaps(
    rate_per_s: float, duration_s: float, busy_s: float = 300, idle_s: float = 900, seed: int = 0
) -> Trace:
    t = np.arange(int(duration_s))
    rate = np.where((t % (busy_s + idle_s)) < busy_s, rate_per_s, 0.0)
    return _from_rate("idle-gaps", rate, 1.0, seed, 1000, 200)


def flash_crowd(
    base_rate_per_s: float,
    duration_s: float,
    factor: float = 8.0,
    every_s: float = 3600,
    first_s: float = 900,
    crowd_len_s: float = 300,
    ramp_s: float = 30,
    seed: int = 0,
) -> Trace:
    """Unannounced surges far apart: the rate jumps to ``factor`` x the base within ``ramp_s``, holds for
    ``crowd_len_s`` and falls back as fast, every ``every_s`` from ``first_s`` on. Worked example (the
    scorecard's): base 1/s over 9,000 s gives three crowds of 8/s at 15, 75 and 135 minutes."""
    t = np.arange(int(duration_s), dtype=np.float64)
    since = (t - first_s) % every_s
    started = t >= first_s
    up = np.clip(since / ramp_s, 0.0, 1.0)
    down = np.clip((crowd_len_s + ramp_s - since) / ramp_s, 0.0, 1.0)
    shape = np.where(started, np.minimum(up, down), 0.0)
    rate = base_rate_per_s * (1.0 + (factor - 1.0) * shape)
    return _from_rate("flash-crowd", rate, 1.0, seed, 1000, 200)


GENERATORS = {
    "poisson": poisson,
    "diurnal": diurnal,
    "bursts": bursts,
    "idle-gaps": idle_gaps,
    "flash-crowd": flash_crowd,
}
