"""The scorecard's verdicts for a rule's runs, where the rule left a cell's attainment as it was.

    python docs/experiments/capacity-fit/seeds/rescore.py docs/scorecard-seeds OUT/TAG.out

For each scorecard cell whose row is in TAG.out (rows.sh's output; names as in from_scorecard.py), the
scaler's run is set against the cheapest baseline at its attainment, by `simulations.scorecard.outcome`.
Where a later stop reran the cell (`results/card-ROW-sSEED/summary.json`, `compare --frontier` at that
seed), its whole frontier is read, and its scaler run is the cell's "before"; otherwise the scorecard's
stored cheapest baseline at the scaler's attainment (`baselines_gpu_hours_at_scaler_attainment`), which
holds only at that attainment: a cell whose attainment moved is printed as such, to be rerun with `python
-m simulations compare ... --frontier`. The last line counts the verdicts of the cells it judged, before
and after, then the after verdicts by the scorecard's set (tuning or held-out) with the median of the
scaler's GPU-hours over hindsight's at the same attainment (each cell also prints that ratio).
"""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from from_scorecard import NAMES

from simulations.scorecard import outcome, verdict

CARDS = Path(__file__).parent / "results"


def _cheapest(frontier: dict[str, Any], attainment: float) -> tuple[float | None, str | None]:
    """The fewest GPU-hours a swept baseline setting needs to reach ``attainment`` (hindsight is a
    reference, not a baseline)."""
    best: tuple[float | None, str | None] = (None, None)
    for b, v in frontier.items():
        for att, g, setting in v["points"] if b != "hindsight" else []:
            if att >= attainment - 1e-9 and (best[0] is None or g < best[0]):
                best = (g, f"{b}:{setting}")
    return best


def _judged(gpu: float, cheapest: float | None) -> tuple[str, float | None]:
    return ("win", None) if cheapest is None else (outcome(gpu / cheapest), round(gpu / cheapest, 3))


def _hindsight(frontier: dict[str, Any], attainment: float) -> float | None:
    """The fewest GPU-hours the hindsight reference needs to reach ``attainment``."""
    points = [g for att, g, _ in frontier.get("hindsight", {}).get("points", []) if att >= attainment - 1e-9]
    return min(points) if points else None


def main(scorecard_dir: str, out_file: str) -> None:
    runs = {}
    for line in Path(out_file).read_text().splitlines():
        p = line.split()
        runs[p[0]] = (float(p[1]), float(p[3]))
    before = {"win": 0, "tie": 0, "loss": 0}
    after = dict(before)
    by_set: dict[str, dict[str, Any]] = {}

    def tally(row_set: str, new: str, gpu: float, hindsight: float | None) -> str:
        cell = by_set.setdefault(row_set, {"win": 0, "tie": 0, "loss": 0, "over_hindsight": []})
        cell[new] += 1
        if not hindsight:
            return ""
        cell["over_hindsight"].append(gpu / hindsight)
        return f"; hindsight {hindsight} ({gpu / hindsight:.3f}x)"

    for seed_dir in sorted(Path(scorecard_dir).glob("seed-*")):
        card = json.loads((seed_dir / "scorecard.json").read_text())
        for row in card["rows"]:
            name = f"{NAMES.get(row['trace'], '?')}-s{card['seed']}"
            if name not in runs:
                continue
            att, gpu = runs[name]
            card_file = CARDS / f"card-{name}" / "summary.json"
            if card_file.exists():
                cell = json.loads(card_file.read_text())
                s = cell["policies"]["scaler"]
                g0, _ = _cheapest(cell["frontier"], s["slo_attainment"])
                old, ratio = _judged(s["gpu_hours"], g0)
                g1, best2 = _cheapest(cell["frontier"], att)
                new, ratio2 = _judged(gpu, g1)
                before[old] += 1
                after[new] += 1
                ahead = tally(row["set"], new, gpu, _hindsight(cell["frontier"], att))
                print(
                    f"{name}: {s['slo_attainment']} @ {s['gpu_hours']} -> {att} @ {gpu}: {old} {ratio} -> "
                    f"{new} {ratio2} vs {best2} (card-{name}){ahead}"
                )
                continue
            old, _, ratio = verdict(row)
            if abs(att - row["scaler_attainment"]) > 1e-9:
                print(f"{name}: attainment {row['scaler_attainment']} -> {att}: rerun compare --frontier")
                continue
            new, best2, ratio2 = verdict({**row, "scaler_gpu_hours": gpu})
            before[old] += 1
            after[new] += 1
            ahead = tally(row["set"], new, gpu, row["hindsight_gpu_hours_at_scaler_attainment"])
            print(
                f"{name}: {att} @ {row['scaler_gpu_hours']} -> {gpu}: {old} {ratio} -> {new} {ratio2} "
                f"vs {best2}{ahead}"
            )
    print("before", before, "after", after)
    for row_set, cell in sorted(by_set.items()):
        over = cell.pop("over_hindsight")
        median = f"{float(np.median(over)):.3f}x" if over else "-"
        print(f"{row_set}: {cell}, median GPU-hours over hindsight's {median} ({len(over)} cells)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
