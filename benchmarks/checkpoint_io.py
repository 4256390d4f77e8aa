"""Checkpoint layouts at scale (issue 11, point 3): one file per rank, or everything gathered to rank 0.

Every rank holds a state of ``--bytes-per-rank`` bytes (a float32 tensor in a dict, as a rank's
checkpoint holds its model parts and moments) and the two layouts write it:

- ``per-rank``: each rank writes its own file (``huscf_mpi.checkpoint.files.save_rank``: write,
  fsync, rename) and reports to rank 0 (what ``huscf-mpi train`` does);
- ``gathered``: each rank serialises its state, rank 0 gathers the bytes (``Gatherv``) and
  writes one file the same way.

Rank 0 times each from a barrier to the moment the checkpoint is complete (every file in place),
``--repeats`` times, and prints a Markdown table: median seconds, bytes written, and the extra
memory rank 0 needs (the gathered layout holds every rank's state at once).

Run (101 ranks as in ``jobs/configs/scale-101.yaml``; sizes from a real checkpoint's manifest)::

    mpiexec -n 101 .venv/bin/python benchmarks/checkpoint_io.py --bytes-per-rank 1500000 --dir /tmp/ckio
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mpi4py import MPI  # noqa: E402

from huscf_mpi.checkpoint import files  # noqa: E402
from huscf_mpi.durable import write_atomic  # noqa: E402


def per_rank(comm, root: Path, state: dict) -> int:
    size = files.save_rank(files.rank_file(root, 1, comm.rank), state)
    return sum(comm.gather(size, root=0) or [0])


def gathered(comm, root: Path, state: dict) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    mine = np.frombuffer(buffer.getbuffer(), np.uint8)
    sizes = comm.gather(mine.size, root=0)
    whole = np.empty(sum(sizes), np.uint8) if comm.rank == 0 else None
    comm.Gatherv(mine, [whole, sizes] if comm.rank == 0 else None, root=0)
    if comm.rank:
        return 0
    return write_atomic(root / "round-000001" / "all-ranks.bin", lambda f: f.write(whole.tobytes()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bytes-per-rank", type=int, default=1_500_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/huscf-checkpoint-io")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    state = {"rank": comm.rank, "w": torch.randn(args.bytes_per_rank // 4)}
    rows = []
    for name, write in (("per-rank files", per_rank), ("gathered to rank 0", gathered)):
        seconds, written = [], 0
        for i in range(args.repeats):
            root = Path(args.dir) / f"{name.split()[0]}-{i}"
            comm.Barrier()
            t0 = time.perf_counter()
            written = write(comm, root, state)
            comm.Barrier()
            seconds.append(time.perf_counter() - t0)
            if comm.rank == 0:
                shutil.rmtree(root, ignore_errors=True)
        extra = args.bytes_per_rank * comm.size if name.startswith("gathered") else 0
        rows.append((name, statistics.median(seconds), min(seconds), max(seconds), written, extra))
    if comm.rank == 0:
        print(f"{comm.size} ranks, {args.bytes_per_rank / 2**20:.2f} MiB per rank, {args.repeats} repeats, {args.dir}")
        print("| layout | median s | min s | max s | bytes written | extra memory on rank 0 |")
        print("|---|---|---|---|---|---|")
        for name, med, lo, hi, written, extra in rows:
            print(f"| {name} | {med:.2f} | {lo:.2f} | {hi:.2f} | {written / 2**20:.1f} MiB | {extra / 2**20:.0f} MiB |")


if __name__ == "__main__":
    main()
