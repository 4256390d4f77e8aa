"""Load one domain from the data root, verified, split into train and test (SPEC §4)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import seeding
from .errors import DataError
from .registry import DomainSpec, domain_key, get_domain
from .root import ENV_VAR

OFFICIAL = "official"
POOL_SPLIT = "pool-80/20"
POOL_STREAM = "pool-split"
TRAIN_FRACTION = 0.8

# (path, size, mtime_ns) -> sha256 hex; hashing ~40 MB per domain is worth doing once per process.
_HASH_CACHE: dict[tuple[str, int, int], str] = {}


@dataclass
class DomainData:
    """A domain's images and labels, split into train and test.

    Attributes
    ----------
    name : str
        Domain name (registry key).
    train_images : ndarray of uint8, shape (N, H, W), or (N, C, H, W) when C > 1
    train_labels : ndarray of int64, shape (N,)
    test_images : ndarray of uint8, shape (M, H, W) or (M, C, H, W)
    test_labels : ndarray of int64, shape (M,)
    split : {"official", "pool-80/20"}
        Which split was used; recorded in the result file.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    split: str


def sha256_file(path: Path) -> str:
    """Hex sha256 of ``path``, cached per process by (path, size, mtime)."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def _check_files(spec: DomainSpec, root: Path, verify: bool) -> dict[str, Path]:
    paths = {f: root / spec.folder / f for f in spec.files}
    for name, path in paths.items():
        if not path.is_file():
            raise DataError(
                f"missing dataset file {path}: put the {spec.name} files ({', '.join(spec.files)}) "
                f"in <root>/{spec.folder}/ or pass --data-root (env {ENV_VAR})"
            )
    if verify:
        for name, path in paths.items():
            got, expected = sha256_file(path), spec.sha256[name]
            if got != expected:
                raise DataError(
                    f"sha256 mismatch for {path}: expected {expected}, got {got}; "
                    "replace the file with the original (see the data README)"
                )
    return paths


def _decode(spec: DomainSpec, paths: dict[str, Path]):
    from .readers import decode  # imports the audio code only when a domain needs it

    return decode(spec, paths)


def pool_split_indices(n: int, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 80/20 split of a pool of ``n`` images of domain ``name``.

    Returns
    -------
    train, test : ndarray of int64
        Disjoint indices covering ``range(n)``; ``len(train) == floor(0.8 * n)``. The
        permutation comes from ``seeding.rng(seed, "pool-split", domain_key(name))``, so the
        same seed gives the same split on every rank and in every run.
    """
    perm = seeding.rng(seed, POOL_STREAM, domain_key(name)).permutation(n).astype(np.int64)
    n_train = int(n * TRAIN_FRACTION)
    return perm[:n_train], perm[n_train:]


def load_domain(name: str, root: Path, seed: int, verify: bool = True) -> DomainData:
    """Load domain ``name`` from ``root`` (a data root as returned by ``resolve_data_root``).

    Parameters
    ----------
    name : str
        Registered domain name (``DOMAINS``).
    root : Path
        Folder holding ``<folder>/`` of each domain.
    seed : int
        Run seed; only used by pool domains, for the 80/20 split.
    verify : bool, default True
        Check each file's sha256 against ``checksums.json`` (cached per process).

    Returns
    -------
    DomainData
        ``split`` is ``"official"`` for domains with a train file, ``"pool-80/20"`` otherwise.

    Raises
    ------
    DataError
        Unknown domain; a needed file missing (names it and how to supply it); a checksum
        mismatch (names the file, expected and actual sha256); a malformed file.
    """
    spec = get_domain(name)
    splits = _decode(spec, _check_files(spec, Path(root), verify)).splits
    if not spec.pool:
        return DomainData(name, *splits["train"], *splits["test"], OFFICIAL)
    images, labels = splits["pool"]
    train, test = pool_split_indices(len(images), name, seed)
    return DomainData(name, images[train], labels[train], images[test], labels[test], POOL_SPLIT)


def open_domain(name: str, cache: Path, seed: int) -> DomainData:
    """Domain ``name`` from the decoded-data cache (built by :func:`~huscf_mpi.data.cache.ensure_decoded`).

    Same arrays as :func:`load_domain` on the verified sources, but official splits are
    read-only memory maps shared through the page cache (a pool domain's 80/20 split is a
    copy). Raises :class:`DataError` if the cache folder is missing or incomplete.
    """
    from .cache import open_decoded

    a = open_decoded(name, cache)
    if "pool-images" not in a:
        return DomainData(name, a["train-images"], a["train-labels"], a["test-images"], a["test-labels"], OFFICIAL)
    train, test = pool_split_indices(len(a["pool-labels"]), name, seed)
    images, labels = a["pool-images"], a["pool-labels"]
    return DomainData(name, images[train], labels[train], images[test], labels[test], POOL_SPLIT)


def load_shard(name: str, cache: Path, seed: int, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One client's shard from the decoded-data cache, copying only its rows.

    Parameters
    ----------
    indices : ndarray of int64, shape (n,)
        Rows of the domain's training split (as drawn by ``partition``).

    Returns
    -------
    images : ndarray of uint8, shape (n, H, W), or (n, C, H, W) when C > 1
    labels : ndarray of int64, shape (n,)
        Equal to ``load_domain(...).train_images[indices]`` and ``.train_labels[indices]``.
    """
    from .cache import open_decoded

    a = open_decoded(name, cache)
    if "pool-images" in a:
        rows = pool_split_indices(len(a["pool-labels"]), name, seed)[0][indices]
        return np.array(a["pool-images"][rows]), np.array(a["pool-labels"][rows])
    return np.array(a["train-images"][indices]), np.array(a["train-labels"][indices])


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images to float32 in [-1, 1] with a channel axis: ``(x / 255) * 2 - 1``.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, H, W) or (N, C, H, W)

    Returns
    -------
    ndarray of float32, shape (N, 1, H, W) (or (N, C, H, W) if given with channels)

    Raises
    ------
    TypeError
        If ``images`` is not uint8.
    ValueError
        If ``images`` is not 3- or 4-dimensional.
    """
    if images.dtype != np.uint8:
        raise TypeError(f"to_unit_range expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim != 4:
        raise ValueError(f"to_unit_range expects shape (N, H, W) or (N, C, H, W), got {images.shape}")
    # Divide first (as the reference's ToTensor + Normalize(0.5, 0.5)): 255 maps to exactly 1.0.
    out = images.astype(np.float32)
    out /= np.float32(255.0)
    out *= np.float32(2.0)
    out -= np.float32(1.0)
    return out
