"""Fixed-size mini-batches from a client's shard for the training loop (SPEC §1, §4)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .loading import to_unit_range


class ClientBatches:
    """Endless stream of batches of exactly ``batch_size`` samples from one shard.

    Every batch has the same shape because the MPI message sizes between client and server are
    agreed once. The shard is walked in a fresh seeded permutation per pass; a batch that runs
    past the end of a pass continues into the next pass, so a shard smaller than, or not a
    multiple of, ``batch_size`` still yields full batches (a small shard repeats samples
    within one batch).

    The shard stays uint8 (a quarter of the memory of float32) and each batch is scaled to
    [-1, 1] as it is drawn, by the same elementwise :func:`to_unit_range` as scaling the whole
    shard first, so the batches are bit-identical either way.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W) or (n, C, H, W)
        The shard as stored.
    labels : ndarray of int64, shape (n,)
    batch_size : int
        Samples per batch, >= 1.
    rng : numpy.random.Generator
        Source of the per-pass permutations (e.g. ``seeding.rng(seed, "batches", client)``).

    Raises
    ------
    ValueError
        Empty shard, ``batch_size < 1``, or images and labels of different lengths.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> None:
        n = int(images.shape[0])
        if n == 0:
            raise ValueError("ClientBatches needs a non-empty shard")
        if int(labels.shape[0]) != n:
            raise ValueError(f"ClientBatches got {n} images but {int(labels.shape[0])} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images, self.labels, self.batch_size, self._rng = images, labels, int(batch_size), rng
        self._perm = np.empty(0, dtype=np.int64)
        self._pos = 0
        self.passes = 0  # permutations drawn so far (passes started)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def next_indices(self) -> np.ndarray:
        """Indices (int64, shape (batch_size,)) of the next batch into the shard."""
        parts, need = [], self.batch_size
        while need:
            if self._pos == len(self._perm):
                self._perm = self._rng.permutation(len(self)).astype(np.int64)
                self._pos = 0
                self.passes += 1
            take = min(need, len(self._perm) - self._pos)
            parts.append(self._perm[self._pos:self._pos + take])
            self._pos += take
            need -= take
        return np.concatenate(parts)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch: x float32 (batch_size, C, H, W) in [-1, 1], y int64 (batch_size,)."""
        idx = self.next_indices()
        return torch.from_numpy(to_unit_range(self.images[idx])), torch.from_numpy(self.labels[idx].astype(np.int64))

    __next__ = next

    def __iter__(self) -> "ClientBatches":
        return self


def epoch_iterations(sizes: Sequence[int], batch_size: int) -> int:
    """Iterations in one local epoch: ``max_i ceil(n_i / batch_size)``.

    All clients step in lock-step (synchronous mode), so one epoch is the number of
    iterations after which every client has seen its whole shard at least once; clients with
    smaller shards wrap around into a new pass meanwhile (see ``ClientBatches``).

    Raises
    ------
    ValueError
        No sizes, a size < 1, or ``batch_size < 1``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not sizes or min(sizes) < 1:
        raise ValueError(f"every client needs at least one sample, got sizes {list(sizes)[:10]}")
    return max(math.ceil(int(n) / batch_size) for n in sizes)
