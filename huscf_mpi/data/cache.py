"""Decoded-dataset cache: each domain's files decoded once per machine into ``.npy`` files.

Reading a domain means decompressing and parsing its files (~50 MB of IDX for MNIST, 150 MB
of CIFAR-10 pixels, 3,000 WAVs turned into spectrograms for FSDD; ``data/readers.py``); done on every rank, a
100-client run decodes the same arrays 100 times and keeps 100 private copies of them. Instead
one rank per node (the node leader, see ``roles/setup.py``) makes sure the cache holds the
domain, and every rank memory-maps the uncompressed arrays read-only: their pages live once
in the page cache, shared by all ranks of the node, and a client copies out only its shard.

Layout: ``<cache>/<domain>-<tag>/`` with ``images.npy``, ``labels.npy`` per split
(``train``/``test``, or ``pool`` for a pool domain) and ``manifest.json``, written last; the
manifest also keeps the reader's ``meta`` (e.g. FSDD's dB range, :func:`decoded_meta`).
``<tag>`` is derived from the shipped checksums (and, for non-IDX readers, the reader and
its parameters), so another dataset version or spectrogram recipe gets another folder. The manifest records the source files' size and mtime and every array's shape,
dtype and file size: a leader rebuilds (verifying sha256 again) when a source changed, and
every reader refuses a folder whose arrays do not match their manifest.

Writes are atomic (temporary name, then ``os.replace``), so a reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import DataError
from .registry import DomainSpec, get_domain

VERSION = 1
MANIFEST = "manifest.json"


def _reader_params(spec: DomainSpec) -> list:
    """What besides the files fixes a non-IDX domain's decoded arrays (part of the cache tag)."""
    if spec.reader == "idx":
        return []  # keeps the IDX domains' folder names of cache version 1
    params: list = [spec.reader, list(spec.image_shape)]
    if spec.reader == "fsdd_zip":
        from .audio import DEFAULT

        params.append(DEFAULT.as_dict())
    return params


def domain_cache_dir(spec: DomainSpec, cache: Path) -> Path:
    """``<cache>/<domain>-<tag>``: ``tag`` hashes the shipped checksums, :data:`VERSION` and
    (non-IDX readers) the reader's parameters."""
    key = [VERSION, dict(spec.sha256)] + _reader_params(spec)
    tag = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache).expanduser() / f"{spec.name}-{tag}"


def _source_stats(spec: DomainSpec, root: Path) -> dict[str, list[int]]:
    out = {}
    for f in spec.files:
        st = os.stat(Path(root) / spec.folder / f)
        out[f] = [st.st_size, st.st_mtime_ns]
    return out


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _arrays_match(folder: Path, manifest: dict) -> bool:
    for name, meta in manifest.get("arrays", {}).items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != meta["bytes"]:
            return False
    return bool(manifest.get("arrays"))


def ensure_decoded(name: str, root: Path, cache: Path, verify: bool = True) -> Path:
    """Make sure ``cache`` holds domain ``name`` decoded from ``root``; return its folder.

    Called by one rank per node. A valid folder (manifest present, arrays of the recorded
    sizes, sources unchanged since by size and mtime) is used as is; otherwise the sources
    are checked (sha256 when ``verify``), decoded, and written atomically, manifest last.

    Raises
    ------
    DataError
        A missing, corrupt or malformed source file (see :func:`~huscf_mpi.data.load_domain`),
        or a cache folder that cannot be written (names it and the fix).
    """
    from .loading import _check_files, _decode  # decoding lives with the loader

    spec = get_domain(name)
    folder = domain_cache_dir(spec, cache)
    paths = _check_files(spec, Path(root), verify=False)
    manifest = _read_manifest(folder)
    sources = _source_stats(spec, root)
    if manifest and manifest.get("sources") == sources and _arrays_match(folder, manifest):
        return folder
    _check_files(spec, Path(root), verify)
    decoded = _decode(spec, paths)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for split, (images, labels) in decoded.splits.items():
            for kind, a in (("images", images), ("labels", labels)):
                fname = f"{split}-{kind}.npy"
                _atomic_write(folder / fname, lambda f, a=a: np.save(f, np.ascontiguousarray(a)))
                arrays[fname] = {"shape": list(a.shape), "dtype": a.dtype.str, "bytes": (folder / fname).stat().st_size}
        manifest = {"version": VERSION, "domain": name, "sources": sources, "arrays": arrays, "meta": decoded.meta}
        _atomic_write(folder / MANIFEST, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    except OSError as e:
        raise DataError(f"cannot write the decoded-data cache {folder}: {e.strerror or e}; "
                        "set data.cache to a writable folder") from None
    return folder


def open_decoded(name: str, cache: Path) -> dict[str, np.ndarray]:
    """Memory-map domain ``name``'s decoded arrays read-only.

    Returns
    -------
    dict
        ``"<split>-images"`` (uint8, (N, H, W), or (N, C, H, W) when C > 1) and ``"<split>-labels"`` (int64, (N,)) for
        splits ``train`` and ``test``, or ``pool`` for a pool domain; each an ``np.memmap``
        whose pages are shared with every other rank of the node.

    Raises
    ------
    DataError
        The folder is missing or does not match its manifest (the node leader had not built
        it, or it was changed since): names the folder and the fix.
    """
    folder, manifest = _built(name, cache)
    out = {}
    for fname, meta in manifest["arrays"].items():
        a = np.load(folder / fname, mmap_mode="r")
        if list(a.shape) != meta["shape"] or a.dtype.str != meta["dtype"]:
            raise DataError(f"{folder / fname}: shape {a.shape} {a.dtype.str}, manifest says {meta['shape']} "
                            f"{meta['dtype']}; delete {folder} to rebuild it")
        out[fname.removesuffix(".npy")] = a
    return out


def decoded_meta(name: str, cache: Path) -> dict:
    """The reader's metadata kept in domain ``name``'s manifest (``{}`` for most domains).

    For ``fsdd``: ``db_lo``/``db_hi`` (the training split's dB range), ``mel`` (the
    :class:`~huscf_mpi.data.audio.MelSpec` fields) and ``speakers`` per split; what
    :func:`~huscf_mpi.data.audio.image_to_audio` needs to turn a generated image into sound.

    Raises :class:`DataError` if the folder is missing or incomplete (as :func:`open_decoded`).
    """
    return dict(_built(name, cache)[1].get("meta") or {})


def _built(name: str, cache: Path) -> tuple[Path, dict]:
    """Domain ``name``'s cache folder and manifest; ``DataError`` if it is missing or incomplete."""
    folder = domain_cache_dir(get_domain(name), cache)
    manifest = _read_manifest(folder)
    if not manifest or not _arrays_match(folder, manifest):
        raise DataError(f"decoded-data cache {folder} is missing or incomplete: it is built at set-up by one "
                        "rank per node; check that data.cache is writable and not shared by concurrent builds")
    return folder, manifest
