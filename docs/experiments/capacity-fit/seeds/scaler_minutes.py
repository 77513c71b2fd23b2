"""Minute by minute, the scaler against one static fleet: where its misses land and what it held.

    python docs/experiments/capacity-fit/seeds/scaler_minutes.py K RUN_ARGS...
    python docs/experiments/capacity-fit/seeds/scaler_minutes.py 4 --trace azure-code --slice 0:1800 --seed 0

RUN_ARGS are `python -m simulations run`'s trace arguments. It runs `--policy scaler` and `--policy
static-peak --set replicas=K`, prints each run's attainment and GPU-hours, then for every minute of
arrivals: the arrivals, the requests late on the scaler and on the static fleet, and the scaler's mean
Ready replicas and its mean / most Deployment replicas in that minute. `late_by_minute.py` does the same
for static fleets alone.
"""

import sys

import numpy as np
from late_by_minute import minutes

from simulations.engine import simulate
from simulations.policies import make_policy


def main(argv: list[str]) -> None:
    k = int(argv[0])
    trace, sim, arrival, bins, arrived = minutes(argv[1:])
    scaler = simulate(trace, make_policy("scaler", sim, trace, {}, {}), sim)
    static = simulate(trace, make_policy("static-peak", sim, trace, {"replicas": str(k)}, {}), sim)
    for name, run in (("scaler", scaler), (f"static-{k}", static)):
        print(f"{name}: {run.met() / len(arrival):.5f} @ {run.gpu_seconds / 3600:.2f} GPU-h")
    late_scaler, _ = np.histogram(arrival[~scaler.met_slo()], bins)
    late_static, _ = np.histogram(arrival[~static.met_slo()], bins)
    t = scaler.times_s
    print(f"minute arrivals  late: scaler static-{k}  scaler Ready  replicas (mean / most)")
    for i, n in enumerate(arrived):
        m = (t >= bins[i]) & (t < bins[i] + 60.0)
        print(
            f"{bins[i] / 60:6.0f} {n:8d}  {late_scaler[i]:12d} {late_static[i]:8d}"
            f"  {scaler.ready[m].mean():12.1f}"
            f"  {scaler.replicas[m].mean():8.1f} / {scaler.replicas[m].max():.0f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
