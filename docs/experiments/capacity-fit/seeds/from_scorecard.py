"""The scaler's rows of a several-seed scorecard in rows.sh's format, for judge.py (cold starts and
replicas are not in scorecard.json: "-").

    python docs/experiments/capacity-fit/seeds/from_scorecard.py docs/scorecard-seeds >> OUT/TAG.out
"""

import json
import sys
from pathlib import Path

# scorecard trace -> the row's name in key.txt
KINDS = (("bursts", "bursts"), ("diurnal", "diurnal"), ("idle-gaps", "idle"), ("flash-crowd", "flash"))
NAMES = {
    "azure-code[0:1800]": "code1",
    "azure-code[1800:3600]": "code2",
    "azure-conv[0:1800]": "conv1",
    "azure-conv x2[0:1800]": "convx2",
    "azure-conv x4[0:900]": "convx4",
    "azure-code x2[0:1800]": "codex2",
    # the generated rows and the conversation trace's held-out half (gen.txt, and conv2 by hand: genc)
    "azure-conv[1800:3600]": "conv2",
    **{f"{kind}-s{s}": f"{short}{s}" for kind, short in KINDS for s in (1, 2)},
}


def main(scorecard_dir: str) -> None:
    lines = []
    for seed_dir in sorted(Path(scorecard_dir).glob("seed-*")):
        card = json.loads((seed_dir / "scorecard.json").read_text())
        for row in card["rows"]:
            if row["trace"] in NAMES:
                name = f"{NAMES[row['trace']]}-s{card['seed']}"
                lines.append(f"{name} {row['scaler_attainment']} | {row['scaler_gpu_hours']} | - | -")
    print("\n".join(sorted(lines)))


if __name__ == "__main__":
    main(sys.argv[1])
