"""Which replica each request went to around a scale-up, and which of them were late.

    python docs/experiments/capacity-fit/seeds/herd.py T0_S T1_S RUN_ARGS...
    python docs/experiments/capacity-fit/seeds/herd.py 415 450 \
        --trace azure-conv --speedup 4 --slice 0:900 --seed 1

RUN_ARGS are `python -m simulations run`'s trace arguments. It runs `--policy scaler` and prints, for every
5 s of arrivals in [T0_S, T1_S), the requests routed to each replica (by its slot in the fleet) and how many
of them missed the SLO. The simulator routes each arrival to the Ready replica with the fewest requests
outstanding (`simulations/fleet.py`, `_route`), as a least-request gateway does, so a replica that has just
become Ready takes every arrival until it holds as many as the others.
"""

import sys

import numpy as np
from late_by_minute import minutes

from simulations.engine import simulate
from simulations.policies import make_policy


def _counts(slots: np.ndarray) -> dict[int, int]:
    """How many of ``slots`` name each replica."""
    names, n = np.unique(slots, return_counts=True)
    return dict(zip(names.tolist(), n.tolist(), strict=True))


def main(argv: list[str]) -> None:
    t0_s, t1_s = float(argv[0]), float(argv[1])
    trace, sim, arrival, _, _ = minutes(argv[2:])
    policy = make_policy("scaler", sim, trace, {}, {})
    run = simulate(trace, policy, sim)
    # The fleet also replayed the warm-up's arrivals, before the trace's own.
    replica = policy.fleet.rep[-len(arrival) :]
    late = ~run.met_slo()
    print(f"scaler: {run.met() / len(arrival):.5f} @ {run.gpu_seconds / 3600:.2f} GPU-h")
    print("from_s  requests by replica  late by replica")
    for lo in np.arange(t0_s, t1_s, 5.0):
        m = (arrival >= lo) & (arrival < lo + 5.0)
        print(f"{lo:6.0f}  {_counts(replica[m])}  {_counts(replica[m & late])}")


if __name__ == "__main__":
    main(sys.argv[1:])
