"""The image domains this package knows, their files, readers and checksums (SPEC §4).

Checksums ship as package data (``checksums.json``, keyed ``<folder>/<file>``), copied from
the shared data README / ``verify.py``. Each domain names a *reader* (``data/readers.py``)
that decodes its files into uint8 images and int64 labels per split: ``idx`` (the MNIST
family), ``npy_xz`` (CIFAR-10), ``medmnist_npz`` (any MedMNIST ``.npz``, grey or RGB) and
``fsdd_zip`` (spoken digits as log-mel spectrogram images, ``data/audio.py``).

Adding a dataset is one entry here plus its checksums; a new format adds a reader. SVHN,
BloodMNIST and DermaMNIST are not registered because their files could not be obtained here
(see :data:`UNAVAILABLE`): BloodMNIST/DermaMNIST need only a ``medmnist_npz`` entry
(``image_shape=(3, 28, 28)``) once their ``.npz`` and its sha256 exist; SVHN needs a reader
for its ``.mat`` files.
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
        IDX domains: file names of the official training split; None for a ``pool`` domain
        and for other readers.
    test_images, test_labels : str or None
        IDX domains: file names of the test split, or of the single pool for a ``pool``
        domain; None for other readers.
    sha256 : Mapping[str, str]
        Expected sha256 (hex) of every file this domain reads, keyed by file name.
    n_classes : int
        Number of labels (labels are ``0 .. n_classes-1``).
    image_shape : tuple of int
        (C, H, W) of one image as the models see it, e.g. (1, 28, 28) or (3, 32, 32). The
        decoded cache stores (N, H, W) when C == 1, else (N, C, H, W).
    class_names : tuple of str
        Human-readable name of each label.
    pool : bool
        True when only one pool of images is available here; it is split 80/20 into
        train/test by a seeded permutation (SPEC §4) in ``load_domain``.
    reader : str
        Key of the reader in ``data/readers.py`` that decodes the files.
    sources : tuple of str
        The files a non-IDX reader reads (IDX domains derive them from the four names).
    modality : {"image", "audio"}
        What an image of this domain shows. ``"audio"``: a log-mel spectrogram
        (``data/audio.py``) that the final evaluation turns back into sound.
    """

    name: str
    folder: str
    train_images: str | None
    train_labels: str | None
    test_images: str | None
    test_labels: str | None
    n_classes: int
    class_names: tuple[str, ...]
    pool: bool = False
    image_shape: tuple[int, int, int] = (1, 28, 28)
    sha256: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    reader: str = "idx"
    sources: tuple[str, ...] = ()
    modality: str = "image"

    @property
    def files(self) -> tuple[str, ...]:
        """File names this domain needs, in the order they are read (images before labels)."""
        if self.reader != "idx":
            return self.sources
        names = (self.train_images, self.train_labels, self.test_images, self.test_labels)
        return tuple(n for n in names if n is not None)


def _domain(name: str, *, classes: tuple[str, ...], pool: bool = False, folder: str | None = None) -> DomainSpec:
    """An IDX domain (the MNIST family, 1x28x28)."""
    folder = folder or name
    train = (None, None) if pool else (_TRAIN_IMAGES, _TRAIN_LABELS)
    spec = DomainSpec(name, folder, *train, _TEST_IMAGES, _TEST_LABELS, n_classes=len(classes),
                      class_names=classes, pool=pool)
    return _with_checksums(spec)


def _other(name: str, *, reader: str, files: tuple[str, ...], image_shape: tuple[int, int, int],
           classes: tuple[str, ...], folder: str | None = None, modality: str = "image") -> DomainSpec:
    """A domain decoded by a non-IDX reader from ``files`` (official train/test splits)."""
    spec = DomainSpec(name, folder or name, None, None, None, None, n_classes=len(classes), class_names=classes,
                      image_shape=image_shape, reader=reader, sources=tuple(files), modality=modality)
    return _with_checksums(spec)


def _with_checksums(spec: DomainSpec) -> DomainSpec:
    folder = spec.folder
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
    # NHWC uint8 .npy compressed with xz; stored (N, 3, 32, 32).
    "cifar10": _other("cifar10", reader="npy_xz", image_shape=(3, 32, 32),
                      files=("train_images.npy.xz", "train_labels.npy", "test_images.npy.xz", "test_labels.npy"),
                      classes=("airplane", "automobile", "bird", "cat", "deer",
                               "dog", "frog", "horse", "ship", "truck")),
    # MedMNIST v2 official train/test splits; the val split is not read.
    "pneumoniamnist": _other("pneumoniamnist", reader="medmnist_npz", folder="medmnist", image_shape=(1, 28, 28),
                             files=("pneumoniamnist.npz",), classes=("normal", "pneumonia")),
    # 3,000 WAVs -> 28x28 log-mel spectrograms (data/audio.py); test = recordings 0-4 of each
    # speaker and digit, the dataset's own rule.
    "fsdd": _other("fsdd", reader="fsdd_zip", image_shape=(1, 28, 28), files=("recordings.zip",),
                   classes=tuple(str(d) for d in range(10)), modality="audio"),
}

# Domains of the paper whose files could not be obtained here: named so that asking for one
# gives the reason, not "unknown domain". Never faked.
UNAVAILABLE: dict[str, str] = {
    "svhn": "SVHN's .mat files could not be obtained here (no reader yet)",
    "bloodmnist": "bloodmnist.npz (MedMNIST v2) could not be obtained here",
    "dermamnist": "dermamnist.npz (MedMNIST v2) could not be obtained here",
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
        if name in UNAVAILABLE:
            raise DataError(f"domain {name!r} is not available: {UNAVAILABLE[name]}; it needs a registry entry "
                            f"with its checksums (huscf_mpi/data/registry.py); available: {', '.join(DOMAINS)}") from None
        raise DataError(f"unknown domain {name!r}: known domains are {', '.join(DOMAINS)}") from None


def domain_key(name: str) -> int:
    """A stable 32-bit integer for ``name`` (CRC-32), used to key per-domain random streams.

    Unlike ``hash()``, it is the same in every process and Python version, so every MPI rank
    derives the same stream.
    """
    return zlib.crc32(name.encode("utf-8"))
