"""Write the held-aside trace variants the capacity-fit experiment was judged on.

    python docs/experiments/capacity-fit/variants.py OUT_DIR

- ``multi.csv``: a multi-client overlay, the conversation trace's [600, 2400) s and the code trace's
  [1200, 3000) s arriving together (30 minutes).
- ``diurnal-flash.csv``: a diurnal day-part (1.5 requests/s mean over 40 minutes, period 80 minutes,
  amplitude 0.6, seed 11) with x8 flash crowds on a 0.5/s base (every 20 minutes from 500 s, 120 s
  long, seed 12).

The second held-aside set (stop 25, written before the second round was judged on it):

- ``multi2.csv``: the conversation trace's [2400, 3600) s and the code trace's [0, 1200) s together.
- ``diurnal-flash2.csv``: as ``diurnal-flash`` with seeds 13 and 14, the first crowd at 300 s.

The third held-aside set (stop 26, written before anything was run on it; with the conversation trace
at 2.5x and 1.5x and the code trace at 1.25x, which ``--speedup`` replays directly):

- ``multi3.csv``: the conversation trace's [0, 1200) s and the code trace's [2400, 3600) s together.
- ``multi4.csv``: the conversation trace at 2x, [0, 1800) s replayed, and the code trace's [1800, 3600) s.
- ``diurnal-flash3.csv``: as ``diurnal-flash`` with seeds 15 and 16, the first crowd at 700 s.

The fourth held-aside set (stop 26, written before anything was run on it, once the third had been read;
with the code trace at 1.1x and 1.75x and the conversation trace at 3.5x, and seed 9 of the generated
kinds, which ``--speedup`` and ``python -m simulations trace`` give directly):

- ``multi5.csv``: the conversation trace's [1200, 3000) s and the code trace at 1.5x, [0, 1800) s replayed.

The fifth held-aside set (stop 27, written before anything was run on it, once the fourth had been spent on
the outpaced reading; with the code trace's [900, 2700) s, the code trace at 1.4x ([0, 2500) s), the
conversation trace at 5x ([0, 720) s), and seed 10 of the generated kinds):

- ``multi6.csv``: the conversation trace at 3x, [0, 1200) s replayed, and the code trace's [600, 1800) s.

The sixth held-aside set (stop 29, written before anything was run on it, once the fifth had been spent on
the drained fit; with the code trace's [300, 2100) s, the code trace at 1.3x ([600, 2700) s) and at 3x
([0, 1200) s), and the conversation trace at 6x ([0, 600) s) and at 3x ([300, 1200) s)):

- ``multi7.csv``: the conversation trace's [1800, 3600) s and the code trace at 1.2x, [1200, 3000) s
  replayed.
- ``multi8.csv``: the conversation trace at 4x, [0, 900) s replayed, and the code trace's [2700, 3600) s.

The seventh held-aside set (stop 30, written before anything was run on it, once the sixth had judged two
rule sets; with the code trace's [1500, 3300) s, the code trace at 1.6x ([300, 2250) s) and at 2.5x
([0, 1440) s), the conversation trace at 2.5x ([0, 1440) s) and at 4.5x ([0, 800) s), and seed 11 of the
generated kinds):

- ``multi9.csv``: the conversation trace at 2.5x, [300, 1200) s replayed, and the code trace at 1.1x,
  [900, 1800) s replayed.
- ``multi10.csv``: the conversation trace's [0, 1800) s and the code trace at 1.6x, [450, 2250) s
  replayed.

The eighth held-aside set (stop 31, written before anything was run on it, once the seventh had judged two
changes; with the code trace's [2100, 3600) s, the code trace at 2x ([200, 1700) s) and at 3.5x
([0, 1000) s), the conversation trace at 2x ([600, 1800) s) and at 5.5x ([0, 650) s), and seed 12 of the
generated kinds):

- ``multi11.csv``: the conversation trace at 1.5x, [600, 2400) s replayed, and the code trace at 1.4x,
  [0, 1800) s replayed.
- ``multi12.csv``: the conversation trace at 5x, [0, 700) s replayed, and the code trace at 2x,
  [300, 1000) s replayed.

The ninth held-aside set (stop 31, written before anything was run on it, once the eighth had judged three
rules; with the code trace's [600, 2400) s, the code trace at 1.8x ([100, 2000) s) and at 2.8x
([200, 1400) s), the conversation trace at 3.2x ([100, 1100) s) and at 7x ([0, 500) s), and seed 13 of
the generated kinds):

- ``multi13.csv``: the conversation trace at 2.2x, [200, 1600) s replayed, and the code trace at 1.3x,
  [1500, 2900) s replayed.
- ``multi14.csv``: the conversation trace at 3.5x, [200, 1000) s replayed, and the code trace at 1.7x,
  [0, 800) s replayed.

The tenth held-aside set (stop 32, written before anything was run on it, before the ninth's worst row
was read; with the code trace's [1500, 3300) s, the code trace at 1.6x ([0, 1900) s) and at 3x
([100, 1100) s), the conversation trace at 2.5x ([200, 1400) s), 4.5x ([0, 780) s) and 6.5x ([0, 540) s),
and seed 14 of the generated kinds):

- ``multi15.csv``: the conversation trace at 2.8x, [100, 1100) s replayed, and the code trace at 1.5x,
  [1200, 2200) s replayed.
- ``multi16.csv``: the conversation trace at 1.2x, [300, 2300) s replayed, and the code trace at 1.1x,
  [1000, 3000) s replayed.

The eleventh held-aside set (stop 33, written before anything was run on it, once the tenth had judged two
rules; with the code trace at 1.2x ([1000, 3000) s) and at 2.2x ([100, 1600) s), the conversation trace
at 3.8x ([50, 940) s) and at 4.8x ([0, 740) s), seed 15 of the generated kinds and seed 16 of the bursts
at 3 requests/s). Every part of the two Azure traces has now been replayed by some earlier set at some
speed-up: what is fresh here is the speed-ups, the pairings and the generated traces.

- ``multi17.csv``: the conversation trace at 4.2x, [0, 850) s replayed, and the code trace at 1.9x,
  [100, 1000) s replayed.
- ``multi18.csv``: the conversation trace at 1.8x, [800, 2000) s replayed, and the code trace's
  [300, 1500) s.
- ``diurnal-flash4.csv``: as ``diurnal-flash`` with seeds 17 and 18, the first crowd at 400 s.

The twelfth held-aside set (stop 34, written before anything was run on it, once the eleventh had judged
two rules; with the code trace at 2.4x ([200, 1400) s) and at 1.45x ([300, 2300) s), the conversation
trace at 2.1x ([100, 1500) s) and at 5.2x ([0, 690) s), seed 18 of the generated kinds and seed 19 of the
bursts at 2.5 requests/s):

- ``multi19.csv``: the conversation trace at 2.3x, [200, 1400) s replayed, and the code trace at 2.4x,
  [0, 1200) s replayed.
- ``multi20.csv``: the conversation trace at 5.2x, [0, 690) s replayed, and the code trace at 1.45x,
  [800, 1490) s replayed.
- ``diurnal-flash5.csv``: as ``diurnal-flash`` with seeds 19 and 20, the first crowd at 600 s.
"""

