"""Print the warm floor's latency windows at chosen decision times of a simulated run.

    python docs/experiments/capacity-fit/windows.py AT_S[,AT_S...] RUN_ARGS...

RUN_ARGS are `python -m simulations run`'s (without `--out`), e.g.

    python docs/experiments/capacity-fit/windows.py 1200 --trace azure-code --slice 0:1800 --seed 1 \
        --policy scaler

For each decision at those times (within a second) it prints the floor and its reason, then one line per
window the floor weighed: its end, age weight, requests, Ready replicas, the reactive ask that served it,
whether it read as saturated, its need and utilisation, the requests waiting when it began (carried),
and the requests it would have served late on 1..12 replicas (the floor's own reading,
`_served_fraction`). Windows late on none of them are left out. It wraps `headroom_floor` as the
decision core calls it; nothing in the run changes.
"""

import math
import sys
from typing import Any

import numpy as np

import scaler.core.decision as decision
import scaler.core.headroom as headroom
from simulations.__main__ import _load, _pairs, build_parser
from simulations.engine import simulate
from simulations.policies import make_policy


def main(argv: list[str]) -> None:
    times = [float(x) for x in argv[0].split(",")]
    wrapped = decision.headroom_floor

    def dump(
        windows: Any, reactive: Any, slo_s: float, target: float, horizon_s: float, now_s: float, **kw: Any
    ) -> Any:
        result = wrapped(windows, reactive, slo_s, target, horizon_s, now_s, **kw)
        if not any(abs(now_s - t) < 1.01 for t in times):
            return result
        print(f"at {now_s:g} s: floor {result.replicas}: {result.why}")
        loads, base = kw.get("loads"), kw.get("base_s", 0.0)
        ks = np.arange(0, 13, dtype=float)
        for i, w in enumerate(windows):
            if w.requests <= 0 or w.ready <= 0 or w.end_s > now_s:
                continue
            load = loads[i] if loads is not None else None
            late = (1 - headroom._served_fraction(w, load, ks, slo_s, base)) * w.requests
            if not late[1:].round().any():
                continue
            react = headroom._reactive_at(reactive, w.end_s - 60 - horizon_s, w.ready)
            print(
                f"end {w.end_s:7.0f} weight {math.exp(-(now_s - w.end_s) / headroom.AGE_SCALE_S):.2f} "
                f"requests {w.requests:5.0f} ready {w.ready:4.1f} reactive {react:4.1f} "
                f"saturated {load.saturated if load else '-'} need {load.need if load else 0:5.2f} "
                f"u {load.utilisation if load else 0:.2f} carried {load.carried if load else 0:5.0f} "
                "late on 1..12: " + " ".join(f"{x:.0f}" for x in late[1:])
            )
        return result

    decision.headroom_floor = dump
    args = build_parser().parse_args(["run", *argv[1:], "--out", "unused"])
    trace, sim = _load(args)
    policy = make_policy(
        args.policy, sim, trace, _pairs(args.set, "--set"), _pairs(args.metadata, "--metadata")
    )
    result = simulate(trace, policy, sim, lambda *a, **k: None)
    print(result.summary())


if __name__ == "__main__":
    main(sys.argv[1:])
