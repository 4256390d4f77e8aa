"""Layer-wise (block-wise) aggregation of split models (SPEC §3 step 5).

Data model: a *state* is ``{net: {block: {param_name: ndarray}}}`` with ``net`` in
``("g", "d")`` and ``block`` the 1-based block index, holding only the blocks its owner hosts
(a client: its head and tail blocks; the server: the union of the clients' body spans).
Parameters and every buffer (BatchNorm running mean/var, ``num_batches_tracked``) are
included; floating values are averaged, integer ones take the rounded weighted mean.

For a cluster K and block b the aggregate of the cluster's "virtual" full network is

    agg_K[b] = Σ_{i in K} w_i · (client i's copy of b if i hosts b, else the server's copy of b),

and every member loads ``agg_K[b]`` for each block it hosts. The server's blocks get the same
sum over *all* clients with the global weights.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

State = Mapping[str, Mapping[int, Mapping[str, np.ndarray]]]

WEIGHT_TOL = 1e-6


def _check_weights(weights: Mapping[int, float], clients, what: str) -> None:
    total = 0.0
    for c in clients:
        if c not in weights:
            raise ValueError(f"{what}: no weight for client {c}")
        w = float(weights[c])
        if not np.isfinite(w) or w < 0:
            raise ValueError(f"{what}: weight of client {c} must be finite and >= 0, got {w}")
        total += w
    if abs(total - 1.0) > WEIGHT_TOL:
        raise ValueError(f"{what}: weights must sum to 1 (tolerance {WEIGHT_TOL}), got {total!r}")


def _copy_of(client_state: State, server_state: State, net: str, block: int, client: int
             ) -> Mapping[str, np.ndarray]:
    """Client's own copy of ``block`` if it hosts it, else the server's; error if neither does."""
    own = client_state.get(net, {})
    if block in own:
        return own[block]
    srv = server_state.get(net, {})
    if block in srv:
        return srv[block]
    raise ValueError(f"block {net}{block} is hosted neither by client {client} nor by the server, "
                     f"so it cannot stand in for that client's copy")


def _weighted_block(members, weights: Mapping[int, float], client_states: Mapping[int, State],
                    server_state: State, net: str, block: int) -> dict[str, np.ndarray]:
    """``Σ_i w_i · copy_i(net, block)`` over ``members`` (sorted ids, for reproducible sums)."""
    copies = [(c, _copy_of(client_states[c], server_state, net, block, c)) for c in members]
    names = set(copies[0][1])
    for c, params in copies[1:]:
        if set(params) != names:
            raise ValueError(f"block {net}{block}: parameter names differ between copies "
                             f"(client {copies[0][0]}: {sorted(names)}, client {c}: {sorted(params)})")
    out: dict[str, np.ndarray] = {}
    for name in sorted(names):
        ref = np.asarray(copies[0][1][name])
        acc = np.zeros(ref.shape, dtype=np.float64)
        for c, params in copies:
            value = np.asarray(params[name])
            if value.shape != ref.shape:
                raise ValueError(f"block {net}{block}, {name}: shape {value.shape} (client {c}) "
                                 f"differs from {ref.shape}")
            acc += float(weights[c]) * value.astype(np.float64)
        if np.issubdtype(ref.dtype, np.inexact):
            out[name] = acc.astype(ref.dtype)
        else:
            # Integer buffers (num_batches_tracked): nearest integer (ties to even).
            out[name] = np.rint(acc).astype(ref.dtype)
    return out


def _hosted(state: State):
    """(net, block) pairs a state holds, in a fixed order."""
    return [(net, b) for net in sorted(state) for b in sorted(state[net])]


def aggregate(client_states: Mapping[int, State], server_state: State,
              groups: Mapping[int, int], weights: Mapping[int, float],
              global_weights: Mapping[int, float]) -> tuple[dict[int, dict], dict]:
    """Cluster-wise and global layer-wise weighted averages (SPEC §3 step 5).

    Parameters
    ----------
    client_states : {client id: state}
        Each client's hosted blocks (head and tail) of ``"g"`` and ``"d"``.
    server_state : state
        The server's hosted body blocks.
    groups : {client id: cluster id}
    weights : {client id: float}
        Within-cluster weights; must be >= 0 and sum to 1 (±1e-6) within every cluster.
    global_weights : {client id: float}
        Weights over all clients for the server's blocks; must sum to 1 (±1e-6).

    Returns
    -------
    new_client_states : {client id: state}, same blocks and parameter names as the input;
        each block is the cluster aggregate.
    new_server_state : state, same blocks as ``server_state``; each block is the global
        aggregate over all clients.

    Values are freshly allocated (inputs are never mutated or aliased) and keep their dtype;
    sums are accumulated in float64.

    Raises
    ------
    ValueError
        Missing group/weight for a client, weights not summing to 1 within a cluster (or
        globally), a needed block hosted by neither the client nor the server, or copies of a
        block that disagree in parameter names or shapes.
    """
    clients = sorted(client_states)
    if not clients:
        raise ValueError("aggregate needs at least one client")
    for c in clients:
        if c not in groups:
            raise ValueError(f"no cluster (groups) entry for client {c}")
    clusters: dict[int, list[int]] = {}
    for c in clients:
        clusters.setdefault(groups[c], []).append(c)
    for lab, members in clusters.items():
        _check_weights(weights, members, f"cluster {lab!r}")
    _check_weights(global_weights, clients, "global weights")

    new_clients: dict[int, dict] = {}
    for lab, members in clusters.items():
        needed = sorted({nb for c in members for nb in _hosted(client_states[c])})
        agg = {(net, b): _weighted_block(members, weights, client_states, server_state, net, b)
               for net, b in needed}
        for c in members:
            # Each member gets its own copy of the arrays, so clients never alias each other.
            new_clients[c] = {net: {b: {k: v.copy() for k, v in agg[(net, b)].items()}
                                    for b in blocks}
                              for net, blocks in client_states[c].items()}

    new_server = {net: {b: _weighted_block(clients, global_weights, client_states, server_state, net, b)
                        for b in blocks}
                  for net, blocks in server_state.items()}
    return new_clients, new_server


__all__ = ["aggregate", "WEIGHT_TOL"]
