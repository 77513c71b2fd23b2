"""Screen a rule's runs for one event, stopping each run as soon as it is known: stop 37's question was
whether the silence rule fires while the demand history spans fewer than 10 cold starts.

    python docs/experiments/capacity-fit/seeds/screen.py TREE TAG [TAG...]

TREE: a checkout with stop37-screen.patch applied (its decisions print "SCREEN AFFECTED at T" and exit at
such a firing, or "SCREEN CLEAN" at the first decision at t >= 0 once the history spans 10 cold starts;
a run that never reaches either runs to its end and prints FULL). Each TAG's runs are those named in
results/lull3-TAG.out, with the arguments of their rows in this folder's *.txt (plus conv2, the
conversation trace's held-out half). Two at a time (W=N for another count). Run from the project root:
the rows' out/ paths are relative to it.
"""

import glob
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.getcwd()


def rows() -> dict[str, str]:
    args = {"conv2": "--trace azure-conv --slice 1800:3600 --seed SEED"}
    for f in glob.glob(f"{HERE}/*.txt"):
        with open(f) as lines:
            for line in lines:
                if line.startswith("#") or not line.strip():
                    continue
                name, rest = line.split(None, 1)
                args[name] = rest.strip().replace("out/", f"{ROOT}/out/")
    return args


def main(tree: str, tags: list[str]) -> None:
    args = rows()
    runs = []
    for tag in tags:
        with open(f"{HERE}/results/lull3-{tag}.out") as lines:
            for line in lines:
                name = line.split()[0]
                base, seed = name.rsplit("-s", 1)
                runs.append((tag, name, args[base].replace("SEED", seed)))

    def one(run: tuple[str, str, str]) -> None:
        tag, name, a = run
        out = f"{ROOT}/out/screen/{tag}-{name}"
        cmd = [f"{ROOT}/.venv/bin/python", "-m", "simulations", "run", *a.split()]
        p = subprocess.run(
            [*cmd, "--policy", "scaler", "--out", out],
            cwd=tree,
            env={**os.environ, "X_SCREEN": "1"},
            capture_output=True,
            text=True,
        )
        mark = [x for x in p.stdout.splitlines() if x.startswith("SCREEN")]
        print(tag, name, mark[0] if mark else f"FULL rc={p.returncode}", flush=True)

    with ThreadPoolExecutor(int(os.environ.get("W", "2"))) as ex:
        list(ex.map(one, runs))


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), sys.argv[2:])
