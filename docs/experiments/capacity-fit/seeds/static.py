"""The static fleet's frontier on each row: `run --policy static-peak --set replicas=k` for k = 1, 2, ...
until every request meets the SLO (no cold starts, so no seed).

    python docs/experiments/capacity-fit/seeds/static.py ROWS_FILE OUT_JSON
"""

import json
import sys
from pathlib import Path

from simulations.__main__ import _load, build_parser
from simulations.engine import simulate
from simulations.policies import make_policy


def main(rows_file: str, out_json: str) -> None:
    out = {}
    for line in Path(rows_file).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, *rest = line.replace("--seed SEED", "").split()
        args = build_parser().parse_args(["run", *rest, "--policy", "static-peak", "--out", "unused"])
        trace, sim = _load(args)
        points = []
        for k in range(1, 33):
            policy = make_policy("static-peak", sim, trace, {"replicas": str(k)}, {})
            s = simulate(trace, policy, sim, lambda *a, **kw: None).summary()
            points.append((s["slo_attainment"], s["gpu_hours"], k))
            if s["slo_attainment"] >= 0.99999:
                break
        out[name] = points
        print(name, points, flush=True)
    Path(out_json).write_text(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:3])
