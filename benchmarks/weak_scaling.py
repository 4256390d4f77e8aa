"""Weak scaling on this node, and its projection to a cluster (issue 7).

Fixed work per client (``jobs/configs/scale-101.yaml``: width 0.25, batch 32, cuts
[2,4,2,4], 600 MNIST images per client) for N = 4, 8, 16, 32, 64, 100 clients. For each N
this runs ``mpiexec -n N+1 huscf-mpi train`` and reports

* seconds per iteration: median of ``rounds/iteration_seconds`` (server-side, round 1
  dropped as warm-up when there are 2+ rounds);
* time to first iteration: ``/run`` attribute ``startup_seconds`` (launch of the first rank
  to the first iteration) and the wall time of the whole command;
* peak memory in use: ``MemTotal - MemAvailable`` of ``/proc/meminfo`` sampled every 0.25 s
  while the command runs, minus the figure just before launch (what the run added);
* bytes moved per iteration: all ranks' ``rounds/bytes_sent`` of the last round / its
  iterations (includes the round-end parameter exchange);
* private memory per rank (``rounds/private_dirty_bytes``, last round): server, evaluating
  client, median and max plain client.

The projection (labelled as such) replaces the measured run by a model of a cluster: rank 0
alone on a node with ``--server-cores`` cores, clients 32 per node with a core each, a link of
``--link-gbps`` for every client and for the server's node. Per iteration it uses the SPEC §5 latency model
(``huscf_mpi.cuts.latency``) with the block FLOPs of ``huscf_mpi.cuts.costs`` and FLOP rates
measured here: a client core's rate from a one-thread timing of the blocks, the server's
rate from the same timing with ``--server-cores`` threads, capped by the cores it has here.
Set-up time is projected as the measured start-up of one node's worth of ranks (not
modelled further).

Usage: ``.venv/bin/python benchmarks/weak_scaling.py [--clients 4 8 16 32 64 100] [--json F]``
Takes about 20 minutes on the project's 2-core machine; run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = ROOT / "jobs/configs/scale-101.yaml"


def _used_bytes() -> int:
    info = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def run_sampled(cmd: list[str], period: float = 0.25, env=None) -> dict:
    """Run ``cmd``; return rc, wall seconds, memory in use before and at its peak (bytes), output tail."""
    before = _used_bytes()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _used_bytes())
            time.sleep(period)

    t = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    t.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    done.set()
    t.join()
    return {"rc": proc.returncode, "wall_seconds": time.perf_counter() - t0, "used_before_bytes": before,
            "peak_used_bytes": peak[0], "tail": (proc.stdout + proc.stderr)[-3000:]}


def measure(n: int, config: dict, out_dir: Path) -> dict:
    """One training run with ``n`` clients; the figures of the module docstring."""
    from huscf_mpi.results.reader import ResultFile

    cfg = {**config, "name": f"weak-{n}", "data": {**config["data"], "domains": {"mnist": n}}}
    path = out_dir / f"weak-{n}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = out_dir / f"weak-{n}.h5"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = run_sampled([str(BIN / "mpiexec"), "-n", str(n + 1), str(BIN / "huscf-mpi"), "train", "--config",
                       str(path), "--output", str(out), "--overwrite"], env=env)
    row = {"clients": n, "ranks": n + 1, **{k: v for k, v in res.items() if k != "tail"}}
    if res["rc"] != 0:
        row["error"] = res["tail"]
        return row
    r = ResultFile(out)
    its = r.array("rounds/iteration_seconds")
    its = its[1:] if len(its) > 1 else its
    sent = r.array("rounds/bytes_sent")[-1]
    private = r.array("rounds/private_dirty_bytes")[-1]
    evaluator = int(r.attrs("run")["evaluators"][0])
    plain = np.delete(private[1:], evaluator - 1)
    row.update({
        "seconds_per_iteration": float(np.median(its)),
        "startup_seconds": float(r.attrs("run").get("startup_seconds", np.nan)),
        "bytes_per_iteration": float(sent.sum() / r.attrs("run")["iterations_per_round"]),
        "private_server_mib": private[0] / 2**20, "private_evaluator_mib": private[evaluator] / 2**20,
        "private_plain_median_mib": float(np.median(plain)) / 2**20,
        "private_plain_max_mib": float(plain.max()) / 2**20,
        "peak_added_gib": (res["peak_used_bytes"] - res["used_before_bytes"]) / 2**30,
        "peak_used_gib": res["peak_used_bytes"] / 2**30,
    })
    return row


def block_rate(threads: int, width: float, batch: int) -> float:
    """FLOP/s of this machine on the model's blocks with ``threads`` threads (forward+backward)."""
    import torch

    from huscf_mpi.cuts.costs import block_costs
    from huscf_mpi.cuts.profiling import time_blocks
    from huscf_mpi.models import get_architecture

    torch.set_num_threads(threads)
    arch = get_architecture("cgan28")
    costs = block_costs(arch, width, batch, "true")
    times = time_blocks(arch, width, batch, repeats=5, warmup=2)
    flops = sum(float(costs[n].forward_flops.sum() + costs[n].backward_flops.sum()) for n in ("g", "d"))
    return flops / times.total()


