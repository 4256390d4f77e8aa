"""Classifier networks used for evaluation (SPEC §6).

Two fixed architectures, both for single-channel 28x28 images scaled to [-1, 1] exactly as the
GAN sees them:

* :class:`DomainClassifier` -- trained on a domain's real training set; gives p(y|x) for the
  generation score and, through :meth:`DomainClassifier.features`, the 128-d penultimate
  features of the default "domain-classifier FID" (Inception-v3 weights cannot be downloaded).
* :class:`SyntheticCNN` -- trained on generated samples and tested on the real test set
  ("classification on synthetic data").
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DomainClassifier", "SyntheticCNN"]


def _build_seeded(build, seed: int | None):
    """Run ``build()`` with the global torch RNG seeded to ``seed`` and restored afterwards.

    Layer constructors draw their initial weights from the global CPU generator; forking it keeps
    a seeded construction reproducible without shifting anyone else's random stream.
    """
    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


class DomainClassifier(nn.Module):
    """Domain classifier of SPEC §6, also the feature extractor of the domain-classifier FID.

    Conv(1,32,3) → ReLU → MaxPool2 → Conv(32,64,3) → ReLU → MaxPool2 → FC(1600,128) → ReLU →
    FC(128,n_classes). No padding: 28 → 26 → 13 → 11 → 5, hence 64·5·5 = 1600 inputs to FC1.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits K.
    seed : int or None, default=None
        If given, initial weights are drawn from ``torch.manual_seed(seed)`` inside a forked RNG,
        so construction is reproducible and the global torch RNG is left untouched.

    Notes
    -----
    Input: float32 tensor of shape (N, 1, 28, 28) with values in [-1, 1]
    (``(x / 255) * 2 - 1`` for uint8 pixels). :meth:`forward` returns logits (N, K);
    :meth:`features` returns the (N, 128) penultimate activations (after ReLU).
    """

    #: Bump whenever the architecture or its preprocessing changes: it is part of the cache key
    #: of :func:`huscf_mpi.metrics.load_or_train_domain_classifier`, so stale weights are never
    #: loaded into a different network.
    VERSION = 1
    FEATURE_DIM = 128

    def __init__(self, n_classes: int = 10, *, seed: int | None = None) -> None:
        super().__init__()
        self.n_classes = int(n_classes)

        def build():
            self.conv = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(1600, self.FEATURE_DIM), nn.ReLU(),
            )
            self.head = nn.Linear(self.FEATURE_DIM, self.n_classes)

        _build_seeded(build, seed)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape (N, 128), float32 -- the domain-classifier FID features."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, n_classes), float32."""
        return self.head(self.features(x))


class SyntheticCNN(nn.Module):
    """CNN of SPEC §6 "classification on synthetic data".

    Conv(1,32,3,p1) → ReLU → MaxPool2 → Conv(32,64,3,p1) → ReLU → MaxPool2 → FC(3136,128) →
    ReLU → FC(128,n_classes). Padding 1 keeps 28 → 28 → 14 → 14 → 7, hence 64·7·7 = 3136.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits K.
    seed : int or None, default=None
        Reproducible initialisation without touching the global torch RNG (see
        :class:`DomainClassifier`).

    Notes
    -----
    Input: float32 (N, 1, 28, 28) in [-1, 1]; output: logits (N, n_classes).
    """

    def __init__(self, n_classes: int = 10, *, seed: int | None = None) -> None:
        super().__init__()
        self.n_classes = int(n_classes)

        def build():
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(3136, 128), nn.ReLU(),
                nn.Linear(128, self.n_classes),
            )

        _build_seeded(build, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, n_classes), float32."""
        return self.net(x)
