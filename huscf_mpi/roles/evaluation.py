"""Evaluation through the U path, on the first client of each domain (SPEC §6).

The evaluating client generates samples with its own head and tail and the server's body
(in eval mode), scores them with a domain classifier it loads or trains from the domain's
real training set, and sends the server scalars only: the generation score each evaluated
round; at the end accuracy, macro precision/recall/F1/FPR of a classifier trained on 
synthetic images, the domain-classifier FID, and the Inception FID when
``evaluation.inception_weights`` names a local weights file. The sample grid for the result
file is the one image-shaped report message, sent only when ``evaluation.sample_grid`` is on.
An audio domain (FSDD) also sends, at the end, a few generated spectrograms per class turned
back into int16 waveforms by Griffin-Lim (``evaluation.audio_per_class``), for listening.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .. import seeding
from ..comm.kinds import AUDIO_CLIPS, EVAL_SCALARS, SAMPLE_GRID
from ..data import DomainData, get_domain, to_unit_range
from ..data import audio
from .reports import SCALARS, audio_clip_count, grid_shape, n_chunks
from ..metrics import (fid_against_real, generation_score, inception_fid, load_inception,
                       load_or_train_domain_classifier, predict_proba, synthetic_classification)

log = logging.getLogger("huscf_mpi")

# The domain classifier is the measuring instrument, not part of a run: one fixed seed, so
# runs with different seeds are scored by the same cached classifier and stay comparable.
CLASSIFIER_SEED = 0

def image_grid(images: np.ndarray, labels: np.ndarray, n_classes: int, per_class: int) -> np.ndarray:
    """uint8 grid: one row per class, ``per_class`` images each; images float (N,C,H,W) in [-1,1].

    Shape :func:`grid_shape`: channels last when C > 1, so the grid is an RGB picture."""
    _, c, h, w = images.shape
    grid = np.zeros(grid_shape(n_classes, (c, h, w), per_class), np.uint8)
    for k in range(n_classes):
        for j, i in enumerate(np.flatnonzero(labels == k)[:per_class]):
            cell = np.clip((images[i] + 1) * 127.5, 0, 255).round()
            grid[k * h:(k + 1) * h, j * w:(j + 1) * w] = cell[0] if c == 1 else cell.transpose(1, 2, 0)
    return grid


def audio_clips(images: np.ndarray, labels: np.ndarray, n_rows: int, n_classes: int, db_range: tuple[float, float],
                spec: audio.MelSpec, seed: int) -> np.ndarray:
    """int16 (n_rows, spec.n_samples): Griffin-Lim waveforms of the first ``n_rows // K`` images
    of each class, class-major (row ``k·per + j`` is the j-th clip of class k).

    ``images`` float (N, 1, H, W) in [-1, 1] with labels (N,); ``db_range`` = (lo, hi) dB of
    the domain's image mapping (decoded-cache metadata). Row r's initial phase is seeded by
    ``seed + r``, so the same images give the same sound.
    """
    per = n_rows // n_classes
    rows = [i for k in range(n_classes) for i in np.flatnonzero(labels == k)[:per]]
    if len(rows) != n_rows:
        raise ValueError(f"{n_rows} audio clips asked for, {len(rows)} generated images in their classes")
    lo, hi = db_range
    return np.stack([audio.to_int16(audio.image_to_audio(images[i], lo, hi, spec, seed=seed + j))
                     for j, i in enumerate(rows)])


def domain_classifier(cfg, data: DomainData):
    """The domain classifier that ``evaluation`` settings ``cfg`` score ``data``'s domain with.

    Loaded from ``cfg.cache_dir`` or trained there on first use (on ``classifier_train_samples``
    images of the training split if set, a fixed random subset). Returns the model and its
    accuracy on the real test split, in percent.
    """
    x, y = data.train_images, data.train_labels
    if cfg.classifier_train_samples is not None and cfg.classifier_train_samples < len(y):
        keep = np.sort(np.random.default_rng(CLASSIFIER_SEED).permutation(len(y))[:cfg.classifier_train_samples])
        x, y = x[keep], y[keep]  # a different training set, hence its own cache entry
    return load_or_train_domain_classifier(
        data.name, x, y, data.test_images, data.test_labels, cache_dir=Path(cfg.cache_dir).expanduser(),
        epochs=cfg.classifier_epochs, seed=CLASSIFIER_SEED, split_tag=data.split,
        n_classes=get_domain(data.name).n_classes)


class DomainEvaluator:
    """Scores one domain's generator as seen by its first client."""

    def __init__(self, info, client: int, data: DomainData, transport, meta: dict | None = None):
        """``meta``: the domain's decoded-cache metadata (``data.decoded_meta``); an audio
        domain's needs ``db_lo``/``db_hi`` to turn spectrograms back into sound."""
        cfg = info.config.evaluation
        self.info, self.client, self.t, self.cfg = info, client, transport, cfg
        self.data = data
        spec = get_domain(data.name)
        # The domain's own labels: in a multi-domain run the model's embedding may have more.
        self.n_classes = spec.n_classes
        self.n_clips = (audio_clip_count(self.n_classes, cfg.audio_per_class, cfg.synthetic_samples)
                        if spec.modality == "audio" else 0)
        if self.n_clips:
            meta = meta or {}
            if "db_lo" not in meta or meta.get("mel") != audio.DEFAULT.as_dict():
                raise ValueError(f"decoded cache of {data.name} lacks its spectrogram metadata; delete that domain's "
                                 "folder under data.cache so set-up rebuilds it")
            self.db_range = (float(meta["db_lo"]), float(meta["db_hi"]))
        self.classifier, self.classifier_accuracy = domain_classifier(cfg, data)
        log.info("domain classifier for %s: real test accuracy %.2f %%", data.name, self.classifier_accuracy)
        # Loaded at set-up, so a wrong file stops the run before training (errors are collective there).
        self.inception = load_inception(cfg.inception_weights) if cfg.inception_weights else None
        self.noise = torch.Generator().manual_seed(seeding.int_seed(info.config.seed, seeding.EVALUATION, client))
        self.t.declare(0, EVAL_SCALARS, (len(SCALARS),), np.float64)
        self.t.declare(0, SAMPLE_GRID, grid_shape(self.n_classes, info.arch.image_shape, cfg.grid_per_class), np.uint8)
        if self.n_clips:
            self.t.declare(0, AUDIO_CLIPS, (self.n_clips, audio.DEFAULT.n_samples), np.int16)

    def _generate(self, strategy, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n images (float32 (n,C,H,W)) with uniform labels ``arange(n) % K``, through the U path."""
        E, K, zdim = self.cfg.batch_size, self.n_classes, self.info.arch.z_dim
        labels = torch.arange(n_chunks(n, E) * E) % K
        out = []
        for i in range(n_chunks(n, E)):
            z = torch.randn(E, zdim, generator=self.noise)
            out.append(strategy.generate(z, labels[i * E:(i + 1) * E]).numpy())
        return np.concatenate(out)[:n], labels[:n].numpy()

    def _send(self, values: dict[str, float]) -> None:
        self.t.isend(0, EVAL_SCALARS, np.array([values.get(k, np.nan) for k in SCALARS], np.float64))

    def round(self, strategy) -> float:
        """Generation score now; sends it (and the sample grid) to the server."""
        images, labels = self._generate(strategy, self.cfg.generation_samples)
        score = generation_score(predict_proba(self.classifier, images))
        self._send({"generation_score": score, "classifier_test_accuracy": self.classifier_accuracy})
        if self.cfg.sample_grid:
            self.t.isend(0, SAMPLE_GRID, image_grid(images, labels, self.n_classes, self.cfg.grid_per_class))
        return score

    def final(self, strategy) -> dict[str, float]:
        """SPEC §6 synthetic-data classification, domain-classifier (and Inception) FID; sends the scalars."""
        images, labels = self._generate(strategy, self.cfg.synthetic_samples)
        test_x = to_unit_range(self.data.test_images)
        metrics = synthetic_classification(
            images, labels, test_x, self.data.test_labels, epochs=self.cfg.synthetic_epochs,
            seed=seeding.int_seed(self.info.config.seed, "synthetic-classifier", self.client), n_classes=self.n_classes)
        n_fid = min(len(images), len(test_x))
        metrics["fid"] = fid_against_real(self.classifier, test_x[:n_fid], images[:n_fid])
        if self.inception is not None:  # "FID (Inception)": same images, pytorch-fid's network
            metrics["fid_inception"] = inception_fid(self.inception, test_x[:n_fid], images[:n_fid])
        metrics["generation_score"] = generation_score(predict_proba(self.classifier, images))
        metrics["classifier_test_accuracy"] = self.classifier_accuracy
        self._send(metrics)
        if self.n_clips:
            seed = seeding.int_seed(self.info.config.seed, "griffin-lim", self.client)
            self.t.isend(0, AUDIO_CLIPS, audio_clips(images, labels, self.n_clips, self.n_classes, self.db_range,
                                                     audio.DEFAULT, seed))
        return metrics
