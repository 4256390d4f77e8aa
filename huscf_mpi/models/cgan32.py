"""A DCGAN-style conditional GAN for 32x32 images (CIFAR-10; issue 8), as ordered block lists.

Same contract as :mod:`.cgan28` (SPEC §2): five blocks per network, labels enter at block 1
of each and the loss follows block 5, so both stay on the client; block 3 is pinned to the
server (clustering reads D block 3); blocks 2 and 4 are the movable ones. DCGAN layout: the
generator starts from 4x4 and every block doubles the side with a stride-2 transposed
convolution, the discriminator halves it with stride-2 convolutions; BatchNorm and ReLU /
LeakyReLU(0.2) as in cgan28. Channel counts at width 1.0 (about 3.6M G + 2.8M D parameters):

| block | generator | out | discriminator | out |
|---|---|---|---|---|
| 1 | Embedding(K,K) ⊕ z → Linear(z+K, 512·4·4) + BN1d + ReLU | 512×4×4 | Embedding(K,1024) as an extra channel → Conv(C+1,64,4,2,1) + BN + LReLU | 64×16×16 |
| 2 | ConvT(512,256,4,2,1) + BN + ReLU | 256×8×8 | Conv(64,128,4,2,1) + BN + LReLU | 128×8×8 |
| 3 | ConvT(256,128,4,2,1) + BN + ReLU | 128×16×16 | Conv(128,256,4,2,1) + BN + LReLU | 256×4×4 |
| 4 | ConvT(128,64,4,2,1) + BN + ReLU | 64×32×32 | Conv(256,512,4,2,1) + BN + LReLU | 512×2×2 |
| 5 | ConvT(64,C,3,1,1) + Tanh | C×32×32 | Flatten → Linear(2048,1) → Sigmoid | 1 |

C (image channels, 3 for CIFAR-10) and K (classes) come from the domain; hidden channels scale
with ``width``; the BN of blocks 2-4 is ``model.body_norm``'s choice (:mod:`.norms`).
"""
from __future__ import annotations

from torch import nn

from .cgan28 import DiscriminatorInput, GeneratorInput, _conv_block, scaled

SIDE = 32
Z_DIM = 100


def generator_blocks(width: float = 1.0, z_dim: int = Z_DIM, n_classes: int = 10, channels: int = 3,
                     norm: str = "batch") -> list[nn.Module]:
    """The five generator blocks (output channels×32×32 in [-1, 1] via Tanh); ``norm``: blocks 2-4's."""
    c1, c2, c3, c4 = (scaled(c, width) for c in (512, 256, 128, 64))
    return [
        GeneratorInput(z_dim, n_classes, c1, side=4),
        _conv_block(nn.ConvTranspose2d(c1, c2, 4, 2, 1), c2, nn.ReLU(), norm),
        _conv_block(nn.ConvTranspose2d(c2, c3, 4, 2, 1), c3, nn.ReLU(), norm),
        _conv_block(nn.ConvTranspose2d(c3, c4, 4, 2, 1), c4, nn.ReLU(), norm),
        nn.Sequential(nn.ConvTranspose2d(c4, channels, 3, 1, 1), nn.Tanh()),
    ]


def discriminator_blocks(width: float = 1.0, n_classes: int = 10, channels: int = 3,
                         norm: str = "batch") -> list[nn.Module]:
    """The five discriminator blocks (output (B, 1), a probability via Sigmoid); ``norm``: blocks 2-4's."""
    c1, c2, c3, c4 = (scaled(c, width) for c in (64, 128, 256, 512))
    lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
    return [
        DiscriminatorInput(n_classes, (channels, SIDE, SIDE), c1),
        _conv_block(nn.Conv2d(c1, c2, 4, 2, 1), c2, lrelu(), norm),
        _conv_block(nn.Conv2d(c2, c3, 4, 2, 1), c3, lrelu(), norm),
        _conv_block(nn.Conv2d(c3, c4, 4, 2, 1), c4, lrelu(), norm),
        nn.Sequential(nn.Flatten(), nn.Linear(c4 * 2 * 2, 1), nn.Sigmoid()),
    ]
