"""Tests of huscf_mpi.metrics (SPEC §6) against hand-computed values and closed forms."""
from __future__ import annotations

import gzip
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from huscf_mpi.metrics import (
    DomainClassifier,
    SyntheticCNN,
    accuracy,
    classification_metrics,
    extract_features,
    feature_statistics,
    fid_against_real,
    frechet_distance,
    generation_score,
    load_or_train_domain_classifier,
    predict_logits,
    predict_proba,
    synthetic_classification,
    to_model_input,
    train_classifier,
)

torch.set_num_threads(1)

MNIST = Path(__file__).resolve().parents[1] / "data" / "mnist"


def blob_images(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A trivially separable task: class k is a bright 6x6 square at a class-specific spot.

    Returns uint8 (n, 28, 28) images with background noise and int64 (n,) balanced labels.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % n_classes
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 3)
        images[i, 2 + 8 * r:8 + 8 * r, 2 + 8 * c:8 + 8 * c] = 255
    return images, labels


# --------------------------------------------------------------------------- generation score
def test_generation_score_one_hot_uniform_classes_is_k():
    k = 4
    probs = np.eye(k)[np.arange(12) % k]
    assert generation_score(probs) == pytest.approx(k, rel=1e-9)


def test_generation_score_identical_rows_is_one():
    probs = np.tile([0.1, 0.2, 0.3, 0.4], (7, 1))
    assert generation_score(probs) == pytest.approx(1.0, abs=1e-12)


def test_generation_score_matches_hand_formula():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    py = [0.55, 0.45]  # column means, by hand
    kl1 = 0.9 * math.log(0.9 / py[0]) + 0.1 * math.log(0.1 / py[1])
    kl2 = 0.2 * math.log(0.2 / py[0]) + 0.8 * math.log(0.8 / py[1])
    assert generation_score(probs) == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-9)


def test_generation_score_rejects_non_distributions():
    with pytest.raises(ValueError):
        generation_score(np.array([[0.5, 0.6]]))
    with pytest.raises(ValueError):
        generation_score(np.ones(3) / 3)


# --------------------------------------------------------------------- classification metrics
def test_classification_metrics_against_hand_confusion_matrix():
    y_true = [0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0, 2]
    # Confusion matrix by hand (rows true, cols predicted), class 3 absent from both:
    #   [[1,1,0,0],[0,2,0,0],[1,0,2,0],[0,0,0,0]]
    # class: TP FP FN TN  -> precision recall f1  fpr
    #   0:    1  1  1  4  ->   1/2     1/2   1/2  1/5
    #   1:    2  1  0  4  ->   2/3     1     4/5  1/5
    #   2:    2  0  1  4  ->   1       2/3   4/5  0
    #   3:    0  0  0  7  ->   0       0     0    0    (zero_division=0)
    m = classification_metrics(y_true, y_pred, n_classes=4)
    assert m["accuracy"] == pytest.approx(100 * 5 / 7)
    assert m["precision"] == pytest.approx(100 * (1 / 2 + 2 / 3 + 1 + 0) / 4)
    assert m["recall"] == pytest.approx(100 * (1 / 2 + 1 + 2 / 3 + 0) / 4)
    assert m["f1"] == pytest.approx(100 * (1 / 2 + 4 / 5 + 4 / 5 + 0) / 4)
    assert m["fpr"] == pytest.approx(100 * (1 / 5 + 1 / 5 + 0 + 0) / 4)
    assert all(isinstance(v, float) for v in m.values())


def test_classification_metrics_perfect_and_invalid():
    m = classification_metrics(np.arange(10), np.arange(10), 10)
    assert m == {"accuracy": 100.0, "precision": 100.0, "recall": 100.0, "f1": 100.0, "fpr": 0.0}
    with pytest.raises(ValueError):
        classification_metrics([0, 1, 5], [0, 1, 1], n_classes=3)
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0], n_classes=3)


# ---------------------------------------------------------------------------- Fréchet distance
def test_feature_statistics_matches_manual_mean_and_unbiased_covariance():
    f = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    mu, sigma = feature_statistics(f)
    centred = f.astype(np.float64) - f.astype(np.float64).mean(axis=0)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (3, 3)
    np.testing.assert_allclose(mu, f.astype(np.float64).sum(axis=0) / 50)
    np.testing.assert_allclose(sigma, centred.T @ centred / 49)
    assert feature_statistics(f[:, :1])[1].shape == (1, 1)


