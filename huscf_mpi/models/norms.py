"""The norm layer of the blocks the server can run (``model.body_norm``; issue 10).

SPEC §2 puts BatchNorm in every block but the last. In blocks 2..L-1 (those a cut can leave
on the server) BatchNorm's statistics are those of whichever samples share a body pass: all
clients' concatenated batches in sync mode, a buffer's clients in buffered mode, one client's
batch in sequential mode, so the asynchronous modes change what the layer computes, not only
when. The other choices normalise each sample on its own and have no running statistics, so
a block computes the same in every mode, on the client or the server, in training and in
evaluation:

=========  =====================================================================================
batch      ``BatchNorm2d(C)`` (SPEC §2, the default)
group      ``GroupNorm(g, C)``, g the largest divisor of C not above 8 (Wu & He 2018 use 32
           groups in layers of >= 64 channels; ours have 16-64 at width 0.25)
layer      ``GroupNorm(1, C)``: one group, i.e. LayerNorm over (C, H, W) with a per-channel affine
none       no norm layer
=========  =====================================================================================

Block 1 (labels enter there, so it never leaves the client) keeps BatchNorm whatever the choice.
"""
from __future__ import annotations

from torch import nn

BODY_NORMS = ("batch", "group", "layer", "none")
MAX_GROUPS = 8


def groups(channels: int, most: int = MAX_GROUPS) -> int:
    """The largest divisor of ``channels`` that is at most ``most`` (GroupNorm needs g | C)."""
    return max(g for g in range(1, min(most, channels) + 1) if channels % g == 0)


def check(kind: str) -> str:
    """``kind`` if it is one of :data:`BODY_NORMS`; else ``ValueError`` naming the known ones."""
    if kind not in BODY_NORMS:
        raise ValueError(f"unknown body norm {kind!r}; choose one of {', '.join(BODY_NORMS)}")
    return kind


def body_norm(kind: str, channels: int) -> nn.Module:
    """The norm layer ``kind`` (one of :data:`BODY_NORMS`) for a (B, channels, H, W) activation.

    Raises
    ------
    ValueError
        An unknown ``kind`` (names the known ones).
    """
    if check(kind) == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(groups(channels), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()  # "none"
