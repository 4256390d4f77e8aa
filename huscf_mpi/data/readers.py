"""Readers: a domain's source files -> uint8 images and int64 labels per split (SPEC §4, issue 8).

Each reader takes the domain's spec and ``{file name: path}`` (already present, checksummed
when asked) and returns a :class:`Decoded`: ``{"train": (images, labels), "test": ...}``, or
``{"pool": ...}`` for a pool domain, plus JSON-ready ``meta`` stored in the decoded cache's
manifest (FSDD's dB range, needed to turn generated spectrograms back into sound).

:func:`decode` runs the domain's reader and checks the result once, for every format: images
uint8 of shape (N, H, W) for one channel or (N, C, H, W) otherwise, matching the spec's
``image_shape``; labels int64 (N,) in ``0 .. n_classes-1``.

A file that is truncated or corrupt in any way the format can detect gives a
:class:`DataError` naming the file and the fix, one line (with ``verify`` on, a damaged file
is caught earlier still by its sha256).
"""
from __future__ import annotations

import io
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DataError
from .idx import read_idx
from .registry import DomainSpec

Pair = tuple[np.ndarray, np.ndarray]

# Errors a damaged file raises from the standard decoders; each becomes one DataError line.
_DECODE_ERRORS = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, lzma.LZMAError, zlib.error)


@dataclass
class Decoded:
    """A domain's decoded splits (``train``/``test`` or ``pool``) and reader metadata."""

    splits: dict[str, Pair]
    meta: dict = field(default_factory=dict)


def _corrupt(path: Path, exc: BaseException) -> DataError:
    detail = str(exc).strip() or type(exc).__name__
    return DataError(f"cannot decode {path} ({type(exc).__name__}: {detail}): the file is truncated or corrupt; "
                     "replace it with a good copy (sha256 in the data README; verify.py checks it)")


def _read_idx(spec: DomainSpec, paths: dict[str, Path]) -> Decoded:
    def pair(images: str, labels: str) -> Pair:
        return read_idx(paths[images]), read_idx(paths[labels])

    if spec.pool:
        return Decoded({"pool": pair(spec.test_images, spec.test_labels)})
    return Decoded({"train": pair(spec.train_images, spec.train_labels),
                    "test": pair(spec.test_images, spec.test_labels)})


