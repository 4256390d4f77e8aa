"""Classifier networks used for evaluation (SPEC §6).

Two networks, for images scaled to [-1, 1] exactly as the GAN sees them. Both are the SPEC §6
networks for the single-channel 28x28 domains (the MNIST family, PneumoniaMNIST with 2
classes, FSDD spectrograms); other image shapes (``image_shape=(C, H, W)``) get the same
design with C input channels, except that the domain classifier of 32x32 images (CIFAR-10) is
a deeper small CNN (:data:`CNN32`), since two convolutions are too weak a yardstick there:

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


def _check_shape(image_shape) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in image_shape)
    if c < 1 or h < 10 or w < 10:
        raise ValueError(f"image_shape must be (C, H, W) with C >= 1 and H, W >= 10, got {tuple(image_shape)}")
    return c, h, w


#: The domain classifier of 32x32 images (CIFAR-10): three conv stages of two 3x3 convolutions
#: (BatchNorm, ReLU) and a 2x2 max-pool each, 32 → 16 → 8 → 4, then FC(128·4·4, 128) → ReLU →
#: FC(128, K). About 0.55M parameters, cheap enough to train on CPU once per cache key.
CNN32 = "cnn32"
SPEC28 = "spec"


class DomainClassifier(nn.Module):
    """Domain classifier of SPEC §6, also the feature extractor of the domain-classifier FID.

    Single-channel 28x28 (the SPEC network): Conv(1,32,3) → ReLU → MaxPool2 → Conv(32,64,3) →
    ReLU → MaxPool2 → FC(1600,128) → ReLU → FC(128,n_classes). No padding: 28 → 26 → 13 → 11
    → 5, hence 64·5·5 = 1600 inputs to FC1. Other shapes: the same with C input channels and
    FC1 sized to fit, except 32x32 images, which get :data:`CNN32`.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits K.
    seed : int or None, default=None
        If given, initial weights are drawn from ``torch.manual_seed(seed)`` inside a forked RNG,
        so construction is reproducible and the global torch RNG is left untouched.
    image_shape : (C, H, W), default (1, 28, 28)
        Shape of one input image.

    Notes
    -----
    Input: float32 tensor of shape (N, C, H, W) with values in [-1, 1]
    (``(x / 255) * 2 - 1`` for uint8 pixels). :meth:`forward` returns logits (N, K);
    :meth:`features` returns the (N, 128) penultimate activations (after ReLU).
    """

    #: Bump whenever the architecture or its preprocessing changes: it is part of the cache key
    #: of :func:`huscf_mpi.metrics.load_or_train_domain_classifier`, so stale weights are never
    #: loaded into a different network.
    VERSION = 1
    FEATURE_DIM = 128

    def __init__(self, n_classes: int = 10, *, seed: int | None = None,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.image_shape = c, h, w = _check_shape(image_shape)
        self.layout = self.layout_for(self.image_shape)

        def build():
            if self.layout == CNN32:
                stages, cin = [], c
                for cout in (32, 64, 128):
                    stages += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                               nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
                    cin = cout
                self.conv = nn.Sequential(*stages, nn.Flatten(), nn.Linear(128 * 4 * 4, self.FEATURE_DIM), nn.ReLU())
            else:
                side = lambda n: ((n - 2) // 2 - 2) // 2  # noqa: E731  (valid conv, pool, valid conv, pool)
                self.conv = nn.Sequential(
                    nn.Conv2d(c, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                    nn.Flatten(),
                    nn.Linear(64 * side(h) * side(w), self.FEATURE_DIM), nn.ReLU(),
                )
            self.head = nn.Linear(self.FEATURE_DIM, self.n_classes)

        _build_seeded(build, seed)

    @staticmethod
    def layout_for(image_shape) -> str:
        """:data:`CNN32` for 32x32 images, else :data:`SPEC28` (the SPEC design)."""
        return CNN32 if tuple(image_shape)[1:] == (32, 32) else SPEC28

    @classmethod
    def version_tag(cls, image_shape=(1, 28, 28)):
        """Part of the classifier cache key: :attr:`VERSION` for the SPEC network on 1x28x28
        (keys unchanged from before other shapes existed), else layout, shape and version."""
        shape = _check_shape(image_shape)
        if shape == (1, 28, 28):
            return cls.VERSION
        return f"{cls.layout_for(shape)}-{'x'.join(map(str, shape))}-v{cls.VERSION}"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, shape (N, 128), float32 -- the domain-classifier FID features."""
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, n_classes), float32."""
        return self.head(self.features(x))


class SyntheticCNN(nn.Module):
    """CNN of SPEC §6 "classification on synthetic data".

    Conv(C,32,3,p1) → ReLU → MaxPool2 → Conv(32,64,3,p1) → ReLU → MaxPool2 → FC(64·(H/4)·(W/4),128)
    → ReLU → FC(128,n_classes). Padding 1 keeps 28 → 28 → 14 → 14 → 7, hence 64·7·7 = 3136 for
    the SPEC's 1x28x28 (C = 1); 4096 for 3x32x32.

    Parameters
    ----------
    n_classes : int, default=10
        Number of output logits K.
    seed : int or None, default=None
        Reproducible initialisation without touching the global torch RNG (see
        :class:`DomainClassifier`).
    image_shape : (C, H, W), default (1, 28, 28)

    Notes
    -----
    Input: float32 (N, C, H, W) in [-1, 1]; output: logits (N, n_classes).
    """

    def __init__(self, n_classes: int = 10, *, seed: int | None = None,
                 image_shape: tuple[int, int, int] = (1, 28, 28)) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.image_shape = c, h, w = _check_shape(image_shape)

        def build():
            self.net = nn.Sequential(
                nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(),
                nn.Linear(128, self.n_classes),
            )

        _build_seeded(build, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, n_classes), float32."""
        return self.net(x)
