"""Tests of huscf_mpi.federation (SPEC §3) against hand computations and loop-based references."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from huscf_mpi.federation import (aggregate, canonical_labels, choose_k_silhouette, cluster_clients,
                                  federate, fedavg_weights, global_kld_scores, kld_scores,
                                  kld_weights, spatial_softmax)

EPS = 1e-9
LOG3 = math.log(3.0)


# ---------------------------------------------------------------- loop-based references

def _softmax_loop(a_cs):
    """a_cs: list over channels of lists over positions → list of lists of probabilities."""
    out = []
    for row in a_cs:
        m = max(row)
        e = [math.exp(v - m) for v in row]
        z = sum(e)
        out.append([v / z for v in e])
    return out


def _kld_loop(acts, labels, eps=EPS):
    """KL(Q_i || P_i) per client, one scalar at a time (no vectorisation)."""
    n = len(acts)
    P = [_softmax_loop(np.asarray(a).reshape(np.asarray(a).shape[0], -1).tolist()) for a in acts]
    C, S = len(P[0]), len(P[0][0])
    out = []
    for i in range(n):
        others = [j for j in range(n) if labels[j] == labels[i] and j != i]
        if not others:
            out.append(0.0)
            continue
        total = 0.0
        for c in range(C):
            for s in range(S):
                q = sum(P[j][c][s] for j in others) / len(others)
                total += q * (math.log(q + eps) - math.log(P[i][c][s] + eps))
        out.append(total / C)
    return np.array(out)


# ---------------------------------------------------------------- spatial softmax

def test_spatial_softmax_rows_sum_to_one_and_shape():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(3, 4, 5, 6)).astype(np.float32) * 10
    P = spatial_softmax(acts)
    assert P.shape == (3, 4, 30) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(P > 0)
    # (..., C, HW) form with spatial_ndim=1 gives the same numbers.
    np.testing.assert_allclose(spatial_softmax(acts.reshape(3, 4, 30), spatial_ndim=1), P)


def test_spatial_softmax_hand_values_and_large_inputs():
    P = spatial_softmax(np.array([[[0.0, LOG3]]]), spatial_ndim=1)
    np.testing.assert_allclose(P, [[[1 / 4, 3 / 4]]], atol=1e-15)
    # Shift invariance, no overflow for huge activations.
    P = spatial_softmax(np.array([[[1000.0, 1000.0 + LOG3]]]), spatial_ndim=1)
    np.testing.assert_allclose(P, [[[1 / 4, 3 / 4]]], atol=1e-12)


# ---------------------------------------------------------------- KLD

def _three_clients():
    # C=1, H=1, W=2. P_a = (1/2, 1/2), P_b = (1/4, 3/4), P_c = (3/4, 1/4).
    return np.array([[[[0.0, 0.0]]], [[[0.0, LOG3]]], [[[LOG3, 0.0]]]])


def test_kld_hand_case_one_cluster():
    kld = kld_scores(_three_clients(), np.array([0, 0, 0]))
    # Q_a = mean(P_b, P_c) = (1/2, 1/2) = P_a  → 0.
    # Q_b = mean(P_a, P_c) = (5/8, 3/8): KL(Q_b||P_b) = 5/8 log((5/8)/(1/4)) + 3/8 log((3/8)/(3/4)).
    # Q_c = mean(P_a, P_b) = (3/8, 5/8): KL(Q_c||P_c) = 3/8 log((3/8)/(3/4)) + 5/8 log((5/8)/(1/4)).
    kb = 5 / 8 * math.log((5 / 8) / (1 / 4)) + 3 / 8 * math.log((3 / 8) / (3 / 4))
    kc = 3 / 8 * math.log((3 / 8) / (3 / 4)) + 5 / 8 * math.log((5 / 8) / (1 / 4))
    np.testing.assert_allclose(kld, [0.0, kb, kc], atol=1e-7)
    # It is KL(Q||P), not the reverse KL(P||Q) = 1/4 log((1/4)/(5/8)) + 3/4 log((3/4)/(3/8)).
    reverse_b = 1 / 4 * math.log((1 / 4) / (5 / 8)) + 3 / 4 * math.log((3 / 4) / (3 / 8))
    assert abs(kld[1] - reverse_b) > 1e-2
    np.testing.assert_allclose(global_kld_scores(_three_clients()), kld)


def test_kld_averages_over_channels():
    # Channel 0 as in the hand case, channel 1 identical across clients (contributes 0):
    # every score halves (the 1/C factor).
    one = _three_clients()
    two = np.concatenate([one, np.zeros_like(one)], axis=1)  # (3, 2, 1, 2)
    np.testing.assert_allclose(kld_scores(two, [0, 0, 0]), kld_scores(one, [0, 0, 0]) / 2, atol=1e-12)


def test_kld_two_clusters_and_singleton():
    acts = _three_clients()
    kld = kld_scores(acts, np.array([4, 4, 9]))  # arbitrary label values
    # Pair {a, b}: Q_a = P_b, Q_b = P_a. Client c alone → 0.
    ka = 1 / 4 * math.log((1 / 4) / (1 / 2)) + 3 / 4 * math.log((3 / 4) / (1 / 2))
    kb = 1 / 2 * math.log((1 / 2) / (1 / 4)) + 1 / 2 * math.log((1 / 2) / (3 / 4))
    np.testing.assert_allclose(kld, [ka, kb, 0.0], atol=1e-7)


def test_kld_matches_loop_nonnegative_and_zero_for_identical():
    rng = np.random.default_rng(1)
    acts = rng.normal(size=(7, 3, 2, 4))
    labels = np.array([0, 1, 0, 2, 1, 0, 3])
    kld = kld_scores(acts, labels)
    np.testing.assert_allclose(kld, _kld_loop(acts, labels), rtol=1e-10, atol=1e-12)
    assert np.all(kld >= -1e-8)
    assert kld[6] == 0.0 and kld[3] == 0.0
    same = np.repeat(acts[:1], 4, axis=0)
    np.testing.assert_allclose(kld_scores(same, [0, 0, 0, 0]), 0.0, atol=1e-12)


def test_kld_rejects_bad_shapes():
    with pytest.raises(ValueError):
        kld_scores(np.zeros((3, 4)), [0, 0, 0])
    with pytest.raises(ValueError):
        kld_scores(np.zeros((3, 1, 2, 2)), [0, 0])


# ---------------------------------------------------------------- weights

def test_kld_weights_hand_values():
    n = np.array([100, 200, 50])
    kld = np.array([0.0, math.log(2.0), 0.5])
    # Cluster {0,1}: 100·e^0 = 100, 200·e^{-log 2} = 100 → 1/2, 1/2. Client 2 alone → 1.
    np.testing.assert_allclose(kld_weights(n, kld, [0, 0, 1], alpha=1.0), [0.5, 0.5, 1.0], atol=1e-12)
    # α = 2: 100, 200/4 = 50 → 2/3, 1/3.
    np.testing.assert_allclose(kld_weights(n, kld, [7, 7, 3], alpha=2.0), [2 / 3, 1 / 3, 1.0], atol=1e-12)
    # One cluster of three: 100, 100, 50·e^{-0.5}.
    t = 50 * math.exp(-0.5)
    np.testing.assert_allclose(kld_weights(n, kld, [0, 0, 0]), [100 / (200 + t), 100 / (200 + t), t / (200 + t)])


def test_kld_weights_numerically_safe_and_sum_to_one():
    # Naive exp(-1000) underflows to 0/0; the stable form gives 1/(1+e^-1), e^-1/(1+e^-1).
    w = kld_weights([10, 10, 5], [1000.0, 1001.0, 3.0], [0, 0, 1])
    e = math.exp(-1.0)
    np.testing.assert_allclose(w, [1 / (1 + e), e / (1 + e), 1.0], rtol=1e-12)
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=20)
    w = kld_weights(rng.integers(1, 100, size=20), rng.random(20) * 5, labels)
    for lab in np.unique(labels):
        assert abs(w[labels == lab].sum() - 1) < 1e-12


def test_fedavg_weights_and_errors():
    np.testing.assert_allclose(fedavg_weights([1, 3]), [0.25, 0.75])
    np.testing.assert_allclose(fedavg_weights([10, 20, 10, 60]), [0.1, 0.2, 0.1, 0.6])
    with pytest.raises(ValueError):
        fedavg_weights([0, 0])
    with pytest.raises(ValueError):
        kld_weights([0, 0, 3], [0.1, 0.2, 0.3], [0, 0, 1])  # cluster 0 has no samples
    with pytest.raises(ValueError):
        kld_weights([1, -1], [0.0, 0.0], [0, 0])


# ---------------------------------------------------------------- clustering

def _blobs():
    rng = np.random.default_rng(3)
    a, b = np.array([10.0, 10.0, 0.0]), np.array([-10.0, -10.0, 5.0])
    order = ["B", "A", "B", "A", "A", "B"]
    x = np.stack([(a if o == "A" else b) + 0.1 * rng.normal(size=3) for o in order])
    return x


def test_cluster_clients_separates_blobs_with_canonical_labels():
    x = _blobs()
    labels = cluster_clients(x, 2, seed=123)
    # First client (blob B) is cluster 0, the first blob-A client cluster 1.
    np.testing.assert_array_equal(labels, [0, 1, 0, 1, 1, 0])
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(cluster_clients(x, 2, seed=7), labels)


def test_cluster_clients_edge_cases():
    x = _blobs()
    np.testing.assert_array_equal(cluster_clients(x, 1, seed=0), np.zeros(6))
    np.testing.assert_array_equal(cluster_clients(x, 6, seed=0), np.arange(6))
    np.testing.assert_array_equal(cluster_clients(x, 9, seed=0), np.arange(6))
    with pytest.raises(ValueError):
        cluster_clients(x, 0, seed=0)
    np.testing.assert_array_equal(canonical_labels([7, 7, 2, 9, 2]), [0, 0, 1, 2, 1])


def test_choose_k_silhouette():
    rng = np.random.default_rng(4)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    x = np.concatenate([c + 0.2 * rng.normal(size=(4, 2)) for c in centres])
    assert choose_k_silhouette(x, k_max=6, seed=0) == 3
    assert choose_k_silhouette(x[:2], k_max=6, seed=0) == 1
    assert choose_k_silhouette(np.ones((5, 2)), k_max=4, seed=0) == 1


# ---------------------------------------------------------------- aggregation

def _arr(v, dtype=np.float32):
    return np.array([v, -v], dtype=dtype)


def _agg_setup():
    """Generator cuts: client 1 (head 2, tail 4) hosts g1,g2,g4,g5; client 2 (1, 5) hosts g1,g5;
    client 3 (1, 4) hosts g1,g4,g5. Server hosts the union of spans: g2, g3, g4.
    Client c's copy of block b holds 10c+b; the server's copy 100+b. Block g2 also carries BN
    buffers. Discriminator: client 2 hosts d2 (22), clients 1 and 3 do not; server hosts d2..d4.
    """
    def blk(v, bn=None):
        out = {"w": _arr(v)}
        if bn is not None:
            out["bn.running_mean"] = np.array(bn[0], dtype=np.float32)
            out["bn.num_batches_tracked"] = np.array(bn[1], dtype=np.int64)
        return out

    clients = {
        1: {"g": {1: blk(11), 2: blk(12, ([1.0, 2.0], 3)), 4: blk(14), 5: blk(15)},
            "d": {1: blk(11), 5: blk(15)}},
        2: {"g": {1: blk(21), 5: blk(25)},
            "d": {1: blk(21), 2: blk(22), 5: blk(25)}},
        3: {"g": {1: blk(31), 4: blk(34), 5: blk(35)},
            "d": {1: blk(31), 5: blk(35)}},
    }
    server = {"g": {2: blk(102, ([3.0, 6.0], 10)), 3: blk(103), 4: blk(104)},
              "d": {2: blk(102), 3: blk(103), 4: blk(104)}}
    groups = {1: 0, 2: 0, 3: 1}
    weights = {1: 0.25, 2: 0.75, 3: 1.0}
    global_weights = {1: 0.4, 2: 0.35, 3: 0.25}
    return clients, server, groups, weights, global_weights


def test_aggregate_hand_values():
    clients, server, groups, weights, gw = _agg_setup()
    before = copy.deepcopy((clients, server))
    new_c, new_s = aggregate(clients, server, groups, weights, gw)

    def w(state, net, b, name="w"):
        return state[net][b][name]

    # Cluster {1, 2} with weights 0.25 / 0.75; client 2 lacks g2, g4 → server copies stand in.
    for c in (1, 2):
        np.testing.assert_allclose(w(new_c[c], "g", 1), _arr(0.25 * 11 + 0.75 * 21))
        np.testing.assert_allclose(w(new_c[c], "g", 5), _arr(0.25 * 15 + 0.75 * 25))
        np.testing.assert_allclose(w(new_c[c], "d", 1), _arr(0.25 * 11 + 0.75 * 21))
    np.testing.assert_allclose(w(new_c[1], "g", 2), _arr(0.25 * 12 + 0.75 * 102))
    np.testing.assert_allclose(w(new_c[1], "g", 4), _arr(0.25 * 14 + 0.75 * 104))
    np.testing.assert_allclose(w(new_c[1], "g", 2, "bn.running_mean"),
                               [0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6])
    nbt = new_c[1]["g"][2]["bn.num_batches_tracked"]
    assert nbt.dtype == np.int64 and int(nbt) == 8  # 0.25·3 + 0.75·10 = 8.25 → 8
    # d2 hosted by client 2 only; client 1 contributes the server's copy.
    np.testing.assert_allclose(w(new_c[2], "d", 2), _arr(0.25 * 102 + 0.75 * 22))
    # Each client gets back exactly its own blocks.
    for c in clients:
        assert {n: set(bs) for n, bs in new_c[c].items()} == {n: set(bs) for n, bs in clients[c].items()}
    # Client 3 is alone → unchanged.
    for b, v in ((1, 31), (4, 34), (5, 35)):
        np.testing.assert_allclose(w(new_c[3], "g", b), _arr(v))

    # Server: all clients with global weights 0.4 / 0.35 / 0.25.
    np.testing.assert_allclose(w(new_s, "g", 2), _arr(0.4 * 12 + 0.35 * 102 + 0.25 * 102), rtol=1e-6)
    np.testing.assert_allclose(w(new_s, "g", 3), _arr(103.0), rtol=1e-6)
    np.testing.assert_allclose(w(new_s, "g", 4), _arr(0.4 * 14 + 0.35 * 104 + 0.25 * 34), rtol=1e-6)
    np.testing.assert_allclose(w(new_s, "d", 2), _arr(0.4 * 102 + 0.35 * 22 + 0.25 * 102), rtol=1e-6)
    np.testing.assert_allclose(w(new_s, "g", 2, "bn.running_mean"),
                               [0.4 * 1 + 0.6 * 3, 0.4 * 2 + 0.6 * 6], rtol=1e-6)
    assert int(new_s["g"][2]["bn.num_batches_tracked"]) == 7  # 0.4·3 + 0.6·10 = 7.2 → 7
    assert set(new_s["g"]) == {2, 3, 4} and set(new_s["d"]) == {2, 3, 4}
    assert new_s["g"][2]["w"].dtype == np.float32

    # Inputs untouched; outputs do not alias inputs or each other.
    for got, want in zip(_leaves((clients, server)), _leaves(before)):
        np.testing.assert_array_equal(got, want)
    new_c[1]["g"][1]["w"][0] = -999
    assert new_c[2]["g"][1]["w"][0] != -999 and clients[1]["g"][1]["w"][0] == 11
    new_s["g"][3]["w"][0] = -999
    assert server["g"][3]["w"][0] == 103


def _leaves(tree):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from _leaves(tree[k])
    elif isinstance(tree, (tuple, list)):
        for t in tree:
            yield from _leaves(t)
    else:
        yield tree


def test_aggregate_errors():
    clients, server, groups, weights, gw = _agg_setup()
    no_g2 = copy.deepcopy(server)
    del no_g2["g"][2]
    with pytest.raises(ValueError, match="hosted neither"):
        aggregate(clients, no_g2, groups, weights, gw)
    with pytest.raises(ValueError, match="sum to 1"):
        aggregate(clients, server, groups, {1: 0.3, 2: 0.6, 3: 1.0}, gw)
    with pytest.raises(ValueError, match="sum to 1"):
        aggregate(clients, server, groups, weights, {1: 0.4, 2: 0.35, 3: 0.3})
    with pytest.raises(ValueError):
        aggregate(clients, server, {1: 0, 2: 0}, weights, gw)
    # Within tolerance is accepted.
    aggregate(clients, server, groups, {1: 0.25 + 5e-7, 2: 0.75, 3: 1.0}, gw)


# ---------------------------------------------------------------- federate

def _fed_setup():
    """4 clients, every one hosts g1 and g5, server hosts g2..g4; features form two blobs
    {0, 2} and {1, 3} (C=2, 2×2)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(2, 2, 2)) * 3
    Y = rng.normal(size=(2, 2, 2)) * 3 + 20
    feats = np.stack([X, Y, X, Y]) + 0.05 * rng.normal(size=(4, 2, 2, 2))
    clients = {c: {"g": {1: {"w": _arr(10 * c + 1, np.float64)}, 5: {"w": _arr(10 * c + 5, np.float64)}}}
               for c in range(4)}
    server = {"g": {b: {"w": _arr(100 + b, np.float64)} for b in (2, 3, 4)}}
    return feats, clients, server


