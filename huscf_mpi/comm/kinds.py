"""Message kinds: one MPI tag per kind (SPEC §1, ARCHITECTURE seam 1).

Kinds come in two planes. The *protocol* plane is what HuSCF-GAN itself exchanges: smashed
data, gradients with respect to smashed data, and (at federation time only) parameters. The
*report* plane carries what the benchmark harness needs in its result file: per-round scalars
and, when ``evaluation.sample_grid`` is on, one uint8 image grid per evaluated domain. The
message ledger records both planes, so a reader can check that nothing image-, label- or
loss-shaped ever travelled on the protocol plane.
"""
from __future__ import annotations

from enum import IntEnum


class Kind(IntEnum):
    """Message kind; its value is the MPI tag. Direction: up = client → server."""

    # Generator forward/backward (SPEC §1 steps 1 and 4).
    G_SMASHED = 10          # up: output of the client's G head
    G_BODY_OUT = 11         # down: output of the server's G body span
    G_BODY_GRAD = 12        # up: dLoss/d(G body output), from the G tail
    G_SMASHED_GRAD = 13     # down: dLoss/d(G head output)
    # Discriminator on generated images (step 2).
    D_FAKE_SMASHED = 20
    D_FAKE_BODY_OUT = 21
    D_FAKE_BODY_GRAD = 22
    D_FAKE_SMASHED_GRAD = 23
    # Discriminator on real images (step 3).
    D_REAL_SMASHED = 30
    D_REAL_BODY_OUT = 31
    D_REAL_BODY_GRAD = 32
    D_REAL_SMASHED_GRAD = 33
    # Discriminator pass of the generator step (step 4).
    D_GEN_SMASHED = 40
    D_GEN_BODY_OUT = 41
    D_GEN_BODY_GRAD = 42
    D_GEN_SMASHED_GRAD = 43
    # Evaluation: generation through the same U path, no gradients.
    EVAL_SMASHED = 50
    EVAL_BODY_OUT = 51
    # Federation (SPEC §3): flat float32 buffers of the client-hosted blocks.
    PARAMS_UP = 60
    PARAMS_DOWN = 61
    # Report plane.
    ROUND_STATS = 70        # up: float64 scalars (mean losses, seconds, bytes) for the round
    EVAL_SCALARS = 71       # up: float64 scalars (generation score, final metrics)
    SAMPLE_GRID = 72        # up: uint8 grid of generated images, only if evaluation.sample_grid

    @property
    def plane(self) -> str:
        return "report" if self.value >= 70 else "protocol"

    @property
    def label(self) -> str:
        return self.name.lower()
