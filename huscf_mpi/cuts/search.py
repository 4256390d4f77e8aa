"""Gene encoding of cut assignments, and the brute-force searches the GA is checked against.

An assignment gives each of N clients one value per *gene*; gene k of a client takes one of
``choices[k]``. A choice is an int, or a ``NetCut`` / (head, tail) pair, which decodes to two
integer columns. With ``choices = [valid_net_cuts(G...), valid_net_cuts(D...)]`` an assignment
decodes to the (N, 4) array ``(g_head, g_tail, d_head, d_tail)`` per client, and no encoded
assignment can be an invalid cut. Genes are stored as indices into ``choices[k]``.
"""
from __future__ import annotations

import itertools
from typing import Callable, Sequence

import numpy as np

from ..models.cuts import NetCut

Fitness = Callable[[np.ndarray], np.ndarray]

#: Largest number of assignments ``exhaustive_best`` will enumerate.
EXHAUSTIVE_LIMIT = 1 << 24


class GeneSpace:
    """Index encoding of per-client genes.

    Parameters
    ----------
    choices : per gene, its allowed values: ints, or ``NetCut`` / (head, tail) pairs.

    Attributes
    ----------
    sizes : int (K,), number of choices of each gene.
    width : columns of one decoded client (1 per int gene, 2 per pair gene).

    Raises
    ------
    ValueError : no genes, a gene with no choices, or mixed value kinds within one gene.
    """

    def __init__(self, choices: Sequence[Sequence]):
        if not choices:
            raise ValueError("need at least one gene")
        self.tables = [self._table(k, c) for k, c in enumerate(choices)]
        self.sizes = np.array([t.shape[0] for t in self.tables])
        self.width = sum(t.shape[1] for t in self.tables)
        # One row per whole-client combination, so decoding is a single gather when that's small.
        self._combined = (np.concatenate([t[c] for t, c in zip(self.tables, self.per_client_combinations().T)], axis=1)
                          if self.sizes.prod() <= 1 << 16 else None)

    @staticmethod
    def _table(k: int, values) -> np.ndarray:
        rows = [(v.head, v.tail) if isinstance(v, NetCut) else tuple(np.atleast_1d(v).tolist()) for v in values]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ValueError(f"gene {k}: needs at least one choice, all of one kind")
        return np.array(rows, dtype=np.int64)

    @property
    def n_genes(self) -> int:
        return len(self.tables)

    def decode(self, genes: np.ndarray) -> np.ndarray:
        """Choice indices int (..., N, K) -> decoded values int64 (..., N, width)."""
        genes = np.asarray(genes)
        if self._combined is None:
            return np.concatenate([t[genes[..., k]] for k, t in enumerate(self.tables)], axis=-1)
        flat = genes[..., 0].astype(np.intp)
        for k in range(1, self.n_genes):  # mixed-radix index, last gene fastest (per_client_combinations order)
            flat = flat * int(self.sizes[k]) + genes[..., k]
        return self._combined[flat]

    def per_client_combinations(self) -> np.ndarray:
        """Every gene combination of one client: int (M, K), M = prod(sizes), last gene fastest."""
        return np.array(list(itertools.product(*(range(s) for s in self.sizes))), dtype=np.int64)


def uniform_assignments(fitness: Fitness, choices: Sequence[Sequence], n_clients: int) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate every assignment that gives all clients the same genes.

    Returns
    -------
    vectors : int64 (M, width), the decoded per-client value of each uniform assignment (with
        cut choices: the cut vector ``(g_head, g_tail, d_head, d_tail)`` all clients share).
    latencies : float64 (M,), ``fitness`` of each.
    """
    space = GeneSpace(choices)
    combos = space.per_client_combinations()
    genes = np.broadcast_to(combos[:, None, :], (len(combos), n_clients, space.n_genes))
    return space.decode(combos), np.asarray(fitness(space.decode(genes)), dtype=np.float64)


def exhaustive_best(fitness: Fitness, choices: Sequence[Sequence], n_clients: int,
                    chunk: int = 1 << 16) -> tuple[np.ndarray, float]:
    """The optimum over every assignment, by enumeration in chunks of ``chunk`` candidates.

    Returns
    -------
    (best, latency) : decoded int64 (N, width) assignment with the lowest fitness (the first
        in enumeration order on ties), and that fitness.

    Raises
    ------
    ValueError : more than ``EXHAUSTIVE_LIMIT`` assignments (M ** N); use the GA instead.
    """
    space = GeneSpace(choices)
    combos = space.per_client_combinations()
    m = len(combos)
    total = m ** n_clients
    if total > EXHAUSTIVE_LIMIT:
        raise ValueError(f"{m}^{n_clients} = {total} assignments exceed the exhaustive limit {EXHAUSTIVE_LIMIT}")
    best_value, best_index = np.inf, -1
    powers = m ** np.arange(n_clients - 1, -1, -1, dtype=np.int64)  # client 0 is the slowest digit
    for start in range(0, total, chunk):
        index = np.arange(start, min(start + chunk, total), dtype=np.int64)
        digits = (index[:, None] // powers) % m  # (C, N) per-client combination ids
        values = np.asarray(fitness(space.decode(combos[digits])), dtype=np.float64)
        i = int(np.argmin(values))
        if values[i] < best_value:
            best_value, best_index = float(values[i]), int(index[i])
    digits = (best_index // powers) % m
    return space.decode(combos[digits]), best_value
