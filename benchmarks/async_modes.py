"""Issue 10: synchronous vs buffered vs sequential serving on the paper's device profiles.

Runs ``mpiexec -n 9 huscf-mpi train --config jobs/configs/async-paper.yaml --mode M --seed S``
(8 MNIST clients paced to jobs/devices/paper.yaml, width 0.25, GA cuts) for every mode and
seed into ``<out>/async-paper-<mode>-s<seed>.h5`` (existing files are kept: delete one to
rerun it), then prints one row per run. ``--body-norm group`` (or ``layer``, ``none``) trains
with that norm in the blocks the server can run (``model.body_norm``) into
``async-paper-<mode>-<norm>-s<seed>.h5``:

* wall s/round: mean of ``rounds/wall_seconds`` (training + federation; evaluation excluded);
* server busy %: rank 0's compute share of that wall time (``rounds/compute_seconds[:, 0]``,
  i.e. wall time minus time spent waiting for messages);
* client iterations: min-max over clients of iterations per round (``rounds/iterations``; the
  synchronous mode does ``iterations_per_round`` each);
* s to GS >= T: wall seconds until the generation score first reaches ``--threshold``
  (:func:`huscf_mpi.analysis.stats.time_to_quality`), and the final GS and FID.

Usage: ``.venv/bin/python benchmarks/async_modes.py [--seeds 0 1] [--modes sync buffered sequential]
[--threshold 3.0] [--body-norm batch] [--out results/async]``. On the project's 2-core machine a run takes 3-8
minutes; run it on an otherwise idle machine (the clients sleep to their profiles' pace, but
rank 0 computes at this machine's speed).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
CONFIG = ROOT / "jobs" / "configs" / "async-paper.yaml"


def train(mode: str, seed: int, norm: str, out: Path) -> None:
    if out.exists():
        print(f"keep {out}", flush=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(BIN / "mpiexec"), "-n", "9", str(BIN / "huscf-mpi"), "train", "--config", str(CONFIG),
           "--mode", mode, "--seed", str(seed), "--body-norm", norm, "--output", str(out)]
    print(" ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)


def row(path: Path, threshold: float) -> dict:
    from huscf_mpi.analysis.stats import time_to_quality
    from huscf_mpi.results import ResultFile

    with ResultFile(path) as r:
        wall = r.array("rounds/wall_seconds")
        busy = r.array("rounds/compute_seconds")[:, 0] / wall
        gs = r.array("rounds/generation_score")[:, 0]
        iters = (r.array("rounds/iterations") if "rounds/iterations" in r
                 else np.full((len(wall), 1), r.attrs("run").get("iterations_per_round", np.nan)))
        final = r.final()["mnist"]
    return {"wall": wall.mean(), "busy": 100 * busy.mean(), "iters": (int(iters.min()), int(iters.max())),
            "ttq": time_to_quality(wall, gs, threshold), "gs": final["generation_score"], "fid": final["fid"],
            "curve": gs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--modes", nargs="+", default=["sync", "buffered", "sequential"])
    ap.add_argument("--threshold", type=float, default=3.0)
    ap.add_argument("--body-norm", default="batch", choices=["batch", "group", "layer", "none"])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "async")
    args = ap.parse_args()
    tag = "" if args.body_norm == "batch" else f"-{args.body_norm}"
    path = lambda mode, seed: args.out / f"async-paper-{mode}{tag}-s{seed}.h5"  # noqa: E731
    for seed in args.seeds:
        for mode in args.modes:
            train(mode, seed, args.body_norm, path(mode, seed))
    print(f"\n| mode | seed | wall s/round | server busy % | client iterations/round | s to GS ≥ {args.threshold:g} "
          "| final GS | final FID | GS per round |")
    print("|---|---|---:|---:|---|---:|---:|---:|---|")
    for mode in args.modes:
        for seed in args.seeds:
            v = row(path(mode, seed), args.threshold)
            curve = " ".join(f"{g:.2f}" for g in v["curve"])
            print(f"| {mode} | {seed} | {v['wall']:.1f} | {v['busy']:.1f} | {v['iters'][0]}–{v['iters'][1]} | "
                  f"{v['ttq']:.1f} | {v['gs']:.3f} | {v['fid']:.1f} | {curve} |")


if __name__ == "__main__":
    main()