def _load_npy(path: Path, xz: bool) -> np.ndarray:
    try:
        if xz:
            with lzma.open(path) as f:
                raw = f.read()
            return np.load(io.BytesIO(raw), allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except _DECODE_ERRORS as e:
        raise _corrupt(path, e) from None


def _read_npy_xz(spec: DomainSpec, paths: dict[str, Path]) -> Decoded:
    """CIFAR-10 layout: ``{split}_images.npy.xz`` (uint8 NHWC) and ``{split}_labels.npy``."""
    out = {}
    for split in ("train", "test"):
        images = _load_npy(paths[f"{split}_images.npy.xz"], xz=True)
        labels = _load_npy(paths[f"{split}_labels.npy"], xz=False)
        if images.ndim == 4 and images.shape[-1] == spec.image_shape[0]:
            images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # NHWC -> NCHW
        out[split] = (images, labels)
    return Decoded(out)


def _read_medmnist_npz(spec: DomainSpec, paths: dict[str, Path]) -> Decoded:
    """A MedMNIST v2 ``.npz``: official ``train``/``test`` (``val`` is not read).

    Grey sets hold (N, H, W) images, RGB sets (BloodMNIST, DermaMNIST) (N, H, W, 3); labels
    are (N, 1).
    """
    (path,) = (paths[f] for f in spec.files)
    out = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for split in ("train", "test"):
                images, labels = z[f"{split}_images"], z[f"{split}_labels"]
                if images.ndim == 4 and images.shape[-1] == spec.image_shape[0]:
                    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
                out[split] = (images, labels.reshape(len(labels), -1)[:, 0] if labels.ndim == 2 else labels)
    except _DECODE_ERRORS as e:
        raise _corrupt(path, e) from None
    return Decoded(out)


_FSDD_NAME = re.compile(r"(?:^|/)(\d)_([A-Za-z]+)_(\d+)\.wav$")
FSDD_TEST_INDICES = range(5)  # the dataset's own rule: recordings 0-4 of each speaker and digit


def fsdd_split(index: int) -> str:
    """``"test"`` for recording indices 0-4 (of each speaker and digit), else ``"train"``."""
    return "test" if index in FSDD_TEST_INDICES else "train"


def _read_fsdd_zip(spec: DomainSpec, paths: dict[str, Path]) -> Decoded:
    """The FSDD zip of WAVs -> 28x28 log-mel spectrogram images (``data/audio.py``).

    Clips are ordered by (digit, speaker, index). The dB range comes from the training clips
    only and is recorded in ``meta`` with the spectrogram parameters; ``meta["speakers"]``
    lists each split's speaker per image (for analysis; not a label).
    """
    from . import audio

    (path,) = (paths[f] for f in spec.files)
    mel = audio.DEFAULT
    clips: dict[str, list[tuple[int, str, int, np.ndarray]]] = {"train": [], "test": []}
    try:
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                m = _FSDD_NAME.search(name)
                if not m:
                    continue
                digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
                y, rate = audio.read_wav(z.read(name), name)
                if rate != mel.sample_rate:
                    raise ValueError(f"{name}: sample rate {rate} Hz, expected {mel.sample_rate}")
                clips[fsdd_split(index)].append((digit, speaker, index, y))
    except _DECODE_ERRORS as e:
        raise _corrupt(path, e) from None
    if not clips["train"] or not clips["test"]:
        raise DataError(f"{path}: no {'training' if not clips['train'] else 'test'} recordings "
                        "({digit}_{speaker}_{index}.wav) found; replace it with the FSDD recordings zip")
    db, labels, speakers = {}, {}, {}
    for split, items in clips.items():
        items.sort(key=lambda t: t[:3])
        db[split] = np.stack([audio.log_mel(y, mel) for *_, y in items])
        labels[split] = np.array([t[0] for t in items], dtype=np.int64)
        speakers[split] = [t[1] for t in items]
    lo, hi = audio.db_range(db["train"], mel)
    splits = {s: (audio.to_image(db[s], lo, hi), labels[s]) for s in db}
    meta = {"kind": "log-mel spectrogram", "db_lo": lo, "db_hi": hi, "mel": mel.as_dict(), "speakers": speakers}
    return Decoded(splits, meta)


READERS: dict[str, Callable[[DomainSpec, dict[str, Path]], Decoded]] = {
    "idx": _read_idx,
    "npy_xz": _read_npy_xz,
    "medmnist_npz": _read_medmnist_npz,
    "fsdd_zip": _read_fsdd_zip,
}


def _stored_shape(spec: DomainSpec) -> tuple[int, ...]:
    c, h, w = spec.image_shape
    return (h, w) if c == 1 else (c, h, w)


def decode(spec: DomainSpec, paths: dict[str, Path]) -> Decoded:
    """Decode ``spec``'s files with its reader and check every split.

    Returns
    -------
    Decoded
        Images uint8, (N, H, W) for one channel else (N, C, H, W); labels int64 (N,).

    Raises
    ------
    DataError
        A truncated or corrupt file, or arrays of the wrong dtype, shape or label range
        (names the file and the fix).
    """
    try:
        reader = READERS[spec.reader]
    except KeyError:
        raise RuntimeError(f"domain {spec.name}: no reader {spec.reader!r} (have {', '.join(READERS)})") from None
    out = reader(spec, paths)
    where = ", ".join(str(paths[f]) for f in spec.files)
    want = _stored_shape(spec)
    for split, (images, labels) in out.splits.items():
        if images.dtype != np.uint8 or images.shape[1:] != want:
            raise DataError(f"{where}: expected uint8 {split} images of shape (N, {', '.join(map(str, want))}), "
                            f"got {images.dtype} {images.shape}; replace the file with a good copy")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{where}: expected {len(images)} {split} labels to match the images, got shape "
                            f"{labels.shape}; replace the file with a good copy")
        labels = labels.astype(np.int64)
        if len(labels) and (labels.min() < 0 or labels.max() >= spec.n_classes):
            raise DataError(f"{where}: labels must lie in 0..{spec.n_classes - 1}, got {labels.min()}..{labels.max()}")
        out.splits[split] = (images, labels)
    return out
