"""KLD-weighted clustered federated learning for split models (SPEC §3).

Pure NumPy (plus scikit-learn's KMeans): no MPI and no torch. The engine gathers states and
activations, calls :func:`federate`, and scatters the result.
"""
from .aggregation import WEIGHT_TOL, aggregate
from .clustering import canonical_labels, choose_k_silhouette, cluster_clients
from .kld import DEFAULT_EPS, global_kld_scores, kld_scores, spatial_softmax
from .round import FederationOutcome, federate
from .weights import fedavg_weights, kld_weights

__all__ = [
    "spatial_softmax", "kld_scores", "global_kld_scores", "DEFAULT_EPS",
    "kld_weights", "fedavg_weights",
    "cluster_clients", "choose_k_silhouette", "canonical_labels",
    "aggregate", "WEIGHT_TOL",
    "FederationOutcome", "federate",
]
