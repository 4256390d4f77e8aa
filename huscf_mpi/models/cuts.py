"""Cut vectors: where each network is split between a client and the server (SPEC §2).

Per network a cut is ``(head, tail)``, both 1-based block indices: the client runs blocks
``1..head`` (the head) and ``tail..L`` (the tail); the server runs ``head+1..tail-1`` (the body
span), which must be non-empty and contain the architecture's pinned blocks. In the paper model
(L = 5, block 3 pinned) ``head ∈ {1, 2}`` and ``tail ∈ {4, 5}``; the paper's bit "client also
runs block 2" is ``head == 2`` and "client also runs block 4" is ``tail == 4``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from .architecture import DISCRIMINATOR, GENERATOR, Architecture


@dataclass(frozen=True, order=True)
class NetCut:
    """Cut of one network: last head block and first tail block (1-based)."""

    head: int
    tail: int

    @property
    def server_span(self) -> range:
        """Blocks the server runs for this client."""
        return range(self.head + 1, self.tail)

    def validate(self, n_blocks: int, pinned: tuple[int, ...], what: str = "cut") -> None:
        """Raise ``ValueError`` naming the rule broken, if any."""
        if not (1 <= self.head < self.tail <= n_blocks):
            raise ValueError(f"{what}: need 1 <= head < tail <= {n_blocks}, got head={self.head}, tail={self.tail}")
        if not self.server_span:
            raise ValueError(f"{what}: the server span head+1..tail-1 is empty (head={self.head}, tail={self.tail})")
        outside = [b for b in pinned if b not in self.server_span]
        if outside:
            raise ValueError(f"{what}: blocks {outside} are pinned to the server but head={self.head}, tail={self.tail} leaves them on the client")


@dataclass(frozen=True, order=True)
class CutVector:
    """A client's cuts for both networks; ``as_tuple() == (g_head, g_tail, d_head, d_tail)``."""

    g: NetCut
    d: NetCut

    @classmethod
    def from_tuple(cls, values) -> "CutVector":
        g_head, g_tail, d_head, d_tail = (int(v) for v in values)
        return cls(NetCut(g_head, g_tail), NetCut(d_head, d_tail))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.g.head, self.g.tail, self.d.head, self.d.tail)

    def net(self, net: str) -> NetCut:
        return self.g if net == GENERATOR else self.d

    def validate(self, arch: Architecture) -> None:
        for net in (GENERATOR, DISCRIMINATOR):
            self.net(net).validate(arch.n_blocks(net), arch.pinned[net], what=f"{net.upper()} cut")


def valid_net_cuts(n_blocks: int, pinned: tuple[int, ...]) -> list[NetCut]:
    """Every valid cut of one network, in (head, tail) order."""
    out = []
    for head, tail in itertools.combinations(range(1, n_blocks + 1), 2):
        cut = NetCut(head, tail)
        try:
            cut.validate(n_blocks, pinned)
        except ValueError:
            continue
        out.append(cut)
    return out


def valid_cut_vectors(arch: Architecture) -> list[CutVector]:
    """Every valid cut vector of ``arch`` (16 for the paper model)."""
    g = valid_net_cuts(arch.n_blocks(GENERATOR), arch.pinned[GENERATOR])
    d = valid_net_cuts(arch.n_blocks(DISCRIMINATOR), arch.pinned[DISCRIMINATOR])
    return [CutVector(a, b) for a in g for b in d]


def uniform_min(arch: Architecture) -> CutVector:
    """Least work on the client: smallest head, largest tail for both networks."""
    vs = valid_cut_vectors(arch)
    return min(vs, key=lambda v: (v.g.head - v.g.tail, v.d.head - v.d.tail))


def uniform_max(arch: Architecture) -> CutVector:
    """Most work on the client: largest head, smallest tail for both networks."""
    vs = valid_cut_vectors(arch)
    return max(vs, key=lambda v: (v.g.head - v.g.tail, v.d.head - v.d.tail))