def projection(rows: list[dict], width: float, batch: int, cut: tuple[int, int, int, int], server_cores: int,
               link_gbps: float, clients_per_node: int = 32) -> list[dict]:
    """Projected seconds per iteration on a cluster (rank 0 on its own node), per N."""
    from huscf_mpi.cuts.costs import block_costs
    from huscf_mpi.cuts.latency import latency_breakdown
    from huscf_mpi.models import get_architecture

    arch = get_architecture("cgan28")
    costs = block_costs(arch, width, batch, "true")
    client_rate = block_rate(1, width, batch)
    here = os.cpu_count() or 1
    server_rate = block_rate(here, width, batch) * server_cores / here  # linear in cores: optimistic
    out = []
    for row in rows:
        n = row["clients"]
        genes = np.array([[list(cut)] * n])  # (1 candidate, N clients, 4)
        lat = latency_breakdown(genes, costs, client_flops_per_s=[client_rate] * n,
                                client_link_bytes_per_s=[link_gbps * 1e9 / 8] * n,
                                server_flops_per_s=server_rate, server_link_bytes_per_s=link_gbps * 1e9 / 8)
        out.append({"clients": n, "nodes": 1 + -(-n // clients_per_node),
                    "projected_seconds_per_iteration": float(lat[0].sum()),
                    "client_gflops": client_rate / 1e9, "server_gflops": server_rate / 1e9})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 8, 16, 32, 64, 100])
    ap.add_argument("--config", type=Path, default=CONFIG)
    ap.add_argument("--server-cores", type=int, default=32, help="projection: cores of rank 0's node")
    ap.add_argument("--link-gbps", type=float, default=10.0, help="projection: client-server link, Gbit/s")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    config = yaml.safe_load(args.config.read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.clients:
            row = measure(n, config, Path(tmp))
            rows.append(row)
            if "error" in row:
                print(f"N={n}: failed (rc {row['rc']}):\n{row['error']}", file=sys.stderr)
                continue
            print(f"N={n:4d}  {row['seconds_per_iteration']:7.3f} s/it  first iteration {row['startup_seconds']:6.1f} s"
                  f"  wall {row['wall_seconds']:6.1f} s  peak +{row['peak_added_gib']:5.2f} GiB "
                  f"(in use {row['peak_used_gib']:5.2f})  {row['bytes_per_iteration'] / 2**20:8.1f} MiB/it  "
                  f"private MiB: server {row['private_server_mib']:.0f}, evaluator {row['private_evaluator_mib']:.0f}, "
                  f"plain median {row['private_plain_median_mib']:.0f} max {row['private_plain_max_mib']:.0f}",
                  flush=True)
    ok = [r for r in rows if "error" not in r]
    cut = tuple(config["cuts"])
    proj = projection(ok, config["model"]["width"], config["training"]["batch_size"], cut, args.server_cores,
                      args.link_gbps)
    print(f"\nPROJECTION (latency model of cuts/, not a measurement): rank 0 alone with {args.server_cores} cores, "
          f"32 clients per node, {args.link_gbps:g} Gbit/s links")
    for p in proj:
        print(f"N={p['clients']:4d}  nodes {p['nodes']:2d}  {p['projected_seconds_per_iteration']:7.3f} s/it "
              f"(client {p['client_gflops']:.1f} GFLOP/s, server {p['server_gflops']:.1f} GFLOP/s)")
    if args.json:
        args.json.write_text(json.dumps({"measured": rows, "projection": proj}, indent=1, default=float))


if __name__ == "__main__":
    main()
