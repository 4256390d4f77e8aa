"""Our synchronous iteration over MPI vs the same arithmetic in one process (issue 7).

For N clients at the paper's width (1.0), batch 64 and the cut vector [1,5,1,5] for every
client, this measures in one invocation:

* **MPI**: ``mpiexec -n N+1 huscf-mpi train`` for one round of ``--iterations`` iterations on
  real MNIST; seconds per iteration from the result file's ``rounds/iteration_seconds``
  (measured on the server, first ``--warmup`` iterations dropped);
* **one process**: the SPEC §1 iteration written out below, every client's head and tail on
  its own batch and the server bodies on the concatenated batch (the authors' single-process
  layout), with ``torch.set_num_threads(cores)``, on random batches of the same shapes (the
  cost does not depend on pixel values);

and prints the median seconds per iteration of each and their ratio (MPI / one process).
The two are measured ``--repeats`` times, alternating (MPI, one process, MPI, ...), and the
medians are over all repeats' iterations: this machine's speed drifts by up to ~20 % from one
minute to the next, and alternating lets the drift fall on both sides alike.

Run on an otherwise idle machine: ``.venv/bin/python benchmarks/sync_overhead.py``
(``--clients 4 8``, ``--server-threads auto|N`` passes ``server.threads`` to the MPI run).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from huscf_mpi.models import CutVector, client_models, get_architecture, server_bodies
from huscf_mpi.results.reader import ResultFile
from huscf_mpi.roles.threads import available_cores

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CUT = (1, 5, 1, 5)


def single_process_seconds(n_clients: int, width: float, batch: int, iterations: int, warmup: int,
                           threads: int, seed: int = 0) -> np.ndarray:
    """Seconds of each of ``iterations`` SPEC §1 iterations in this process (after ``warmup``)."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    arch, cut = get_architecture("cgan28"), CutVector.from_tuple(CUT)
    clients = list(range(1, n_clients + 1))
    m = {c: client_models(arch, width, cut, init_seed=seed) for c in clients}
    bodies = server_bodies(arch, width, {c: cut for c in clients}, init_seed=seed)
    params = {net: [p for c in clients for part in (f"{net}_head", f"{net}_tail")
                    for p in m[c].parts()[part].parameters()] + list(bodies[net].parameters())
              for net in ("g", "d")}
    g_opt = torch.optim.Adam(params["g"], lr=2e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(params["d"], lr=2e-4, betas=(0.5, 0.999))
    bce, ones, zeros = nn.BCELoss(), torch.ones(batch, 1), torch.zeros(batch, 1)

    def discriminate(images, labels):
        smashed = {c: m[c].d_head(images[c], labels[c]) for c in clients}
        body, _ = bodies["d"](smashed)
        return {c: m[c].d_tail(body[c]) for c in clients}

    def step():
        x = {c: torch.rand(batch, 1, 28, 28) * 2 - 1 for c in clients}
        y = {c: torch.randint(0, 10, (batch,)) for c in clients}
        z = {c: torch.randn(batch, arch.z_dim) for c in clients}
        y_fake = {c: torch.randint(0, 10, (batch,)) for c in clients}
        t0 = time.perf_counter()
        body, _ = bodies["g"]({c: m[c].g_head(z[c], y_fake[c]) for c in clients})
        fake = {c: m[c].g_tail(body[c]) for c in clients}
        d_opt.zero_grad(set_to_none=True)
        p_fake = discriminate({c: fake[c].detach() for c in clients}, y_fake)
        p_real = discriminate(x, y)
        sum(bce(p_fake[c], zeros) + bce(p_real[c], ones) for c in clients).backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        p_gen = discriminate(fake, y_fake)
        sum(bce(p_gen[c], ones) for c in clients).backward()
        g_opt.step()
        return time.perf_counter() - t0

    for _ in range(warmup):
        step()
    return np.array([step() for _ in range(iterations)])


def mpi_seconds(n_clients: int, width: float, batch: int, iterations: int, warmup: int, server_threads: str,
                workdir: Path, data_root: Path) -> tuple[np.ndarray, dict]:
    """Per-iteration seconds of a real ``huscf-mpi train`` run (first ``warmup`` dropped), and run facts."""
    cfg = workdir / f"sync-{n_clients}.yaml"
    out = workdir / f"sync-{n_clients}.h5"
    threads = server_threads if server_threads == "auto" else int(server_threads)
    cfg.write_text(json.dumps({
        "name": f"sync-overhead-{n_clients}", "data": {"domains": {"mnist": n_clients}, "scenario": 1},
        "model": {"width": width}, "training": {"batch_size": batch, "local_epochs": 1, "rounds": 1},
        "cuts": list(CUT), "server": {"threads": threads},
        "evaluation": {"every": 1000, "generation_samples": 10, "synthetic_samples": 10, "synthetic_epochs": 1,
                       "classifier_epochs": 1, "batch_size": 10, "sample_grid": False}}))
    cmd = [str(BIN / "mpiexec"), "-n", str(n_clients + 1), str(BIN / "huscf-mpi"), "train", "--config", str(cfg),
           "--iterations-per-epoch", str(iterations + warmup), "--output", str(out), "--overwrite",
           "--data-root", str(data_root)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"MPI run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    with ResultFile(out) as f:
        seconds = np.asarray(f.array("rounds/iteration_seconds")).ravel()  # (rounds, iterations)
        compute = np.asarray(f.array("rounds/compute_seconds"))[0]
        facts = {"server_threads": f.attrs("run").get("server_threads"),
                 "server_compute_share": float(compute[0] / np.asarray(f.array("rounds/wall_seconds"))[0]),
                 # private memory per rank at round end vs the pre-flight's model (calibrates it)
                 "private_mib": (np.asarray(f.array("rounds/private_dirty_bytes"))[0] / 2**20).round().tolist(),
                 "preflight": {k: float(v[0]) for k, v in f.table("preflight").items() if k.endswith("bytes")}}
    return seconds[warmup:], facts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 8])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=10, help="timed iterations (median), >= 8 for the issue")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="alternating MPI / one-process measurements")
    ap.add_argument("--server-threads", default="auto")
    ap.add_argument("--threads", type=int, default=available_cores(), help="threads of the single-process run")
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("HUSCF_DATA_ROOT", ROOT / "data")))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clients:
            mpi, one = [], []
            for _ in range(args.repeats):
                seconds, facts = mpi_seconds(n, args.width, args.batch_size, args.iterations, args.warmup,
                                             args.server_threads, Path(tmp), args.data_root)
                mpi.append(seconds)
                one.append(single_process_seconds(n, args.width, args.batch_size, args.iterations, args.warmup,
                                                  args.threads))
            mpi, one = np.concatenate(mpi), np.concatenate(one)
            rows.append({"clients": n, "mpi_s": float(np.median(mpi)), "single_s": float(np.median(one)),
                         "ratio": float(np.median(mpi) / np.median(one)), **facts,
                         "mpi_all": mpi.round(4).tolist(), "single_all": one.round(4).tolist()})
            print(f"N={n}: MPI {rows[-1]['mpi_s']:.3f} s/it (server threads {facts['server_threads']}, server "
                  f"computes {facts['server_compute_share']:.0%} of the round), one process "
                  f"({args.threads} threads) {rows[-1]['single_s']:.3f} s/it, ratio {rows[-1]['ratio']:.2f}",
                  flush=True)
    print(f"\n| clients | huscf-mpi s/it (server threads) | one process s/it ({args.threads} threads) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['clients']} | {r['mpi_s']:.3f} ({r['server_threads']}) | {r['single_s']:.3f} | {r['ratio']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
