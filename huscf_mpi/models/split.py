"""Turning a cut vector into client head/tail segments and the server's shared body (SPEC §2).

Every rank builds the full networks from the same init seed and keeps only the blocks it
hosts, so the unsplit network is well defined and head ∘ body ∘ tail equals it exactly.
Blocks are stored in ``nn.ModuleDict`` under their 1-based index, so a state-dict key
``blocks.<b>.<param>`` names its block: federation aggregates block by block (SPEC §3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

from .architecture import DISCRIMINATOR, GENERATOR, NETS, Architecture
from .cuts import CutVector, NetCut


class Segment(nn.Module):
    """Consecutive blocks of one network run by one party.

    ``forward(x, labels=None)``: if the segment starts at block 1, ``labels`` (int64, (B,)) is
    passed to that block as its second input. Returns the output of the last block.
    """

    def __init__(self, blocks: Mapping[int, nn.Module]):
        super().__init__()
        self.indices = sorted(blocks)
        if self.indices != list(range(self.indices[0], self.indices[-1] + 1)):
            raise ValueError(f"segment blocks must be consecutive, got {self.indices}")
        self.blocks = nn.ModuleDict({str(b): blocks[b] for b in self.indices})

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        for b in self.indices:
            x = self.blocks[str(b)](x, labels) if b == 1 else self.blocks[str(b)](x)
        return x


class ServerBody(nn.Module):
    """The server's blocks of one network: the union of every client's server span.

    In synchronous mode (SPEC §1) block ``b`` runs once per pass on the concatenation, in
    client-id order, of the activations of the clients whose span contains ``b``; BatchNorm
    therefore sees the union batch and a backward pass sums the gradient over clients.
    """

    def __init__(self, blocks: Mapping[int, nn.Module], spans: Mapping[int, NetCut]):
        super().__init__()
        self.indices = sorted(blocks)
        self.blocks = nn.ModuleDict({str(b): blocks[b] for b in self.indices})
        self.spans = dict(sorted(spans.items()))
        for client, cut in self.spans.items():
            missing = [b for b in cut.server_span if b not in blocks]
            if missing:
                raise ValueError(f"client {client}: server span needs blocks {missing} the body does not host")

    def forward(self, inputs: Mapping[int, torch.Tensor], capture: int | None = None
                ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Run every client's span.

        Parameters
        ----------
        inputs : client id → smashed data entering its span (output of its head block).
            Clients absent from ``inputs`` do not take part in this pass.
        capture : a block index whose per-client outputs to return as well (clustering).

        Returns
        -------
        outputs : client id → output of its last server block (what its tail receives).
        captured : client id → output of block ``capture`` for clients whose span has it.
        """
        current = dict(inputs)
        outputs: dict[int, torch.Tensor] = {}
        captured: dict[int, torch.Tensor] = {}
        for b in self.indices:
            members = [c for c in sorted(current) if b in self.spans[c].server_span]
            if not members:
                continue
            y = self.blocks[str(b)](torch.cat([current[c] for c in members]))
            for c, part in zip(members, torch.split(y, [current[c].shape[0] for c in members])):
                current[c] = part
                if b == capture:
                    captured[c] = part
                if b == self.spans[c].tail - 1:
                    outputs[c] = part
        return outputs, captured


@dataclass
class ClientModels:
    """A client's four parts: generator head/tail and discriminator head/tail."""

    g_head: Segment
    g_tail: Segment
    d_head: Segment
    d_tail: Segment

    def parts(self) -> dict[str, Segment]:
        return {"g_head": self.g_head, "g_tail": self.g_tail, "d_head": self.d_head, "d_tail": self.d_tail}


def full_blocks(arch: Architecture, width: float, init_seed: int) -> dict[str, dict[int, nn.Module]]:
    """Both networks' blocks, identically initialised on every rank from ``init_seed``."""
    gen = torch.Generator().manual_seed(int(init_seed))
    out = {}
    for net in NETS:
        state = torch.get_rng_state()
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        blocks = arch.blocks(net, width)
        torch.set_rng_state(state)
        out[net] = {i + 1: m for i, m in enumerate(blocks)}
    return out


def client_models(arch: Architecture, width: float, cut: CutVector, init_seed: int) -> ClientModels:
    """The client parts for ``cut`` (blocks ``1..head`` and ``tail..L`` of each network)."""
    cut.validate(arch)
    full = full_blocks(arch, width, init_seed)
    seg = {}
    for net in NETS:
        c, blocks = cut.net(net), full[net]
        seg[f"{net}_head"] = Segment({b: blocks[b] for b in range(1, c.head + 1)})
        seg[f"{net}_tail"] = Segment({b: blocks[b] for b in range(c.tail, len(blocks) + 1)})
    return ClientModels(**seg)


def server_bodies(arch: Architecture, width: float, cuts: Mapping[int, CutVector], init_seed: int
                  ) -> dict[str, ServerBody]:
    """The server's ``{"g": ServerBody, "d": ServerBody}`` hosting the union of all spans."""
    full = full_blocks(arch, width, init_seed)
    out = {}
    for net in NETS:
        spans = {c: v.net(net) for c, v in cuts.items()}
        hosted = sorted({b for s in spans.values() for b in s.server_span})
        out[net] = ServerBody({b: full[net][b] for b in hosted}, spans)
    return out


def block_state(module: nn.Module) -> dict[int, dict[str, torch.Tensor]]:
    """Split a Segment's or ServerBody's state dict (parameters and BN buffers) by block."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in module.state_dict().items():
        _, b, rest = key.split(".", 2)
        out.setdefault(int(b), {})[rest] = value
    return out


def load_block_state(module: nn.Module, states: Mapping[int, Mapping[str, torch.Tensor]],
                     blocks: Iterable[int] | None = None) -> None:
    """Copy per-block values into ``module`` in place (only ``blocks`` if given)."""
    own = module.state_dict()
    with torch.no_grad():
        for b, params in states.items():
            if blocks is not None and b not in blocks:
                continue
            for rest, value in params.items():
                own[f"blocks.{b}.{rest}"].copy_(value)


__all__ = [
    "Segment", "ServerBody", "ClientModels", "full_blocks", "client_models", "server_bodies",
    "block_state", "load_block_state", "GENERATOR", "DISCRIMINATOR",
]
