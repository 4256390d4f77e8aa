"""The paper's 28x28x1 conditional GAN as ordered block lists (SPEC §2).

A *block* is a main layer with its norm and activation. Block 1 of each network takes the
labels as a second input (they enter there and must never leave the client); every other
block maps one tensor to one tensor. Hidden channel counts scale with ``width`` (1.0 is the
paper model, about 3M parameters); image channels, classes and ``z_dim`` do not. Image
channels and the number of classes come from the domain (1 and 10 for the MNIST family,
1 and 2 for PneumoniaMNIST); the image is always 28x28. The norm of blocks 2-4 (those a cut can leave on
the server) is BatchNorm unless ``model.body_norm`` chooses another (:mod:`.norms`).
"""
from __future__ import annotations

import torch
from torch import nn

from .norms import body_norm

Z_DIM = 100
N_CLASSES = 10


def scaled(channels: int, width: float) -> int:
    """Hidden channel count at ``width``: ``max(1, round(channels * width))``."""
    return max(1, int(round(channels * width)))


class GeneratorInput(nn.Module):
    """G block 1: Embedding(classes, classes) ⊕ z → Linear → BN1d → ReLU → (C, 7, 7).

    ``forward(z, labels)``: z float32 (B, z_dim), labels int64 (B,) → float32 (B, C, 7, 7).
    """

    def __init__(self, z_dim: int, n_classes: int, channels: int, side: int = 7):
        super().__init__()
        self.channels, self.side = channels, side
        self.embed = nn.Embedding(n_classes, n_classes)
        self.linear = nn.Linear(z_dim + n_classes, channels * side * side)
        self.norm = nn.BatchNorm1d(channels * side * side)
        self.act = nn.ReLU()

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.linear(torch.cat([z, self.embed(labels)], dim=1))
        return self.act(self.norm(h)).view(-1, self.channels, self.side, self.side)


class DiscriminatorInput(nn.Module):
    """D block 1: Embedding(classes, H·W) as a second image channel → Conv(4,2,1) → BN → LReLU(0.2).

    ``forward(x, labels)``: x float32 (B, C, H, W) in [-1, 1], labels int64 (B,) →
    float32 (B, out_channels, H/2, W/2).
    """

    def __init__(self, n_classes: int, image_shape: tuple[int, int, int], out_channels: int):
        super().__init__()
        c, h, w = image_shape
        self.h, self.w = h, w
        self.embed = nn.Embedding(n_classes, h * w)
        self.conv = nn.Conv2d(c + 1, out_channels, 4, 2, 1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        label_plane = self.embed(labels).view(-1, 1, self.h, self.w)
        return self.act(self.norm(self.conv(torch.cat([x, label_plane], dim=1))))


def _conv_block(conv: nn.Module, out_channels: int, act: nn.Module, norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(conv, body_norm(norm, out_channels), act)


def generator_blocks(width: float = 1.0, z_dim: int = Z_DIM, n_classes: int = N_CLASSES,
                     channels: int = 1, norm: str = "batch") -> list[nn.Module]:
    """The five generator blocks of SPEC §2 (output channels×28×28 in [-1, 1] via Tanh).

    ``norm`` is the norm of blocks 2-4 (:mod:`.norms`; ``"batch"`` is SPEC §2's).
    """
    c1, c2, c3, c4 = (scaled(c, width) for c in (256, 128, 128, 64))
    return [
        GeneratorInput(z_dim, n_classes, c1),
        _conv_block(nn.ConvTranspose2d(c1, c2, 4, 2, 1), c2, nn.ReLU(), norm),
        _conv_block(nn.ConvTranspose2d(c2, c3, 3, 1, 1), c3, nn.ReLU(), norm),
        _conv_block(nn.ConvTranspose2d(c3, c4, 4, 2, 1), c4, nn.ReLU(), norm),
        nn.Sequential(nn.ConvTranspose2d(c4, channels, 3, 1, 1), nn.Tanh()),
    ]


def discriminator_blocks(width: float = 1.0, n_classes: int = N_CLASSES, channels: int = 1,
                         norm: str = "batch") -> list[nn.Module]:
    """The five discriminator blocks of SPEC §2 (output (B, 1), a probability via Sigmoid).

    ``norm`` is the norm of blocks 2-4 (:mod:`.norms`; ``"batch"`` is SPEC §2's).
    """
    c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 128, 256))
    lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
    return [
        DiscriminatorInput(n_classes, (channels, 28, 28), c1),
        _conv_block(nn.Conv2d(c1, c2, 4, 2, 1), c2, lrelu(), norm),
        _conv_block(nn.Conv2d(c2, c3, 3, 1, 1), c3, lrelu(), norm),
        _conv_block(nn.Conv2d(c3, c4, 4, 2, 1), c4, lrelu(), norm),
        nn.Sequential(nn.Flatten(), nn.Linear(c4 * 3 * 3, 1), nn.Sigmoid()),
    ]