def test_frechet_distance_identical_stats_is_zero():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + 0.1 * np.eye(6)
    mu = rng.normal(size=6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_diagonal_closed_form():
    # For diagonal covariances: d² = ‖Δμ‖² + Σ_i (√s1_i − √s2_i)².
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = (1 + 0 + 6.25) + ((1 - 3) ** 2 + (2 - 1) ** 2 + 0)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_singular_covariances_stay_finite():
    # Dead ReLU units give zero rows/columns; the result must still be the closed form.
    s1, s2 = np.diag([1.0, 0.0, 4.0]), np.diag([4.0, 0.0, 4.0])
    d = frechet_distance(np.zeros(3), s1, np.zeros(3), s2)
    assert d == pytest.approx(1.0, abs=1e-5)


# --------------------------------------------------------------------- networks and training
def test_network_shapes_and_seeded_init_leaves_global_rng_alone():
    x = torch.zeros(5, 1, 28, 28)
    state = torch.get_rng_state()
    a, b = DomainClassifier(seed=3), DomainClassifier(seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert a(x).shape == (5, 10)
    feats = a.features(x)
    assert feats.shape == (5, 128) and (feats >= 0).all()
    assert SyntheticCNN(n_classes=7, seed=0)(x).shape == (5, 7)


def test_to_model_input_scales_uint8_like_the_gan():
    x = to_model_input(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert x.dtype == torch.float32 and x.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(x.numpy().ravel(), [-1.0, 1.0, -0.6, -0.2], atol=1e-6)
    assert to_model_input(np.zeros((2, 3, 32, 32), np.uint8)).shape == (2, 3, 32, 32)  # RGB kept
    with pytest.raises(ValueError):
        to_model_input(np.zeros((28, 28), np.float32))


def test_train_classifier_learns_is_deterministic_and_spares_global_rng():
    x, y = blob_images(180, 9, seed=0)
    x_test, y_test = blob_images(90, 9, seed=1)
    state = torch.get_rng_state()
    m1 = train_classifier(DomainClassifier(9, seed=0), x, y, epochs=3, batch_size=32, seed=5)
    m2 = train_classifier(DomainClassifier(9, seed=0), x, y, epochs=3, batch_size=32, seed=5)
    m3 = train_classifier(DomainClassifier(9, seed=0), x, y, epochs=3, batch_size=32, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(m1.parameters(), m3.parameters()))
    assert accuracy(m1, x_test, y_test) == 100.0


def test_predict_logits_eval_mode_batch_invariant_and_restores_mode():
    model = DomainClassifier(seed=0).train()
    x = to_model_input(blob_images(7, 9, seed=2)[0])
    full = predict_logits(model, x)
    assert full.shape == (7, 10) and not full.requires_grad
    assert torch.allclose(predict_logits(model, x, batch_size=2), full, atol=1e-6)
    assert model.training  # the caller's mode is restored
    probs = predict_proba(model, x)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(probs, torch.softmax(full.double(), 1).numpy(), atol=1e-6)


def rgb_blob_images(n: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``blob_images`` for 3x32x32: class k is a coloured square at a class-specific spot."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n, dtype=np.int64) % n_classes
    images = rng.integers(0, 60, size=(n, 3, 32, 32), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = divmod(int(k), 3)
        images[i, int(k) % 3, 2 + 9 * r:9 + 9 * r, 2 + 9 * c:9 + 9 * c] = 255
    return images, labels


@pytest.mark.parametrize("shape,k,layout", [((1, 28, 28), 2, "spec"), ((3, 32, 32), 10, "cnn32"),
                                            ((1, 32, 32), 10, "cnn32"), ((3, 28, 28), 10, "spec")])
def test_classifiers_for_each_domain_shape(shape, k, layout):
    x = torch.zeros(5, *shape)
    state = torch.get_rng_state()
    model = DomainClassifier(k, seed=1, image_shape=shape)
    assert torch.equal(torch.get_rng_state(), state) and model.layout == layout
    assert model(x).shape == (5, k) and model.features(x).shape == (5, DomainClassifier.FEATURE_DIM)
    assert SyntheticCNN(k, seed=0, image_shape=shape)(x).shape == (5, k)
    # the SPEC network on 1x28x28 keeps its cache version; other shapes get their own
    assert (DomainClassifier.version_tag(shape) == DomainClassifier.VERSION) == (shape == (1, 28, 28))


def test_rgb_and_two_class_classifiers_train_and_cache(tmp_path, caplog):
    x, y = rgb_blob_images(450, 9, seed=0)
    xt, yt = rgb_blob_images(90, 9, seed=1)
    kw = dict(cache_dir=tmp_path, epochs=4, seed=0, split_tag="official", n_classes=9)
    model, acc = load_or_train_domain_classifier("cifar10", x, y, xt, yt, **kw)
    assert model.image_shape == (3, 32, 32) and acc == 100.0
    with caplog.at_level(logging.INFO, logger="huscf_mpi.metrics.cache"):
        again, acc2 = load_or_train_domain_classifier("cifar10", x, y, xt, yt, **kw)
    assert "loaded" in caplog.text and acc2 == acc
    # 2 classes, 1x28x28 (PneumoniaMNIST's shape): a different key, its own file
    g, gy = blob_images(60, 2, seed=0)
    two, acc_two = load_or_train_domain_classifier("pneumoniamnist", g, gy, g, gy, cache_dir=tmp_path, epochs=3,
                                                   seed=0, split_tag="official", n_classes=2)
    assert two.head.out_features == 2 and acc_two == 100.0
    assert len(list(tmp_path.glob("domain_classifier-*.pt"))) == 2
    # synthetic-data classification and FID take the RGB shape too
    m = synthetic_classification(to_model_input(x), y, xt, yt, epochs=2, seed=0, n_classes=9)
    assert m["accuracy"] > 90
    assert fid_against_real(model, xt, xt) == pytest.approx(0.0, abs=1e-4)


# ----------------------------------------------------------------------------------- cache
def test_domain_classifier_cache_round_trip(tmp_path, caplog):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(64, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=64).astype(np.int64)
    xt = rng.integers(0, 256, size=(32, 28, 28), dtype=np.uint8)
    yt = rng.integers(0, 10, size=32).astype(np.int64)
    kw = dict(cache_dir=tmp_path, epochs=1, seed=0, split_tag="full")

    with caplog.at_level(logging.INFO, logger="huscf_mpi.metrics.cache"):
        m1, acc1 = load_or_train_domain_classifier("mnist", x, y, xt, yt, **kw)
    assert "training" in caplog.text and "loaded" not in caplog.text
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("domain_classifier-mnist-") and files[0].endswith(".pt")
    assert acc1 == pytest.approx(accuracy(m1, xt, yt))

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="huscf_mpi.metrics.cache"):
        m2, acc2 = load_or_train_domain_classifier("mnist", x, y, xt, yt, **kw)
    assert "loaded" in caplog.text and "training" not in caplog.text
    assert acc2 == acc1
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not m2.training

    # A different test set re-scores the cached weights without retraining.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="huscf_mpi.metrics.cache"):
        _, acc3 = load_or_train_domain_classifier("mnist", x, y, xt[:10], yt[:10], **kw)
    assert "loaded" in caplog.text and acc3 == pytest.approx(accuracy(m1, xt[:10], yt[:10]))

    # Different labels (or seed) mean a different key, hence a second file; no temp files remain.
    load_or_train_domain_classifier("mnist", x, (y + 1) % 10, xt, yt, **kw)
    assert len(list(tmp_path.iterdir())) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_cache_retrains_over_a_corrupt_file(tmp_path, caplog):
    x, y = blob_images(20, 9, seed=0)
    kw = dict(cache_dir=tmp_path, epochs=1, seed=0, split_tag="s")
    _, acc = load_or_train_domain_classifier("d", x, y, x, y, **kw)
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.INFO, logger="huscf_mpi.metrics.cache"):
        _, acc2 = load_or_train_domain_classifier("d", x, y, x, y, **kw)
    assert "retraining" in caplog.text and acc2 == acc  # same seed, same weights
    assert torch.load(path, weights_only=True)["test_accuracy"] == acc


# ------------------------------------------------------------------ synthetic data and FID
def test_synthetic_classification_on_separable_fakes():
    gen_x, gen_y = blob_images(270, 9, seed=3)
    test_x, test_y = blob_images(90, 9, seed=4)
    gen_x = to_model_input(gen_x)  # float32 (N,1,28,28) in [-1,1], as the generator emits
    m = synthetic_classification(gen_x, gen_y, test_x, test_y, epochs=2, seed=0, n_classes=9)
    assert set(m) == {"accuracy", "precision", "recall", "f1", "fpr"}
    assert m["accuracy"] == 100.0 and m["f1"] == 100.0 and m["fpr"] == 0.0
    # Fakes with shuffled labels carry no signal: test accuracy collapses.
    wrong = synthetic_classification(gen_x, (gen_y + 1) % 9, test_x, test_y, epochs=2, seed=0, n_classes=9)
    assert wrong["accuracy"] < 20.0


def test_fid_against_real_zero_for_same_set_and_grows_with_mismatch():
    x, y = blob_images(270, 9, seed=5)
    clf = train_classifier(DomainClassifier(9, seed=0), x, y, epochs=1, seed=0)
    real = to_model_input(x)
    scale = np.trace(feature_statistics(extract_features(clf, real))[1])
    assert abs(fid_against_real(clf, real, real)) < 1e-4 * scale
    same_dist = fid_against_real(clf, real, to_model_input(blob_images(270, 9, seed=6)[0]))
    one_class = fid_against_real(clf, real, to_model_input(blob_images(270, 1, seed=6)[0]))
    assert 0 <= same_dist < one_class


# ------------------------------------------------------------------------------ real MNIST
def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.mark.data
@pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").exists(), reason="MNIST not in data/mnist")
def test_domain_classifier_one_epoch_on_real_mnist_beats_90_percent():
    x = _read_idx(MNIST / "train-images-idx3-ubyte.gz")[:6000]
    y = _read_idx(MNIST / "train-labels-idx1-ubyte.gz")[:6000].astype(np.int64)
    xt = _read_idx(MNIST / "t10k-images-idx3-ubyte.gz")[:2000]
    yt = _read_idx(MNIST / "t10k-labels-idx1-ubyte.gz")[:2000].astype(np.int64)
    model = train_classifier(DomainClassifier(seed=0), x, y, epochs=1, seed=0)
    assert accuracy(model, xt, yt) > 90.0