def test_federate_warmup_is_fedavg():
    feats, clients, server = _fed_setup()
    n = np.array([1, 1, 2, 4])
    out = federate(2, [0, 1, 2, 3], feats, n, clients, server, k=2, alpha=1.0, warmup_rounds=2, seed=0)
    assert out.warmup
    np.testing.assert_array_equal(out.labels, [0, 0, 0, 0])
    w = [1 / 8, 1 / 8, 2 / 8, 4 / 8]
    np.testing.assert_allclose(out.weights, w)
    np.testing.assert_allclose(out.global_weights, w)
    expect1 = w[0] * 1 + w[1] * 11 + w[2] * 21 + w[3] * 31
    for c in range(4):
        np.testing.assert_allclose(out.client_states[c]["g"][1]["w"], _arr(expect1))
    # Server blocks: no client hosts them, so every client contributes the server copy.
    np.testing.assert_allclose(out.server_state["g"][3]["w"], _arr(103.0))
    np.testing.assert_allclose(out.kld, out.global_kld)
    np.testing.assert_allclose(out.global_kld, _kld_loop(feats, [0, 0, 0, 0]), rtol=1e-10)


def test_federate_clustered_round():
    feats, clients, server = _fed_setup()
    n = np.array([10, 20, 30, 40])
    ids = [0, 1, 2, 3]
    out = federate(3, ids, feats, n, clients, server, k=2, alpha=1.0, warmup_rounds=2, seed=0)
    assert not out.warmup
    np.testing.assert_array_equal(out.labels, [0, 1, 0, 1])
    kld = _kld_loop(feats, [0, 1, 0, 1])
    np.testing.assert_allclose(out.kld, kld, rtol=1e-10, atol=1e-12)
    # Pair weights by hand: n_i e^{-KLD_i} / (n_i e^{-KLD_i} + n_j e^{-KLD_j}).
    s02 = 10 * math.exp(-kld[0]) + 30 * math.exp(-kld[2])
    s13 = 20 * math.exp(-kld[1]) + 40 * math.exp(-kld[3])
    w = [10 * math.exp(-kld[0]) / s02, 20 * math.exp(-kld[1]) / s13,
         30 * math.exp(-kld[2]) / s02, 40 * math.exp(-kld[3]) / s13]
    np.testing.assert_allclose(out.weights, w, rtol=1e-10)
    gk = _kld_loop(feats, [0, 0, 0, 0])
    np.testing.assert_allclose(out.global_kld, gk, rtol=1e-10)
    g = [n[i] * math.exp(-gk[i]) for i in range(4)]
    np.testing.assert_allclose(out.global_weights, [v / sum(g) for v in g], rtol=1e-10)
    for c in (0, 2):
        np.testing.assert_allclose(out.client_states[c]["g"][5]["w"], _arr(w[0] * 5 + w[2] * 25))
    for c in (1, 3):
        np.testing.assert_allclose(out.client_states[c]["g"][1]["w"], _arr(w[1] * 11 + w[3] * 31))
    np.testing.assert_allclose(out.server_state["g"][2]["w"], _arr(102.0))
    # Auto k by silhouette finds the two blobs too.
    auto = federate(3, ids, feats, n, clients, server, k=None, alpha=1.0, warmup_rounds=2, seed=0)
    np.testing.assert_array_equal(auto.labels, [0, 1, 0, 1])


def test_federate_validates_inputs():
    feats, clients, server = _fed_setup()
    n = np.ones(4)
    with pytest.raises(ValueError):
        federate(0, [0, 1, 2, 3], feats, n, clients, server, k=2, alpha=1.0, warmup_rounds=2, seed=0)
    with pytest.raises(ValueError):
        federate(3, [0, 1, 2], feats[:3], n[:3], clients, server, k=2, alpha=1.0, warmup_rounds=2, seed=0)
