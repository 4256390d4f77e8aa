"""Architectures as ordered block lists, and the registry the config names them by (SPEC §2).

An architecture *family* (``cgan28``, ``cgan32``) fixes the block structure and the image
side; the domain fixes the rest: image channels and the number of classes; the config may
choose the norm of the blocks the server can run (``model.body_norm``, :mod:`.norms`).
``get_architecture(name, image_shape, n_classes, body_norm)`` builds (once per process) the
:class:`Architecture` for that combination, and :func:`domain_architecture` derives the
combination from the run's domains, refusing domains whose image shapes differ (they could
not share a server body) or that the family cannot take. ``get_architecture(name)`` alone
gives the family's default (the MNIST family's 1x28x28, 10 classes for ``cgan28``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, Iterable

import torch
from torch import nn

from . import cgan28, cgan32
from .norms import check as check_body_norm

GENERATOR, DISCRIMINATOR = "g", "d"
NETS = (GENERATOR, DISCRIMINATOR)


@dataclass(frozen=True)
class Architecture:
    """A conditional GAN whose two networks are ordered lists of blocks.

    Attributes
    ----------
    name : family key, e.g. ``"cgan28"``.
    image_shape : (C, H, W) of real and generated images.
    n_classes, z_dim : label count and latent size.
    build : maps ``(net, width)`` to the list of blocks of that network (block 1 first).
    pinned : per network, the 1-based blocks that always run on the server; clustering
        (SPEC §3) reads the output of the first pinned discriminator block.
    body_norm : the norm of blocks 2..L-1 (one of :data:`.norms.BODY_NORMS`; ``"batch"`` is SPEC §2's).
    """

    name: str
    image_shape: tuple[int, int, int]
    n_classes: int
    z_dim: int
    build: Callable[[str, float], list[nn.Module]]
    pinned: dict[str, tuple[int, ...]]
    body_norm: str = "batch"

    @property
    def key(self) -> tuple[str, tuple[int, int, int], int, str]:
        """``(name, image_shape, n_classes, body_norm)``: ``get_architecture(*key)`` returns this architecture."""
        return (self.name, tuple(self.image_shape), int(self.n_classes), self.body_norm)

    def blocks(self, net: str, width: float) -> list[nn.Module]:
        """Fresh blocks of ``net`` (``"g"`` or ``"d"``) at ``width``, initialised from torch's RNG."""
        if net not in NETS:
            raise ValueError(f"net must be 'g' or 'd', not {net!r}")
        return self.build(net, width)

    def n_blocks(self, net: str) -> int:
        return len(_output_shapes(self.key, net, 0.05))

    @property
    def cluster_block(self) -> int:
        """The discriminator block whose server output feeds clustering (SPEC §3 step 1)."""
        return self.pinned[DISCRIMINATOR][0]

    def output_shapes(self, net: str, width: float) -> list[tuple[int, ...]]:
        """Per-sample output shape of every block of ``net`` (index 0 = block 1), by a dry run."""
        return list(_output_shapes(self.key, net, width))

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


@dataclass(frozen=True)
class _Family:
    module: object  # cgan28 / cgan32: generator_blocks(width, z_dim, n_classes, channels), discriminator_blocks(...)
    side: int
    default_shape: tuple[int, int, int]
    pinned: tuple[tuple[str, tuple[int, ...]], ...]
    about: str


FAMILIES: dict[str, _Family] = {
    "cgan28": _Family(cgan28, 28, (1, 28, 28), ((GENERATOR, (3,)), (DISCRIMINATOR, (3,))),
                      "the paper's 28x28 model (SPEC §2)"),
    "cgan32": _Family(cgan32, 32, (3, 32, 32), ((GENERATOR, (3,)), (DISCRIMINATOR, (3,))),
                      "DCGAN-style 32x32 (CIFAR-10)"),
}
DEFAULT_CLASSES = 10


def _build(module, image_shape: tuple[int, int, int], n_classes: int, norm: str, net: str,
           width: float) -> list[nn.Module]:
    channels = image_shape[0]
    if net == GENERATOR:
        return module.generator_blocks(width, module.Z_DIM, n_classes, channels, norm)
    return module.discriminator_blocks(width, n_classes, channels, norm)


@lru_cache(maxsize=None)
def _make(name: str, image_shape: tuple[int, int, int], n_classes: int, body_norm: str) -> Architecture:
    fam = FAMILIES[name]
    c, h, w = image_shape
    if (h, w) != (fam.side, fam.side) or c < 1:
        fits = [n for n, f in FAMILIES.items() if (f.side, f.side) == (h, w)]
        hint = f"use model.architecture: {fits[0]}" if fits else "no architecture here takes that size"
        raise ValueError(f"architecture {name} takes {fam.side}x{fam.side} images, not {c}x{h}x{w}: {hint}")
    if n_classes < 2:
        raise ValueError(f"architecture {name}: n_classes must be >= 2, got {n_classes}")
    check_body_norm(body_norm)
    return Architecture(name=name, image_shape=image_shape, n_classes=n_classes, z_dim=fam.module.Z_DIM,
                        build=partial(_build, fam.module, image_shape, n_classes, body_norm),
                        pinned=dict(fam.pinned), body_norm=body_norm)


def get_architecture(name: str, image_shape: Iterable[int] | None = None, n_classes: int | None = None,
                     body_norm: str = "batch") -> Architecture:
    """The architecture of family ``name`` for images of ``image_shape`` (C, H, W) and ``n_classes``.

    Defaults: the family's default shape (``cgan28``: (1, 28, 28); ``cgan32``: (3, 32, 32)),
    10 classes and SPEC §2's BatchNorm in every block that can run on the server
    (``body_norm``, :mod:`.norms`). The same arguments return the same object.

    Raises
    ------
    KeyError
        Unknown family (names the known ones).
    ValueError
        A shape the family cannot take (names the family that can), fewer than 2 classes, or
        an unknown ``body_norm``.
    """
    if name not in FAMILIES:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(FAMILIES)}")
    shape = FAMILIES[name].default_shape if image_shape is None else tuple(int(v) for v in image_shape)
    return _make(name, shape, DEFAULT_CLASSES if n_classes is None else int(n_classes), body_norm)


