"""Clustering clients by their clustering-block activations (SPEC §3 step 2)."""
from __future__ import annotations

import warnings

import numpy as np

from .. import seeding


def _random_state(seed: int) -> int:
    # scikit-learn wants a seed < 2**32; derive it from the run's clustering stream.
    return seeding.int_seed(int(seed), seeding.CLUSTERING) % (2 ** 32)


def canonical_labels(labels) -> np.ndarray:
    """Renumber cluster ids by first appearance in client order.

    KMeans numbers clusters arbitrarily; after this the first client is always in cluster 0,
    the first client not in cluster 0 in cluster 1, and so on, so labels from different rounds
    can be compared.

    Parameters
    ----------
    labels : array_like, shape (n,), any hashable cluster ids.

    Returns
    -------
    labels : ndarray, int64, shape (n,), values 0..k−1.
    """
    mapping: dict = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(np.asarray(labels).tolist()):
        out[i] = mapping.setdefault(lab, len(mapping))
    return out


def _as_features(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (n, F), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("features contain NaN or infinite values")
    return x


def _kmeans(x: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    with warnings.catch_warnings():
        # Fewer distinct points than k (e.g. identical clients) only warns; the labels are
        # still valid (some clusters end up empty), and canonical_labels renumbers them.
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=n_init, random_state=_random_state(seed))
        return km.fit_predict(x)


def cluster_clients(features, k: int, seed: int, n_init: int = 10) -> np.ndarray:
    """KMeans cluster labels of the clients (SPEC §3 step 2).

    Parameters
    ----------
    features : array_like, float, shape (n, F)
        One flattened batch-mean activation per client, in client order.
    k : int >= 1, number of clusters (the number of domains by default).
    seed : int, the run's root seed; KMeans' ``random_state`` is derived from its
        ``seeding.CLUSTERING`` stream, so the same seed gives the same labels every round.
    n_init : int, default 10, KMeans restarts.

    Returns
    -------
    labels : ndarray, int64, shape (n,)
        Cluster ids numbered by first appearance in client order (see :func:`canonical_labels`).
        ``k == 1`` → all 0; ``k >= n`` → every client its own cluster (0..n−1).
    """
    x = _as_features(features)
    n = x.shape[0]
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    k = int(k)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    return canonical_labels(_kmeans(x, k, seed, n_init))


def choose_k_silhouette(features, k_max: int, seed: int, n_init: int = 10) -> int:
    """Number of clusters with the best silhouette score over k = 2..min(k_max, n−1).

    An optional automatic choice of k (SPEC §3 step 2's "welcome extra").

    Parameters
    ----------
    features : array_like, float, shape (n, F)
    k_max : int, largest k tried.
    seed : int, the run's root seed (as in :func:`cluster_clients`).
    n_init : int, default 10.

    Returns
    -------
    k : int
        The best-scoring k (ties → the smaller k); 1 when n < 3, k_max < 2, or no k yields at
        least two distinct clusters (e.g. all clients identical).
    """
    from sklearn.metrics import silhouette_score

    x = _as_features(features)
    n = x.shape[0]
    best_k, best_score = 1, -np.inf
    for k in range(2, min(int(k_max), n - 1) + 1):
        labels = _kmeans(x, k, seed, n_init)
        n_labels = np.unique(labels).size
        if not 2 <= n_labels <= n - 1:
            continue  # silhouette is undefined here
        score = silhouette_score(x, labels)
        if score > best_score:
            best_k, best_score = k, score
    return best_k


__all__ = ["cluster_clients", "choose_k_silhouette", "canonical_labels"]
