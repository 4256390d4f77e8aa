"""Architectures as ordered block lists, and the registry the config names them by (SPEC §2)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
from torch import nn

from . import cgan28

GENERATOR, DISCRIMINATOR = "g", "d"
NETS = (GENERATOR, DISCRIMINATOR)


@dataclass(frozen=True)
class Architecture:
    """A conditional GAN whose two networks are ordered lists of blocks.

    Attributes
    ----------
    name : registry key, e.g. ``"cgan28"``.
    image_shape : (C, H, W) of real and generated images.
    n_classes, z_dim : label count and latent size.
    build : maps ``(net, width)`` to the list of blocks of that network (block 1 first).
    pinned : per network, the 1-based blocks that always run on the server; clustering
        (SPEC §3) reads the output of the first pinned discriminator block.
    """

    name: str
    image_shape: tuple[int, int, int]
    n_classes: int
    z_dim: int
    build: Callable[[str, float], list[nn.Module]]
    pinned: dict[str, tuple[int, ...]]

    def blocks(self, net: str, width: float) -> list[nn.Module]:
        """Fresh blocks of ``net`` (``"g"`` or ``"d"``) at ``width``, initialised from torch's RNG."""
        if net not in NETS:
            raise ValueError(f"net must be 'g' or 'd', not {net!r}")
        return self.build(net, width)

    def n_blocks(self, net: str) -> int:
        return len(_output_shapes(self.name, net, 0.05))

    @property
    def cluster_block(self) -> int:
        """The discriminator block whose server output feeds clustering (SPEC §3 step 1)."""
        return self.pinned[DISCRIMINATOR][0]

    def output_shapes(self, net: str, width: float) -> list[tuple[int, ...]]:
        """Per-sample output shape of every block of ``net`` (index 0 = block 1), by a dry run."""
        return list(_output_shapes(self.name, net, width))

    def _dry_run(self, net: str, width: float) -> list[tuple[int, ...]]:
        blocks = self.blocks(net, width)
        labels = torch.zeros(2, dtype=torch.long)
        x = torch.zeros(2, self.z_dim) if net == GENERATOR else torch.zeros(2, *self.image_shape)
        shapes = []
        with torch.no_grad():
            for i, block in enumerate(blocks):
                block.eval()
                x = block(x, labels) if i == 0 else block(x)
                shapes.append(tuple(x.shape[1:]))
        return shapes


def _cgan28(net: str, width: float) -> list[nn.Module]:
    if net == GENERATOR:
        return cgan28.generator_blocks(width)
    return cgan28.discriminator_blocks(width)


ARCHITECTURES: dict[str, Architecture] = {
    "cgan28": Architecture(
        name="cgan28",
        image_shape=(1, 28, 28),
        n_classes=cgan28.N_CLASSES,
        z_dim=cgan28.Z_DIM,
        build=_cgan28,
        pinned={GENERATOR: (3,), DISCRIMINATOR: (3,)},
    ),
}


@lru_cache(maxsize=None)
def _output_shapes(name: str, net: str, width: float) -> tuple[tuple[int, ...], ...]:
    # Building the networks to read shapes is costly at width 1; set-up asks once per client.
    return tuple(ARCHITECTURES[name]._dry_run(net, width))


def get_architecture(name: str) -> Architecture:
    """Look up an architecture; raises ``KeyError`` naming the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