def domain_architecture(name: str, domains: Iterable[str], body_norm: str = "batch") -> Architecture:
    """The architecture ``name`` for a run over ``domains`` (registry names), with ``body_norm``.

    Image shape and class count come from the domains (``data.registry``): all domains must
    have the same (C, H, W), since every client's activations pass through one server body;
    the label embedding has the largest class count among them (a 2-class domain in a
    10-class run uses labels 0 and 1).

    Raises
    ------
    ValueError
        Domains of different image shapes, or a shape the family cannot take: one line that
        names the domains and the fix.
    DataError
        An unknown domain.
    """
    from ..data.registry import get_domain

    specs = [get_domain(d) for d in domains]
    if not specs:
        raise ValueError("no domains: data.domains must name at least one")
    shapes = {s.image_shape for s in specs}
    if len(shapes) > 1:
        listed = ", ".join(f"{s.name} {'x'.join(map(str, s.image_shape))}" for s in specs)
        raise ValueError(f"data.domains mixes image shapes ({listed}): clients of one run share a server body, "
                         "so all their images must have one shape; run these domains separately")
    return get_architecture(name, specs[0].image_shape, max(s.n_classes for s in specs), body_norm)


# The families' default architectures, by name (listing and backward compatibility).
ARCHITECTURES: dict[str, Architecture] = {name: get_architecture(name) for name in FAMILIES}


@lru_cache(maxsize=None)
def _output_shapes(key: tuple, net: str, width: float) -> tuple[tuple[int, ...], ...]:
    # Building the networks to read shapes is costly at width 1; set-up asks once per client.
    return tuple(get_architecture(*key)._dry_run(net, width))
