"""The method comparison of issue 12: every config in ``jobs/configs/compare/`` × seeds, then the table.

Two kinds of runs per method, both through ``mpiexec -n 9 huscf-mpi train`` (``-n 25`` for
fslgan: 8 clients of 3 devices each):

* quality runs: the config as it is (unpaced), one per seed, written to
  ``<out>/compare-<method>-s<seed>.h5``: generation score, FID, synthetic-data accuracy/F1,
  real seconds per iteration on this machine, bytes moved, who saw what;
* emulated runs (``--emulated``, for the methods in ``EMULATED``): the same config, seed 0, with ``cut_selection.emulate: true``
  on the paper's device profiles (jobs/devices/paper.yaml, SPEC §5) and a short schedule
  (1 round × ``--emulated-iterations`` iterations, minimal evaluation): every client's compute
  and every protocol message is paced to its device, so ``rounds/iteration_seconds`` is the
  method's time per iteration on the paper's heterogeneous testbed (the server is not paced:
  it runs at this machine's speed). Written to ``<out>/emulated/compare-<method>-s0.h5``.

Existing result files are kept (delete one to rerun it). Then it prints
``huscf-mpi tables`` of the quality runs (with ``--exposure``) and of the emulated runs
(seconds per iteration only), and writes ``huscf-mpi plot`` figures to ``<out>/figures``.

Usage: ``.venv/bin/python benchmarks/compare_methods.py [--seeds 0 1 2] [--methods huscf fedgan ...]
[--out results/compare] [--emulated] [--rounds R] [--classifier-epochs E] [--no-report]``.
``--rounds`` and ``--classifier-epochs`` override ``training.rounds`` and
``evaluation.classifier_epochs`` of every config alike (a longer sweep, a sharper instrument);
``--no-report`` trains only, so one sweep can be run a few runs at a time and reported once.
On the project's 2-core machine a 12-round quality run takes 4-6 minutes (21 runs: about 1.7
hours), a 36-round one 12-18 minutes; run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "jobs" / "configs" / "compare"
METHODS = ("huscf", "huscf-noclust", "huscf-nokld", "huscf-noga", "fedgan", "mdgan", "fslgan", "centralized",
           "centralized-domain")
# The clustering and KLD ablations do the same work per iteration as huscf (same cuts, same
# messages); only the round end differs, so their paced runs would repeat huscf's.
EMULATED = ("huscf", "huscf-noga", "fedgan", "mdgan", "fslgan", "centralized")
BIN = Path(sys.executable).parent


def ranks(config: dict) -> int:
    """1 + clients, or 1 + clients x devices for a method with several ranks per client (fslgan)."""
    sys.path.insert(0, str(ROOT))  # this checkout's strategies
    from huscf_mpi.config import Config
    from huscf_mpi.registry import ranks_needed

    return ranks_needed(Config.model_validate(config))


def train(config: dict, seed: int, out: Path) -> None:
    if out.exists():
        print(f"keep {out}", flush=True)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        # the config's own key order: data.domains' order decides which clients hold which domain
        yaml.safe_dump(config, f, sort_keys=False)
    mpiexec = BIN / "mpiexec"  # the venv's MPICH, as `make` installs it; else the one on PATH
    cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(ranks(config)), str(BIN / "huscf-mpi"), "train", "--config", f.name,
           "--seed", str(seed), "--output", str(out)]
    t0 = time.time()
    # The code of this script's own checkout runs, whatever is installed: a sweep can run from
    # a frozen worktree while the main one changes.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    Path(f.name).unlink()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    print(f"wrote {out} ({time.time() - t0:.0f} s)", flush=True)


def emulated(config: dict, iterations: int) -> dict:
    config = copy.deepcopy(config)
    config["cut_selection"] = {**config.get("cut_selection", {}), "devices": "jobs/devices/paper.yaml", "emulate": True}
    config["training"].update(rounds=1, iterations_per_epoch=iterations)
    config["evaluation"].update(generation_samples=100, synthetic_samples=200, synthetic_epochs=1, sample_grid=False)
    return config


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "compare")
    p.add_argument("--emulated", action="store_true", help="also the paced runs on the paper's device profiles")
    p.add_argument("--emulated-iterations", type=int, default=10)
    p.add_argument("--rounds", type=int, help="override training.rounds of every config")
    p.add_argument("--classifier-epochs", type=int, help="override evaluation.classifier_epochs of every config")
    p.add_argument("--no-report", action="store_true", help="train only: no tables, no plots")
    args = p.parse_args()
    configs = {m: yaml.safe_load((CONFIGS / f"{m}.yaml").read_text()) for m in args.methods}
    for cfg in configs.values():
        if args.rounds is not None:
            cfg["training"]["rounds"] = args.rounds
        if args.classifier_epochs is not None:
            cfg["evaluation"]["classifier_epochs"] = args.classifier_epochs
    for seed in args.seeds:  # seed-major: a partial sweep already holds every method once
        for m, cfg in configs.items():
            train(cfg, seed, args.out / f"compare-{m}-s{seed}.h5")
    if args.emulated:
        for m, cfg in configs.items():
            if m in EMULATED:
                train(emulated(cfg, args.emulated_iterations), 0, args.out / "emulated" / f"compare-{m}-s0.h5")
    if args.no_report:
        return
    quality = sorted(str(f) for f in args.out.glob("compare-*.h5"))
    hm = str(BIN / "huscf-mpi")  # tables and plots read files only: the installed code will do
    subprocess.run([hm, "tables", *quality, "--exposure"], check=True)
    subprocess.run([hm, "plot", *quality, "--out", str(args.out / "figures")], check=True)
    if args.emulated:
        subprocess.run([hm, "tables", *sorted(str(f) for f in (args.out / "emulated").glob("*.h5")),
                        "--metrics", "predicted_s_per_it,measured_s_per_it,mib_moved"], check=True)


if __name__ == "__main__":
    main()
