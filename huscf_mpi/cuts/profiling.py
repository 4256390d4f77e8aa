"""Measuring a rank: per-block compute seconds and its link to rank 0 (SPEC §5 "measured").

Block timings run each block of both networks forward and backward at the training batch
size (warm-up passes, then the median of ``repeats``). The link is measured by ping-pong with
rank 0 at the message sizes the cuts can produce and fitted as ``seconds = latency +
bytes / bandwidth`` (least squares on one-way times).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from mpi4py import MPI

from ..comm.kinds import PING
from ..models.architecture import NETS, Architecture



@dataclass
class BlockTimes:
    """Median seconds per block: ``forward[net]``, ``backward[net]`` float64 (L,) each."""

    forward: dict[str, np.ndarray]
    backward: dict[str, np.ndarray]

    def total(self) -> float:
        return float(sum(self.forward[n].sum() + self.backward[n].sum() for n in NETS))


def time_blocks(arch: Architecture, width: float, batch_size: int, repeats: int = 5, warmup: int = 2,
                seed: int = 0) -> BlockTimes:
    """Time every block's forward and backward pass (seconds, median over ``repeats``).

    Backward time is that of ``torch.autograd.backward`` of the block output with a random
    upstream gradient, including the gradient w.r.t. the block input (what split training does).
    """
    gen = torch.Generator().manual_seed(seed)
    fwd, bwd = {}, {}
    for net in NETS:
        blocks = arch.blocks(net, width)
        labels = torch.randint(0, arch.n_classes, (batch_size,), generator=gen)
        x = torch.randn(batch_size, arch.z_dim, generator=gen) if net == "g" else \
            torch.randn(batch_size, *arch.image_shape, generator=gen)
        f_times, b_times = [], []
        for i, block in enumerate(blocks):
            inp = x.detach().requires_grad_(i > 0)
            fs, bs = [], []
            for r in range(warmup + repeats):
                block.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                out = block(inp, labels) if i == 0 else block(inp)
                t1 = time.perf_counter()
                out.backward(torch.ones_like(out))
                t2 = time.perf_counter()
                if r >= warmup:
                    fs.append(t1 - t0)
                    bs.append(t2 - t1)
            f_times.append(np.median(fs))
            b_times.append(np.median(bs))
            with torch.no_grad():
                x = block(x, labels) if i == 0 else block(x)
        fwd[net], bwd[net] = np.array(f_times), np.array(b_times)
    return BlockTimes(fwd, bwd)


def fit_link(nbytes: np.ndarray, seconds: np.ndarray) -> tuple[float, float]:
    """Least-squares ``seconds = latency + nbytes / bandwidth``; returns (latency s, bytes/s).

    A non-positive fitted slope (sizes too small to see bandwidth) gives ``inf`` bandwidth.
    """
    A = np.stack([np.ones_like(nbytes, dtype=np.float64), np.asarray(nbytes, np.float64)], axis=1)
    (latency, per_byte), *_ = np.linalg.lstsq(A, np.asarray(seconds, np.float64), rcond=None)
    return max(float(latency), 0.0), (1.0 / per_byte if per_byte > 0 else float("inf"))


def ping_pong(comm: MPI.Comm, peer: int, sizes: list[int], repeats: int = 3, initiator: bool = True,
              ledger=None) -> tuple[np.ndarray, np.ndarray]:
    """Round trips with ``peer`` at each size (bytes); the initiator returns (bytes, one-way s).

    Messages are of kind :data:`~huscf_mpi.comm.kinds.PING` (set-up plane); with a ``ledger``
    they are recorded in it like every other message.
    """
    tag = PING.tag
    xs, ts = [], []
    buf = np.zeros(max(sizes), np.uint8)
    for size in sizes:
        view = buf[:size]
        for _ in range(repeats + 1):  # the first round trip of a size warms the path up
            if initiator:
                t0 = time.perf_counter()
                comm.Send(view, dest=peer, tag=tag)
                comm.Recv(view, source=peer, tag=tag)
                xs.append(size)
                ts.append((time.perf_counter() - t0) / 2)
            else:
                comm.Recv(view, source=peer, tag=tag)
                comm.Send(view, dest=peer, tag=tag)
            if ledger is not None:
                ledger.record("sent", PING, peer, view)
                ledger.record("received", PING, peer, view)
        if initiator:
            del xs[-repeats - 1], ts[-repeats - 1]
    return np.array(xs), np.array(ts)
