"""Each row and seed against the cheapest baseline at the scaler's attainment, side by side for tags.

    python docs/experiments/capacity-fit/seeds/judge.py OUT TAG [TAG...] [--rows ROW,ROW...]

Reads OUT/TAG.out (rows.sh), OUT/static*.json (static.py) and, where present, OUT/cmp-ROW/summary.json
(`python -m simulations compare ... --frontier --out OUT/cmp-ROW`, seed 0: every swept point of KEDA,
KPA and the HPA). A cell is `attainment @ GPU-h / cheapest GPU-h at that attainment and its setting, W, T or
L, ratio (hindsight: the hindsight reference's GPU-h at that attainment, where compare ran)`,
by the scorecard's own rule (`simulations.scorecard.outcome`: within 0.05 % is a tie); the sums at the
end (over the rows named by ``--rows``, when given: a set's fresh rows apart from its near-repeats) count
wins, ties and losses and add the ratios (the lower, the less GPU a row costs against its best
baseline; a row no point reaches counts as a win and adds nothing), and how many rows end below the 0.99
attainment target, with each tag's GPU-hours summed over its runs and how many of its runs (attainment
or GPU-hours) differ from the first tag's.
"""

import glob
import json
import os
import sys
from pathlib import Path

from simulations.scorecard import outcome


def main(out: str, tags: list[str], only: set[str] | None = None) -> None:
    static: dict = {}
    for f in glob.glob(os.path.join(out, "static*.json")):
        static.update(json.loads(Path(f).read_text()))

    def cheapest(row: str, a: float, hindsight: bool = False) -> tuple[float | None, str | None]:
        """The fewest GPU-hours a baseline (or, with ``hindsight``, the hindsight reference) needs to reach
        attainment ``a`` on ``row``, and which setting that is."""
        points = [] if hindsight else [(p[0], p[1], f"static-{p[2]}") for p in static.get(row, [])]
        f = os.path.join(out, f"cmp-{row}", "summary.json")
        if os.path.exists(f):
            for b, v in json.loads(Path(f).read_text())["frontier"].items():
                if (b == "hindsight") == hindsight:
                    points += [(p[0], p[1], f"{b}:{p[2]}") for p in v["points"]]
        best: tuple[float | None, str | None] = (None, None)
        for att, g, name in points:
            if att >= a - 1e-9 and (best[0] is None or g < best[0]):
                best = (g, name)
        return best

    rows: dict = {}
    for tag in tags:
        for line in Path(out, f"{tag}.out").read_text().splitlines():
            p = line.split()
            if only is None or p[0].rsplit("-s", 1)[0] in only:
                rows.setdefault(p[0], {})[tag] = (float(p[1]), float(p[3]))
    score = {t: {"win": 0, "tie": 0, "loss": 0, "ratios": 0.0, "below": 0, "gpu": 0.0} for t in tags}
    first = [r for r in rows.values() if tags[0] in r]
    changed = {t: sum(r.get(t, r[tags[0]]) != r[tags[0]] for r in first) for t in tags}
    for name in sorted(rows):
        row = name.rsplit("-s", 1)[0]
        cells = []
        for t in tags:
            if t not in rows[name]:
                cells.append("-")
                continue
            a, g = rows[name][t]
            fg, which = cheapest(row, a)
            ratio = g / fg if fg else 0.0
            verdict = outcome(ratio) if fg else "win"
            against = f"{fg} {which}" if fg else "unreachable"
            hg, _ = cheapest(row, a, hindsight=True)
            ahead = f" (hindsight {hg})" if hg else ""
            cells.append(f"{a:.4f} @ {g:6.2f} / {against} {verdict[0].upper()} {ratio:.2f}{ahead}")
            score[t][verdict] += 1
            score[t]["ratios"] += ratio
            score[t]["below"] += a < 0.99
            score[t]["gpu"] += g
        print(f"{name:13s} " + " | ".join(cells))
    for t in tags:
        s = score[t]
        ratios = round(s["ratios"], 2)
        print(
            t,
            "wins",
            s["win"],
            "ties",
            s["tie"],
            "losses",
            s["loss"],
            "sum of ratios",
            ratios,
            "below 0.99",
            s["below"],
            "GPU-h",
            round(s["gpu"], 2),
            "runs changed",
            changed[t],
        )


if __name__ == "__main__":
    args = sys.argv[2:]
    only = None
    if "--rows" in args:
        i = args.index("--rows")
        only = set(args[i + 1].split(","))
        args = args[:i] + args[i + 2 :]
    main(sys.argv[1], args, only)
