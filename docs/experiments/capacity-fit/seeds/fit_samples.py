"""The capacity fit at one moment of a scaler run: the history steps it could use, which are samples, and
the costs learned with and without the waiting gauge (the drained test, WAITING_SHARE).

    python docs/experiments/capacity-fit/seeds/fit_samples.py T_S RUN_ARGS...
    python docs/experiments/capacity-fit/seeds/fit_samples.py 0 --trace azure-conv --speedup 5 --slice 0:720

Run from a checkout of fe2b91a (`PYTHONPATH=<checkout>`), before the drained test, it shows the fit the
scaler made then (both lines alike: it had no such test).

Each line: the step, Ready replicas, running and waiting sequences (and the most waiting in its rate
window), the step time, what the profile's own
costs give at that step's load (a / (1 - rho), per Ready replica), and whether the fit uses it.
"""

import sys

import scaler.core.decision as decision
from scaler.core.capacity import _busy_samples, learn_costs
from scaler.core.signals import Measure
from simulations.__main__ import main as simulations_main
from simulations.profile import LLAMA70B_FP8_H100X4 as PROFILE


def _at(series, t):  # type: ignore[no-untyped-def]
    return dict(zip(series.times_s, series.values, strict=True)).get(t) if series is not None else None


def _waited(history, t):  # type: ignore[no-untyped-def]
    """The most sequences waiting at the step and the 4 before it (a 1 min rate window at 15 s)."""
    return max((_at(history.get(Measure.WAITING), t - 15.0 * lag) or 0.0) for lag in range(5))


def main(t_s: float, run_args: list[str]) -> int:
    original = decision.estimate_capacity

    def probe(signals, history, slo_s, metric, now_s, *args, **kwargs):  # type: ignore[no-untyped-def]
        if abs(now_s - t_s) < 1.0:
            with_gauge = _busy_samples(history)
            used = set(with_gauge[0]) if with_gauge is not None else set()
            without = {m: s for m, s in history.items() if m != Measure.WAITING}
            shown = without_gauge = _busy_samples(without)
            for t in shown[0] if without_gauge is not None else ():
                ready = _at(history[Measure.READY], t)
                prompt = _at(history[Measure.PROMPT_TOKENS], t) / ready
                generated = _at(history[Measure.GENERATION_TOKENS], t) / ready
                rho = prompt * PROFILE.prefill_token_s + generated * PROFILE.per_seq_s
                print(
                    f"t={t:7.0f} ready={ready:3.0f} running={_at(history[Measure.RUNNING], t):5.0f} "
                    f"waiting={_at(history.get(Measure.WAITING), t) or 0:5.0f} "
                    f"(most in the minute before: {_waited(history, t):5.0f}) "
                    f"step={1000 * _at(history[Measure.STEP_S], t):6.2f} ms "
                    f"profile={1000 * PROFILE.base_s / (1 - rho):6.2f} ms {'sample' if t in used else '-'}"
                )
            for name, h in (("with the waiting gauge", history), ("without it", without)):
                c = learn_costs(h)
                print(
                    f"{name}: a = {1000 * c.step_base_s:.1f} ms, b = {1000 * c.decode_s_per_token:.3f} ms, "
                    f"c = {1e6 * c.prefill_s_per_token:.1f} us, {c.samples} samples ({c.source})"
                )
        return original(signals, history, slo_s, metric, now_s, *args, **kwargs)

    decision.estimate_capacity = probe
    return simulations_main(["run", *run_args, "--policy", "scaler", "--out", "out/fit-samples"])


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), sys.argv[2:]))
