"""Late requests per minute of arrival on static fleets of each size: where a burst stops being late.

    python docs/experiments/capacity-fit/seeds/late_by_minute.py K[,K...] WORK_S RUN_ARGS...

RUN_ARGS are `python -m simulations run`'s trace arguments (e.g. `--trace azure-code --slice 0:1800`).
Each K runs `--policy static-peak --set replicas=K`. For every minute with a late request on some K it
prints the arrivals, the late requests on each K, and, for the fewest K with none late, the minute's load
over K: arrivals x WORK_S / 60 / K, its utilisation there. WORK_S is the seconds of one replica's work a
request takes by the scaler's capacity model (its decisions' `capacity.work_s_per_request`: 0.21 on the
code trace). `PEAK_TO_MEAN` in `scaler/core/headroom.py` reads the code trace's largest burst here.
"""

import sys

import numpy as np

from simulations.__main__ import _load, build_parser
from simulations.engine import SimSettings, simulate
from simulations.policies import make_policy
from simulations.trace import Trace


def minutes(run_args: list[str]) -> tuple[Trace, SimSettings, np.ndarray, np.ndarray, np.ndarray]:
    """What `run RUN_ARGS` replays: trace, settings, arrival times, minute bins and arrivals a minute."""
    args = build_parser().parse_args(["run", *run_args, "--policy", "static-peak", "--out", "unused"])
    trace, sim = _load(args)
    arrival = np.asarray(trace.arrival_s)
    bins = np.arange(0.0, arrival.max() + 60.0, 60.0)
    arrived, _ = np.histogram(arrival, bins)
    return trace, sim, arrival, bins, arrived


def main(argv: list[str]) -> None:
    ks = [int(x) for x in argv[0].split(",")]
    work_s = float(argv[1])
    trace, sim, arrival, bins, arrived = minutes(argv[2:])
    late = {}
    for k in ks:
        run = simulate(trace, make_policy("static-peak", sim, trace, {"replicas": str(k)}, {}), sim)
        late[k], _ = np.histogram(arrival[~run.met_slo()], bins)
    print("minute arrivals  late on " + " ".join(f"{k:4d}" for k in ks) + "  utilisation where none late")
    for i, n in enumerate(arrived):
        if not any(late[k][i] for k in ks):
            continue
        free = [k for k in ks if late[k][i] == 0]
        u = f"{n * work_s / 60.0 / free[0]:.2f} on {free[0]}" if free else "-"
        print(f"{bins[i]:6.0f} {n:8d}          " + " ".join(f"{late[k][i]:4d}" for k in ks) + f"  {u}")


if __name__ == "__main__":
    main(sys.argv[1:])
