"""One federation round: cluster → score → weight → aggregate (SPEC §3)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .aggregation import State, aggregate
from .clustering import choose_k_silhouette, cluster_clients
from .kld import DEFAULT_EPS, global_kld_scores, kld_scores
from .weights import fedavg_weights, kld_weights


@dataclass
class FederationOutcome:
    """Result of :func:`federate`. Arrays are indexed like ``client_ids``.

    Attributes
    ----------
    client_states : {client id: state}, the blocks each client loads.
    server_state : state, the server's new body blocks.
    labels : ndarray int64 (n,), cluster of each client (all 0 in warm-up).
    kld : ndarray float64 (n,), within-cluster ``KL(Q_i‖P_i)`` (in warm-up: the one-cluster
        score, recorded for information only).
    weights : ndarray float64 (n,), the weights the clients' blocks were averaged with.
    global_kld : ndarray float64 (n,), the all-clients score.
    global_weights : ndarray float64 (n,), the weights the server's blocks were averaged with.
    warmup : bool, whether this was a FedAvg warm-up round.
    """

    client_states: dict
    server_state: dict
    labels: np.ndarray
    kld: np.ndarray
    weights: np.ndarray
    global_kld: np.ndarray
    global_weights: np.ndarray
    warmup: bool


def federate(round_index: int, client_ids: Sequence[int], features, n_samples,
             client_states: Mapping[int, State], server_state: State, k: int | None,
             alpha: float, warmup_rounds: int, seed: int, *, n_init: int = 10,
             k_max: int | None = None, eps: float = DEFAULT_EPS) -> FederationOutcome:
    """Run SPEC §3 steps 2–6 for one round.

    Parameters
    ----------
    round_index : int >= 1, the round number (1-based).
    client_ids : sequence of n distinct ints; fixes the order of every array below and of the
        canonical cluster numbering (first appearance).
    features : array_like, float, shape (n, C, H, W) or (n, C, HW)
        Each client's batch-mean activation of its last real batch at the clustering block.
    n_samples : array_like, shape (n,), each client's sample count.
    client_states, server_state : states as in :func:`aggregate`; ``client_states`` must
        have exactly the ids in ``client_ids``.
    k : int >= 1, number of clusters; ``None`` chooses it by silhouette over 2..``k_max``
        (default n − 1).
    alpha : float, the KLD discount α.
    warmup_rounds : int >= 0; rounds ``<= warmup_rounds`` are plain size-weighted FedAvg over
        all clients (one cluster, KLD not used), clients and server alike.
    seed : int, the run's root seed (KMeans uses its ``CLUSTERING`` stream).
    n_init, eps : KMeans restarts and the KLD's ε.

    Returns
    -------
    FederationOutcome
    """
    if int(round_index) != round_index or round_index < 1:
        raise ValueError(f"round_index is 1-based, got {round_index}")
    ids = [int(c) for c in client_ids]
    n = len(ids)
    if n == 0:
        raise ValueError("federate needs at least one client")
    if len(set(ids)) != n:
        raise ValueError(f"client_ids contains duplicates: {ids}")
    if set(client_states) != set(ids):
        raise ValueError(f"client_states ids {sorted(client_states)} differ from client_ids {sorted(ids)}")
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim not in (3, 4) or feats.shape[0] != n:
        raise ValueError(f"features must have shape ({n}, C, H, W) or ({n}, C, HW), got {feats.shape}")
    counts = np.asarray(n_samples, dtype=np.float64)
    if counts.shape != (n,):
        raise ValueError(f"n_samples must have shape ({n},), got {counts.shape}")

    global_kld = global_kld_scores(feats, eps=eps)
    warmup = round_index <= warmup_rounds
    if warmup:
        labels = np.zeros(n, dtype=np.int64)
        kld = global_kld.copy()  # one cluster: the within-cluster score is the global one
        weights = fedavg_weights(counts)
        global_weights = weights.copy()
    else:
        flat = feats.reshape(n, -1)
        if k is None:
            k = choose_k_silhouette(flat, n - 1 if k_max is None else k_max, seed, n_init=n_init)
        labels = cluster_clients(flat, k, seed, n_init=n_init)
        kld = kld_scores(feats, labels, eps=eps)
        weights = kld_weights(counts, kld, labels, alpha)
        global_weights = kld_weights(counts, global_kld, np.zeros(n, dtype=np.int64), alpha)

    new_clients, new_server = aggregate(
        client_states, server_state,
        groups={c: int(labels[i]) for i, c in enumerate(ids)},
        weights={c: float(weights[i]) for i, c in enumerate(ids)},
        global_weights={c: float(global_weights[i]) for i, c in enumerate(ids)},
    )
    return FederationOutcome(new_clients, new_server, labels, kld, weights, global_kld,
                             global_weights, bool(warmup))


__all__ = ["FederationOutcome", "federate"]
