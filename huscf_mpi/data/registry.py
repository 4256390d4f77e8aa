"""The image domains this package knows, their files and checksums (SPEC §4).

Checksums ship as package data (``checksums.json``, keyed ``<folder>/<file>``), copied from
the shared data README / ``verify.py``.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from .errors import DataError

_TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
_TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
_TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
_TEST_LABELS = "t10k-labels-idx1-ubyte.gz"


@lru_cache(maxsize=1)
def _checksums() -> Mapping[str, str]:
    text = resources.files(__package__).joinpath("checksums.json").read_text(encoding="utf-8")
    return MappingProxyType(json.loads(text))


@dataclass(frozen=True)
class DomainSpec:
    """One image domain and the files it is read from.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"mnist"``.
    folder : str
        Sub-folder of the data root holding the files.
    train_images, train_labels : str or None
        File names of the official training split; None for a ``pool`` domain.
    test_images, test_labels : str
        File names of the test split, or of the single pool for a ``pool`` domain.
    sha256 : Mapping[str, str]
        Expected sha256 (hex) of every file this domain reads, keyed by file name.
    n_classes : int
        Number of labels (labels are ``0 .. n_classes-1``).
    image_shape : tuple of int
        (C, H, W) of one image as the models see it: (1, 28, 28).
    class_names : tuple of str
        Human-readable name of each label.
    pool : bool
        True when only one pool of images is available here; it is split 80/20 into
        train/test by a seeded permutation (SPEC §4) in ``load_domain``.
    """

    name: str
    folder: str
    train_images: str | None
    train_labels: str | None
    test_images: str
    test_labels: str
    n_classes: int
    class_names: tuple[str, ...]
    pool: bool = False
    image_shape: tuple[int, int, int] = (1, 28, 28)
    sha256: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)

    @property
    def files(self) -> tuple[str, ...]:
        """File names this domain needs, in the order they are read (images before labels)."""
        names = (self.train_images, self.train_labels, self.test_images, self.test_labels)
        return tuple(n for n in names if n is not None)


def _domain(name: str, *, classes: tuple[str, ...], pool: bool = False, folder: str | None = None) -> DomainSpec:
    folder = folder or name
    train = (None, None) if pool else (_TRAIN_IMAGES, _TRAIN_LABELS)
    spec = DomainSpec(name, folder, *train, _TEST_IMAGES, _TEST_LABELS, n_classes=len(classes),
                      class_names=classes, pool=pool)
    sums = _checksums()
    missing = [f"{folder}/{f}" for f in spec.files if f"{folder}/{f}" not in sums]
    if missing:  # a packaging bug, not a user error
        raise RuntimeError(f"checksums.json lacks {missing}")
    return replace(spec, sha256=MappingProxyType({f: sums[f"{folder}/{f}"] for f in spec.files}))


DOMAINS: dict[str, DomainSpec] = {
    "mnist": _domain("mnist", classes=tuple(str(d) for d in range(10))),
    "fashion_mnist": _domain("fashion_mnist", classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    # KMNIST's training images could not be obtained here (only its labels), so the 10,000
    # official test images are the pool and are split 80/20 like notMNIST.
    "kmnist": _domain("kmnist", pool=True, classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
    # A 10,000-image subset of notMNIST_small, which has no official split.
    "notmnist": _domain("notmnist", pool=True, classes=tuple("ABCDEFGHIJ")),
}


def get_domain(name: str) -> DomainSpec:
    """Return the registered domain ``name``.

    Raises
    ------
    DataError
        If ``name`` is not registered; the message lists the known names.
    """
    try:
        return DOMAINS[name]
    except KeyError:
        raise DataError(f"unknown domain {name!r}: known domains are {', '.join(DOMAINS)}") from None


def domain_key(name: str) -> int:
    """A stable 32-bit integer for ``name`` (CRC-32), used to key per-domain random streams.

    Unlike ``hash()``, it is the same in every process and Python version, so every MPI rank
    derives the same stream.
    """
    return zlib.crc32(name.encode("utf-8"))
