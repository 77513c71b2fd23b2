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


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    conv, code = load_trace("azure-conv"), load_trace("azure-code")
    base = diurnal(1.5, 2400, period_s=4800, amplitude=0.6, seed=11)
    crowds = flash_crowd(0.5, 2400, factor=8, every_s=1200, first_s=500, crowd_len_s=120, seed=12)
    write_trace(overlay("multi", conv.slice(600, 2400), code.slice(1200, 3000)), out / "multi.csv")
    write_trace(overlay("diurnal-flash", base, crowds), out / "diurnal-flash.csv")
    write_trace(overlay("multi2", conv.slice(2400, 3600), code.slice(0, 1200)), out / "multi2.csv")
    base2 = diurnal(1.5, 2400, period_s=4800, amplitude=0.6, seed=13)
    crowds2 = flash_crowd(0.5, 2400, factor=8, every_s=1200, first_s=300, crowd_len_s=120, seed=14)
    write_trace(overlay("diurnal-flash2", base2, crowds2), out / "diurnal-flash2.csv")
    write_trace(overlay("multi3", conv.slice(0, 1200), code.slice(2400, 3600)), out / "multi3.csv")
    write_trace(
        overlay("multi4", conv.sped_up(2.0).slice(0, 1800), code.slice(1800, 3600)), out / "multi4.csv"
    )
    write_trace(
        overlay("multi5", conv.slice(1200, 3000), code.sped_up(1.5).slice(0, 1800)), out / "multi5.csv"
    )
    write_trace(
        overlay("multi6", conv.sped_up(3.0).slice(0, 1200), code.slice(600, 1800)), out / "multi6.csv"
    )
    write_trace(
        overlay("multi7", conv.slice(1800, 3600), code.sped_up(1.2).slice(1200, 3000)), out / "multi7.csv"
    )
    write_trace(
        overlay("multi8", conv.sped_up(4.0).slice(0, 900), code.slice(2700, 3600)), out / "multi8.csv"
    )
    write_trace(
        overlay("multi9", conv.sped_up(2.5).slice(300, 1200), code.sped_up(1.1).slice(900, 1800)),
        out / "multi9.csv",
    )
    write_trace(
        overlay("multi10", conv.slice(0, 1800), code.sped_up(1.6).slice(450, 2250)), out / "multi10.csv"
    )
    write_trace(
        overlay("multi11", conv.sped_up(1.5).slice(600, 2400), code.sped_up(1.4).slice(0, 1800)),
        out / "multi11.csv",
    )
    write_trace(
        overlay("multi12", conv.sped_up(5.0).slice(0, 700), code.sped_up(2.0).slice(300, 1000)),
        out / "multi12.csv",
    )
    write_trace(
        overlay("multi13", conv.sped_up(2.2).slice(200, 1600), code.sped_up(1.3).slice(1500, 2900)),
        out / "multi13.csv",
    )
    write_trace(
        overlay("multi14", conv.sped_up(3.5).slice(200, 1000), code.sped_up(1.7).slice(0, 800)),
        out / "multi14.csv",
    )
    base3 = diurnal(1.5, 2400, period_s=4800, amplitude=0.6, seed=15)
    crowds3 = flash_crowd(0.5, 2400, factor=8, every_s=1200, first_s=700, crowd_len_s=120, seed=16)
    write_trace(overlay("diurnal-flash3", base3, crowds3), out / "diurnal-flash3.csv")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
