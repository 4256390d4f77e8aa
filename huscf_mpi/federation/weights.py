"""Aggregation weights (SPEC §3 steps 4 and 6).

``w_i = n_i · exp(−α·KLD_i) / Σ_{j in cluster(i)} n_j · exp(−α·KLD_j)``; FedAvg (warm-up) is the
α = 0 case over a single cluster, ``w_i = n_i / Σ_j n_j``.
"""
from __future__ import annotations

import numpy as np


def _check_counts(n_samples) -> np.ndarray:
    n = np.asarray(n_samples, dtype=np.float64)
    if n.ndim != 1:
        raise ValueError(f"n_samples must be 1-D, got shape {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError("n_samples must be finite and non-negative")
    return n


def fedavg_weights(n_samples) -> np.ndarray:
    """Size-weighted FedAvg weights over all clients (warm-up rounds, SPEC §3 step 6).

    Parameters
    ----------
    n_samples : array_like, shape (n,), non-negative sample counts.

    Returns
    -------
    w : ndarray, float64, shape (n,), ``n_i / Σ_j n_j``; sums to 1.
    """
    n = _check_counts(n_samples)
    total = n.sum()
    if n.size == 0 or total <= 0:
        raise ValueError("fedavg_weights needs at least one client with a positive sample count")
    return n / total


def kld_weights(n_samples, kld, labels, alpha: float = 1.0) -> np.ndarray:
    """KLD-discounted, size-weighted weights normalised within each cluster (SPEC §3 step 4).

    Parameters
    ----------
    n_samples : array_like, shape (n,), non-negative sample counts ``n_i``.
    kld : array_like, float, shape (n,), scores from :func:`kld_scores`.
    labels : array_like, int, shape (n,), cluster labels.
    alpha : float, default 1.0, the discount strength α.

    Returns
    -------
    w : ndarray, float64, shape (n,)
        ``n_i exp(−α KLD_i) / Σ_{j in cluster} n_j exp(−α KLD_j)``; sums to 1 within every
        cluster; exactly 1 for a singleton cluster.
    """
    n = _check_counts(n_samples)
    kld = np.asarray(kld, dtype=np.float64)
    labels = np.asarray(labels)
    if kld.shape != n.shape or labels.shape != n.shape:
        raise ValueError(f"n_samples, kld and labels must share shape (n,); got {n.shape}, {kld.shape}, {labels.shape}")
    if not np.all(np.isfinite(kld)):
        raise ValueError("kld contains NaN or infinite values")
    if not np.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    out = np.empty(n.shape, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_n = np.log(n)  # log 0 = -inf → weight 0, handled by exp below
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        if members.size == 1:
            out[members] = 1.0
            continue
        # Work in log space and subtract the cluster's max exponent so exp() neither
        # overflows (large α·|KLD|) nor underflows every member to 0.
        expo = log_n[members] - alpha * kld[members]
        top = expo.max()
        if not np.isfinite(top):
            raise ValueError(f"cluster {lab!r}: every member has 0 samples, weights are undefined")
        e = np.exp(expo - top)
        out[members] = e / e.sum()
    return out


__all__ = ["kld_weights", "fedavg_weights"]
