"""On-disk cache of trained domain classifiers (SPEC §6).

Every evaluation of a domain needs the same classifier trained on that domain's real training
set; training it takes minutes on one CPU thread, so it is trained once per (domain, split,
epochs, seed, data) and reused across runs and processes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from .classifiers import DomainClassifier
from .training import accuracy, to_labels, to_model_input, train_classifier

__all__ = ["domain_classifier_cache_key", "image_shape_of", "load_or_train_domain_classifier"]

logger = logging.getLogger(__name__)


def _fingerprint(array) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order)."""
    a = np.ascontiguousarray(array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array))
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def image_shape_of(images) -> tuple[int, int, int]:
    """(C, H, W) of one image of a batch given as (N, H, W) (C = 1) or (N, C, H, W)."""
    shape = tuple(int(v) for v in images.shape)
    if len(shape) == 3:
        return (1, *shape[1:])
    if len(shape) == 4:
        return shape[1:]
    raise ValueError(f"expected images of shape (N, H, W) or (N, C, H, W), got {shape}")


def domain_classifier_cache_key(
    domain: str, split_tag: str, epochs: int, seed: int, n_classes: int, train_images, train_labels
) -> str:
    """Hex SHA-256 identifying one trained domain classifier.

    Hashes domain, split tag, epochs, seed, n_classes, the training-set size, fingerprints of the
    training labels and images, and the network's version tag (:attr:`DomainClassifier.VERSION`
    for the SPEC network on 1x28x28, else layout, image shape and version), so any change to the
    data, training recipe or architecture yields a different key.
    """
    version = DomainClassifier.version_tag(image_shape_of(train_images))
    labels = to_labels(train_labels).numpy()
    fields = {
        "domain": str(domain),
        "split_tag": str(split_tag),
        "epochs": int(epochs),
        "seed": int(seed),
        "n_classes": int(n_classes),
        "n_train": int(len(labels)),
        "labels": _fingerprint(labels),
        # Same-size, same-label sets with different pixels (another preprocessing, another
        # partition draw) must not share weights; hashing ~47 MB of uint8 costs ~50 ms.
        "images": _fingerprint(train_images),
        "model_version": version,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _atomic_save(payload: dict, path: Path) -> None:
    """``torch.save`` to a temp file in ``path``'s directory, then ``os.replace`` onto ``path``.

    ``os.replace`` is atomic within one file system, so a concurrent reader sees either no file
    or a complete one, and two processes racing to write the same key both succeed (last wins,
    with identical content).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_train_domain_classifier(
    domain: str,
    train_images,
    train_labels,
    test_images,
    test_labels,
    cache_dir: Path,
    epochs: int,
    seed: int,
    split_tag: str,
    *,
    n_classes: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> tuple[DomainClassifier, float]:
    """Return the domain classifier of SPEC §6 for ``domain``, training and caching it if needed.

    Parameters
    ----------
    domain : str
        Domain name (e.g. ``"mnist"``); part of the key and of the file name.
    train_images : numpy.ndarray
        uint8 (N, H, W) or (N, C, H, W) real training images; scaled to [-1, 1] with
        ``(x / 255) * 2 - 1``, as the GAN sees them (float32 (N, C, H, W) in [-1, 1] is also
        accepted). Their shape picks the network (see :class:`DomainClassifier`).
    train_labels : numpy.ndarray
        int64 (N,).
    test_images, test_labels : numpy.ndarray
        Real test set, same formats; gives the accuracy reported next to the generation score.
    cache_dir : pathlib.Path
        Directory of the cache files (created if missing).
    epochs : int
        Training epochs (Adam, lr ``lr``, batch ``batch_size``, cross-entropy).
    seed : int
        Seeds the weight initialisation and the batch shuffling (global torch RNG untouched).
    split_tag : str
        Names the data split (e.g. ``"full"`` or a partition id); part of the key.
    n_classes : int, default=10
    batch_size : int, default=64
    lr : float, default=1e-3
        Training hyper-parameters. ``batch_size`` and ``lr`` are not part of the key; keep them
        at their defaults for cached runs.

    Returns
    -------
    model : DomainClassifier
        In eval mode, on the CPU.
    test_accuracy : float
        Accuracy on (test_images, test_labels), in percent.

    Raises
    ------
    ValueError
        On malformed images/labels (see :func:`huscf_mpi.metrics.train_classifier`).

    Notes
    -----
    File: ``cache_dir / f"domain_classifier-{domain}-{key[:20]}.pt"`` holding the state_dict, the
    test accuracy and a fingerprint of the test set; if the test set differs from the stored one
    the accuracy is recomputed (no retraining). An unreadable file is retrained and overwritten.
    One INFO line is logged per call, saying whether the model was trained or loaded.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = domain_classifier_cache_key(domain, split_tag, epochs, seed, n_classes, train_images, train_labels)
    safe_domain = re.sub(r"[^A-Za-z0-9_.-]", "_", str(domain))
    path = cache_dir / f"domain_classifier-{safe_domain}-{key[:20]}.pt"
    test_fp = _fingerprint(to_labels(test_labels).numpy()) + _fingerprint(test_images)

    shape = image_shape_of(train_images)
    model = DomainClassifier(n_classes, seed=seed, image_shape=shape)
    if path.exists():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(payload["state_dict"])
            model.eval()
            if payload.get("test_fingerprint") == test_fp:
                acc = float(payload["test_accuracy"])
            else:
                acc = accuracy(model, test_images, test_labels)
            logger.info("domain classifier %s: loaded %s (test accuracy %.2f%%)", domain, path, acc)
            return model, acc
        except Exception as exc:  # truncated or foreign file: retrain rather than fail the run
            logger.warning("domain classifier %s: cannot read %s (%s); retraining", domain, path, exc)
            model = DomainClassifier(n_classes, seed=seed, image_shape=shape)

    x_train = to_model_input(train_images)
    logger.info("domain classifier %s: training on %d images for %d epochs -> %s",
                domain, len(x_train), epochs, path)
    train_classifier(model, x_train, train_labels, epochs, batch_size, lr, seed=seed)
    acc = accuracy(model, test_images, test_labels)
    _atomic_save({"state_dict": model.state_dict(), "test_accuracy": acc,
                  "test_fingerprint": test_fp, "key": key}, path)
    return model, acc
