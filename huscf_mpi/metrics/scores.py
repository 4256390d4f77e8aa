"""Score formulas of SPEC §6: generation score, classification metrics, Fréchet distance.

Pure NumPy / scikit-learn / SciPy functions of predictions or features; the networks that
produce those live in :mod:`huscf_mpi.metrics.classifiers`.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

__all__ = ["generation_score", "classification_metrics", "feature_statistics", "frechet_distance"]

#: Guards log(0) in the KL divergence; far below any probability that matters at float64.
_LOG_EPS = 1e-12


def generation_score(probs: np.ndarray, eps: float = _LOG_EPS) -> float:
    """Generation score exp(E_x KL(p(y|x) ‖ p(y))) (SPEC §6).

    The Inception-score formula evaluated with a domain classifier: ``p(y)`` is the mean of the
    rows of ``probs``. It is 1 when every sample gets the same prediction and K when predictions
    are confident (one-hot) and the classes are uniformly represented.

    Parameters
    ----------
    probs : numpy.ndarray of shape (n, K)
        Rows are class distributions p(y|x) (non-negative, summing to 1), e.g. from
        :func:`huscf_mpi.metrics.predict_proba`.
    eps : float, default=1e-12
        Added inside both logarithms so that zero probabilities give finite terms
        (0 · log(0) is then 0 as in the limit).

    Returns
    -------
    float
        Score in [1, K] (up to ``eps``).

    Raises
    ------
    ValueError
        If ``probs`` is not a non-empty 2-D array of non-negative rows summing to 1 (tol 1e-3).
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"probs must be a non-empty (n, K) array, got shape {p.shape}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("rows of probs must be probability distributions (non-negative, sum 1)")
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def classification_metrics(y_true, y_pred, n_classes: int) -> dict[str, float]:
    """Accuracy and macro precision, recall, F1 and FPR, all in percent (SPEC §6).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Integer class labels in 0..n_classes-1.
    n_classes : int
        K; every class 0..K-1 enters the macro averages even if absent from both arrays.

    Returns
    -------
    dict
        ``accuracy``, ``precision``, ``recall``, ``f1``, ``fpr``: Python floats in [0, 100].
        Precision/recall/F1 are scikit-learn macro averages with ``zero_division=0``; ``fpr`` is
        the mean over classes of FP / (FP + TN), a class with FP + TN = 0 counting as 0.

    Raises
    ------
    ValueError
        If the arrays differ in length, are empty, or hold labels outside 0..n_classes-1.
    """
    yt = np.asarray(y_true).ravel()
    yp = np.asarray(y_pred).ravel()
    if yt.shape != yp.shape or yt.size == 0:
        raise ValueError(f"y_true and y_pred must be non-empty and equally long, got {yt.shape}, {yp.shape}")
    for name, y in (("y_true", yt), ("y_pred", yp)):
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    labels = np.arange(n_classes)
    precision, recall, f1, _ = precision_recall_fscore_support(
        yt, yp, labels=labels, average="macro", zero_division=0)
    cm = confusion_matrix(yt, yp, labels=labels)  # rows: true class, columns: predicted
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    negatives = fp + tn
    fpr = np.divide(fp, negatives, out=np.zeros(n_classes), where=negatives > 0)
    return {
        "accuracy": float(accuracy_score(yt, yp) * 100.0),
        "precision": float(precision * 100.0),
        "recall": float(recall * 100.0),
        "f1": float(f1 * 100.0),
        "fpr": float(fpr.mean() * 100.0),
    }


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature matrix, as used by FID.

    Parameters
    ----------
    features : array-like of shape (n, F)
        One row per sample, n >= 2.

    Returns
    -------
    mu : numpy.ndarray of shape (F,), float64
    sigma : numpy.ndarray of shape (F, F), float64
        Unbiased (n - 1) sample covariance, as ``np.cov(rowvar=False)`` and pytorch-fid.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D with at least two rows.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must be (n, F) with n >= 2, got shape {f.shape}")
    # atleast_2d: np.cov returns a 0-d array when F == 1.
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID formula, SPEC §6).

    d² = ‖mu1 − mu2‖² + Tr(sigma1) + Tr(sigma2) − 2 Tr((sigma1 sigma2)^½), computed as in
    pytorch-fid: if the matrix square root is not finite (near-singular product) it is retried
    with ``eps·I`` added to both covariances, and a negligible imaginary part from numerical
    error is dropped.

    Parameters
    ----------
    mu1, mu2 : array-like of shape (F,)
    sigma1, sigma2 : array-like of shape (F, F)
        Symmetric positive semi-definite covariances, e.g. from :func:`feature_statistics`.
    eps : float, default=1e-6
        Diagonal offset for the singular-product fallback.

    Returns
    -------
    float
        Squared Fréchet distance (>= 0 up to round-off); in feature units squared.

    Raises
    ------
    ValueError
        If shapes disagree, or the square root has a significant imaginary component
        (|imag| > 1e-3 on its diagonal).
    """
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    f = mu1.shape[0]
    if mu2.shape != (f,) or sigma1.shape != (f, f) or sigma2.shape != (f, f):
        raise ValueError(f"shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, "
                         f"sigma1 {sigma1.shape}, sigma2 {sigma2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Penultimate ReLU features often have dead units, so a singular product is the normal
        # case; SciPy's LinAlgWarning about it would fire on every evaluation. Non-finite results
        # are caught below.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(f) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
