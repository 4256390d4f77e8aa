"""KLD scores of clients against their cluster (SPEC §3 step 3).

A client's batch-mean activation at the clustering block, reshaped ``(C, H·W)``, is turned into
one spatial distribution per channel ``P_i = softmax over H·W``. Within a cluster,
``Q_i = mean_{j ≠ i} P_j`` (the "others" distribution) and the score is

    KLD_i = (1/C) Σ_c Σ_s Q_i[c,s] · (log(Q_i[c,s] + ε) − log(P_i[c,s] + ε)),

i.e. ``KL(Q_i ‖ P_i)`` averaged over channels. This is what the reference implementation
computes (its comment says ``KL(P_i ‖ Q_i)``; the formula is the one that counts here).
Everything is NumPy, float64.
"""
from __future__ import annotations

import numpy as np

DEFAULT_EPS = 1e-9


def spatial_softmax(acts, spatial_ndim: int = 2) -> np.ndarray:
    """Softmax over the spatial positions of each channel.

    Parameters
    ----------
    acts : array_like, float, shape (..., C, H, W) when ``spatial_ndim == 2`` (default) or
        (..., C, HW) when ``spatial_ndim == 1``.
    spatial_ndim : number of trailing spatial axes (1 or 2). Explicit because a 3-D array
        could be either (C, H, W) or (n, C, HW).

    Returns
    -------
    P : ndarray, float64, shape (..., C, HW); every ``P[..., c, :]`` is positive and sums to 1.
    """
    if spatial_ndim not in (1, 2):
        raise ValueError(f"spatial_ndim must be 1 or 2, got {spatial_ndim}")
    a = np.asarray(acts, dtype=np.float64)
    if a.ndim < spatial_ndim + 1:
        raise ValueError(f"acts needs a channel axis and {spatial_ndim} spatial axes, got shape {a.shape}")
    if spatial_ndim == 2:
        a = a.reshape(a.shape[:-2] + (a.shape[-2] * a.shape[-1],))
    if a.shape[-1] == 0:
        raise ValueError(f"acts has no spatial positions (shape {np.shape(acts)})")
    if not np.all(np.isfinite(a)):
        raise ValueError("acts contains NaN or infinite values")
    # Subtracting the per-row max keeps exp() from overflowing; softmax is shift-invariant.
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _client_distributions(acts) -> np.ndarray:
    """(n, C, H, W) or (n, C, HW) activations → (n, C, HW) float64 spatial softmax."""
    a = np.asarray(acts)
    if a.ndim == 4:
        return spatial_softmax(a, spatial_ndim=2)
    if a.ndim == 3:
        return spatial_softmax(a, spatial_ndim=1)
    raise ValueError(f"acts must have shape (n, C, H, W) or (n, C, HW), got {a.shape}")


def kld_scores(acts, labels, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Per-client ``KL(Q_i ‖ P_i)`` against the other members of its cluster (SPEC §3 step 3).

    Parameters
    ----------
    acts : array_like, float, shape (n, C, H, W) or (n, C, HW)
        Each client's batch-mean activation at the clustering block.
    labels : array_like, int, shape (n,)
        Cluster label of each client (any integers).
    eps : float, default 1e-9
        Added inside both logarithms, as the reference does.

    Returns
    -------
    kld : ndarray, float64, shape (n,)
        ``(1/C) Σ_c Σ_s Q_i[c,s] (log(Q_i[c,s]+eps) − log(P_i[c,s]+eps))`` with
        ``Q_i = mean_{j in cluster(i), j ≠ i} P_j``; 0 for a client alone in its cluster.
        Non-negative up to the effect of ``eps``.
    """
    P = _client_distributions(acts)
    labels = np.asarray(labels)
    n = P.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    C = P.shape[1]
    if C == 0:
        raise ValueError("acts has no channels")
    out = np.zeros(n, dtype=np.float64)
    for lab in np.unique(labels):
        members = np.flatnonzero(labels == lab)
        m = members.size
        if m < 2:
            continue  # no "others": score 0, weight 1 (SPEC §3 step 4)
        Pm = P[members]
        # Leave-one-out mean: (sum over the cluster − own) / (m − 1).
        Q = (Pm.sum(axis=0, keepdims=True) - Pm) / (m - 1)
        terms = Q * (np.log(Q + eps) - np.log(Pm + eps))
        out[members] = terms.sum(axis=(1, 2)) / C
    return out


def global_kld_scores(acts, eps: float = DEFAULT_EPS) -> np.ndarray:
    """``kld_scores`` with every client in one cluster (the server-body weights, SPEC §3 step 3).

    Parameters
    ----------
    acts : array_like, float, shape (n, C, H, W) or (n, C, HW)
    eps : float, default 1e-9

    Returns
    -------
    kld : ndarray, float64, shape (n,)
    """
    n = np.asarray(acts).shape[0] if np.ndim(acts) else 0
    return kld_scores(acts, np.zeros(n, dtype=np.int64), eps=eps)


__all__ = ["spatial_softmax", "kld_scores", "global_kld_scores", "DEFAULT_EPS"]