import sys
from pathlib import Path

import numpy as np

from simulations.trace import Trace, diurnal, flash_crowd, load_trace, write_trace


def overlay(name: str, *traces: Trace) -> Trace:
    arrival = np.concatenate([t.arrival_s for t in traces])
    order = np.argsort(arrival, kind="stable")
    return Trace(
        name,
        arrival[order],
        np.concatenate([t.input_tokens for t in traces])[order],
        np.concatenate([t.output_tokens for t in traces])[order],
    )


# Each multi-client overlay: (conversation speed-up, its slice in s), (code speed-up, its slice in s), the
# slice taken of the sped-up trace (the docstring says which set wrote which).
OVERLAYS: dict[str, tuple[tuple[float, int, int], tuple[float, int, int]]] = {
    "multi": ((1.0, 600, 2400), (1.0, 1200, 3000)),
    "multi2": ((1.0, 2400, 3600), (1.0, 0, 1200)),
    "multi3": ((1.0, 0, 1200), (1.0, 2400, 3600)),
    "multi4": ((2.0, 0, 1800), (1.0, 1800, 3600)),
    "multi5": ((1.0, 1200, 3000), (1.5, 0, 1800)),
    "multi6": ((3.0, 0, 1200), (1.0, 600, 1800)),
    "multi7": ((1.0, 1800, 3600), (1.2, 1200, 3000)),
    "multi8": ((4.0, 0, 900), (1.0, 2700, 3600)),
    "multi9": ((2.5, 300, 1200), (1.1, 900, 1800)),
    "multi10": ((1.0, 0, 1800), (1.6, 450, 2250)),
    "multi11": ((1.5, 600, 2400), (1.4, 0, 1800)),
    "multi12": ((5.0, 0, 700), (2.0, 300, 1000)),
    "multi13": ((2.2, 200, 1600), (1.3, 1500, 2900)),
    "multi14": ((3.5, 200, 1000), (1.7, 0, 800)),
    "multi15": ((2.8, 100, 1100), (1.5, 1200, 2200)),
    "multi16": ((1.2, 300, 2300), (1.1, 1000, 3000)),
    "multi17": ((4.2, 0, 850), (1.9, 100, 1000)),
    "multi18": ((1.8, 800, 2000), (1.0, 300, 1500)),
    "multi19": ((2.3, 200, 1400), (2.4, 0, 1200)),
    "multi20": ((5.2, 0, 690), (1.45, 800, 1490)),
}
# Each diurnal day-part with flash crowds: (diurnal seed, crowds seed, first crowd at s).
DIURNAL_FLASH = {
    "diurnal-flash": (11, 12, 500),
    "diurnal-flash2": (13, 14, 300),
    "diurnal-flash3": (15, 16, 700),
    "diurnal-flash4": (17, 18, 400),
    "diurnal-flash5": (19, 20, 600),
}


def _part(trace: Trace, speed: float, start_s: int, end_s: int) -> Trace:
    return (trace if speed == 1.0 else trace.sped_up(speed)).slice(start_s, end_s)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    conv, code = load_trace("azure-conv"), load_trace("azure-code")
    for name, (conv_part, code_part) in OVERLAYS.items():
        write_trace(overlay(name, _part(conv, *conv_part), _part(code, *code_part)), out / f"{name}.csv")
    for name, (base_seed, crowd_seed, first_s) in DIURNAL_FLASH.items():
        base = diurnal(1.5, 2400, period_s=4800, amplitude=0.6, seed=base_seed)
        crowds = flash_crowd(
            0.5, 2400, factor=8, every_s=1200, first_s=first_s, crowd_len_s=120, seed=crowd_seed
        )
        write_trace(overlay(name, base, crowds), out / f"{name}.csv")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
