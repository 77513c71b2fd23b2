"""Command line: ``python -m simulations {compare,run,scorecard,demo,trace}``; bad input is one line and exit
code 2."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from scaler.core.config import ConfigError
from scaler.core.target import target_from_ref
from simulations.engine import compare, simulate
from simulations.oracle import OracleBound, SolverMissing, oracle_bound
from simulations.policies import make_policy
from simulations.policy import NAMESPACE, POLICIES, SCALEDOBJECT, PolicyError, SimSettings, scaler_metadata
from simulations.profile import DEFAULT_PROFILE, PROFILES, profile_named
from simulations.report import ProgressBar, summary_table, write_comparison, write_run
from simulations.scorecard import SETS
from simulations.trace import GENERATORS, Trace, TraceError, load_trace, write_trace


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _positive(name: str) -> Callable[[str], float]:
    return _number(name, allow_zero=False)


def _non_negative(name: str) -> Callable[[str], float]:
    return _number(name, allow_zero=True)


def _number(name: str, allow_zero: bool) -> Callable[[str], float]:
    bound = ">= 0" if allow_zero else "> 0"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number {bound}, got {text!r}") from None
        if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number {bound}, got {text!r}")
        return v

    return parse


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"--seed must be an integer >= 0, got {text!r}")
    return v


def _seeds(text: str) -> list[int]:
    """``--seeds 0,1,2,3``: distinct integers >= 0, at least two (one seed is ``--seed``)."""
    allowed = "a comma-separated list of at least two distinct integers >= 0, e.g. 0,1,2,3"
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be {allowed}, got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds must be {allowed}, got {text!r}")
    return seeds


def _pairs(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trace",
        required=True,
        help="CSV path (Azure or arrival_s,input_tokens,output_tokens), or azure-conv / azure-code",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)}")
    p.add_argument("--cold-start-s", type=_positive("--cold-start-s"), default=60.0)
    p.add_argument("--ttft-slo-s", type=_positive("--ttft-slo-s"), default=1.0)
    p.add_argument(
        "--ttft-slo-per-1k-prompt-s",
        type=_non_negative("--ttft-slo-per-1k-prompt-s"),
        default=0.0,
        help="length-aware SLO: each request's TTFT deadline adds this per 1,000 prompt tokens",
    )
    p.add_argument(
        "--warmup-s",
        type=_non_negative("--warmup-s"),
        default=600.0,
        help="replay this much of the trace's opening, unscored, first (0: start cold)",
    )
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--max-replicas", type=int, default=32)
    p.add_argument(
        "--speedup",
        type=_positive("--speedup"),
        default=1.0,
        help="replay the trace this many times faster (its load this many times higher); --slice is in the "
        "replayed seconds",
    )
    p.add_argument("--slice", help="START:END seconds of the trace to replay, e.g. 0:1200")
    p.add_argument(
        "--openmetrics", type=Path, help="also write the run's time series to this OpenMetrics file"
    )


def _workers(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="processes for the policies' runs and the frontier sweeps (1-8)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m simulations", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser("compare", help="every policy on one trace, plus the oracle bound")
    _common(c)
    c.add_argument("--policies", default=",".join(POLICIES), help="comma-separated subset")
    c.add_argument("--set", action="append", metavar="POLICY.KEY=VALUE", help="a policy setting")
    c.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="scaler trigger metadata")
    c.add_argument(
        "--frontier",
        action="store_true",
        help="also sweep each baseline's main knob: GPU-hours it needs to match the scaler's attainment",
    )
    _workers(c)
    r = sub.add_parser("run", help="one policy with its settings, for tuning")
    _common(r)
    r.add_argument("--policy", required=True, help=f"one of {', '.join(POLICIES)}")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="a policy setting")
    r.add_argument("--metadata", action="append", metavar="KEY=VALUE", help="scaler trigger metadata")
    sc = sub.add_parser("scorecard", help="compare --frontier over the scorecard's traces, and one table")
    sc.add_argument("--out", required=True, type=Path)
    sc.add_argument("--set", default="tuning", choices=SETS, help="which traces (default tuning)")
    sc.add_argument("--profile", default=DEFAULT_PROFILE, help=f"one of {', '.join(PROFILES)}")
    sc.add_argument("--cold-start-s", type=_positive("--cold-start-s"), default=60.0)
    sc.add_argument("--ttft-slo-s", type=_positive("--ttft-slo-s"), default=1.0)
    seed = sc.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=_seed, default=0)
    seed.add_argument(
        "--seeds",
        type=_seeds,
        help="several seeds, e.g. 0,1,2,3: each seed's scorecard and the verdicts per seed",
    )
    _workers(sc)
    d = sub.add_parser("demo", help="the closed loop through the real gRPC server, and the scorecard")
    d.add_argument("--out", type=Path, default=Path("out/demo"))
    d.add_argument("--trace", default="azure-conv")
    d.add_argument("--slice", default="0:3600")
    d.add_argument("--profile", default=DEFAULT_PROFILE)
    g = sub.add_parser("trace", help="generate a synthetic trace (plain CSV)")
    g.add_argument("--kind", required=True, choices=sorted(GENERATORS))
    g.add_argument("--rate", type=_positive("--rate"), default=2.0, help="requests/s (mean or base)")
    g.add_argument("--duration-s", type=_positive("--duration-s"), default=3600.0)
    g.add_argument("--seed", type=_seed, default=0)
    g.add_argument("--out", required=True, type=Path)
    return parser


def _load(args: argparse.Namespace) -> tuple[Trace, SimSettings]:
    trace = load_trace(args.trace).sped_up(args.speedup)
    if args.slice:
        start, sep, end = str(args.slice).partition(":")
        try:
            trace = trace.slice(float(start), float(end))
        except ValueError:
            raise UsageError(f"--slice must be START:END seconds, e.g. 0:1200, got {args.slice!r}") from None
        if not sep:
            raise UsageError(f"--slice must be START:END seconds, e.g. 0:1200, got {args.slice!r}")
    if not 1 <= args.max_replicas <= 512:
        raise UsageError(f"--max-replicas must be in [1, 512], got {args.max_replicas}")
    sim = SimSettings(
        profile=profile_named(args.profile),
        cold_start_s=args.cold_start_s,
        ttft_slo_s=args.ttft_slo_s,
        ttft_slo_per_1k_prompt_s=args.ttft_slo_per_1k_prompt_s,
        warmup_s=args.warmup_s,
        seed=args.seed,
        max_replicas=args.max_replicas,
    )
    return trace, sim


def cmd_compare(args: argparse.Namespace) -> int:
    trace, sim = _load(args)
    policies = tuple(p.strip() for p in args.policies.split(",") if p.strip())
    for p in policies:
        if p not in POLICIES:
            raise PolicyError(f"unknown policy {p!r} in --policies; allowed: {', '.join(POLICIES)}")
    settings: dict[str, dict[str, str]] = {}
    for key, value in _pairs(args.set, "--set").items():
        pol, dot, k = key.partition(".")
        if not dot or pol not in POLICIES:
            raise UsageError(
                f"--set takes POLICY.KEY=VALUE with POLICY one of {', '.join(POLICIES)}, got {key!r}"
            )
        settings.setdefault(pol, {})[k] = value
    metadata = _pairs(args.metadata, "--metadata")
    target_from_ref(NAMESPACE, SCALEDOBJECT, scaler_metadata(sim, metadata))  # fail before simulating
    if args.frontier and "scaler" not in policies:
        raise UsageError("--frontier compares against the scaler: keep scaler in --policies")
    if not 1 <= args.workers <= 8:
        raise UsageError(f"--workers must be in [1, 8], got {args.workers}")
    bar = ProgressBar("compare")
    try:
        c = compare(
            trace,
            sim,
            policies,
            settings,
            metadata,
            progress=bar,
            keep_scrapes=args.openmetrics is not None,
            frontier=args.frontier,
            workers=args.workers,
        )
    finally:
        bar.close()
    summary = write_comparison(c, args.out)
    if args.openmetrics:
        from simulations.openmetrics import write_openmetrics

        write_openmetrics(c.runs, args.openmetrics)
    sys.stdout.write(summary_table(summary))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    trace, sim = _load(args)
    metadata = _pairs(args.metadata, "--metadata")
    policy = make_policy(args.policy, sim, trace, _pairs(args.set, "--set"), metadata)
    bar = ProgressBar(args.policy)
    try:
        r = simulate(trace, policy, sim, bar, keep_scrapes=args.openmetrics is not None)
    finally:
        bar.close()
    bound: OracleBound | None = None
    try:
        bound = oracle_bound(trace, sim)
    except SolverMissing:
        print(
            "oracle bound skipped: scipy is not installed; pip install 'llm-keda-scaler[sim]' for it",
            file=sys.stderr,
        )
    summary = write_run(r, args.out, bound)
    if args.openmetrics:
        from simulations.openmetrics import write_openmetrics

        write_openmetrics({r.policy: r}, args.openmetrics)
    sys.stdout.write(summary_table(summary))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    gen = GENERATORS[args.kind]
    if args.kind == "bursts":
        trace = gen(args.rate, 5 * args.rate, args.duration_s, seed=args.seed)  # type: ignore[operator]
    else:
        trace = gen(args.rate, args.duration_s, seed=args.seed)  # type: ignore[operator]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_trace(trace, args.out)
    print(f"wrote {len(trace)} requests over {trace.span_s:.0f} s to {args.out}")
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    from simulations.scorecard import run_scorecard

    if not 1 <= args.workers <= 8:
        raise UsageError(f"--workers must be in [1, 8], got {args.workers}")
    sim = SimSettings(
        profile=profile_named(args.profile),
        cold_start_s=args.cold_start_s,
        ttft_slo_s=args.ttft_slo_s,
        seed=args.seed,
    )
    result = run_scorecard(
        args.out,
        sim,
        args.set,
        args.workers,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        seeds=args.seeds,
    )
    sys.stdout.write((args.out / "scorecard.md").read_text())
    print(f"scorecard ({result['set']}): {result['wall_s']:.0f} s", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simulations.demo import run_demo

    return run_demo(args.trace, args.slice, args.profile, args.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        started = time.perf_counter()
        commands = {
            "compare": cmd_compare,
            "run": cmd_run,
            "scorecard": cmd_scorecard,
            "demo": cmd_demo,
            "trace": cmd_trace,
        }
        rc = commands[args.command](args)
        if args.command in ("compare", "run"):
            print(f"wrote {args.out} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        return rc
    except (UsageError, TraceError, PolicyError, ConfigError, ValueError, SolverMissing) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"python -m simulations: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
