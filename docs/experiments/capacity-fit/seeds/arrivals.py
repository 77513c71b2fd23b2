"""The projection's arrival rate beside the trace's, at each refresh in a time range.

    python docs/experiments/capacity-fit/seeds/arrivals.py T0_S T1_S RUN_ARGS...
    python docs/experiments/capacity-fit/seeds/arrivals.py 420 480 \\
        --trace azure-conv --speedup 4 --slice 0:900 --seed 1

RUN_ARGS are `python -m simulations run`'s trace arguments. It runs `--policy scaler` and, at every
fourth second's refresh in [T0_S, T1_S], prints what `scaler/core/projection.py` reads as arrivals (the
served rate plus the growth of the requests in flight, `growth_per_s`), the requests that really arrived
per second over the minute before, and the in-flight history points of that minute (seconds before now,
requests).
"""

import sys

from late_by_minute import minutes

from scaler.core.projection import growth_per_s
from scaler.core.signals import Measure
from simulations.engine import simulate
from simulations.policies import make_policy
from simulations.policy import KEY


def main(argv: list[str]) -> None:
    t0_s, t1_s = float(argv[0]), float(argv[1])
    trace, sim, arrival, _, _ = minutes(argv[2:])
    policy = make_policy("scaler", sim, trace, {}, {})
    refresh = policy.refresh

    def observed(t_s: float) -> None:
        if t0_s <= t_s <= t1_s and int(t_s) % 4 == 0:
            obs = policy.source.collect([policy.target])[KEY]
            served = obs.signals.requests_per_s or 0.0
            in_flight = obs.state.history[Measure.QUEUE]
            growth = growth_per_s(in_flight, t_s)
            real = ((arrival >= t_s - 60.0) & (arrival < t_s)).sum() / 60.0
            points = [
                (round(t - t_s), round(v))
                for t, v in zip(in_flight.times_s, in_flight.values, strict=True)
                if t >= t_s - 60.0
            ]
            print(
                f"{t_s:5.0f} s  served {served:5.1f} + growth {growth:4.1f} = {served + growth:5.1f}/s"
                f"  arrived {real:5.1f}/s  in flight {points}"
            )
        refresh(t_s)

    policy.refresh = observed
    simulate(trace, policy, sim)


if __name__ == "__main__":
    main(sys.argv[1:])
