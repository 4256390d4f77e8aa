"""Scenario partitioning (SPEC §4), on synthetic labels so no dataset is needed."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from huscf_mpi.data import SCENARIOS, ClientShard, partition, partition_summary, unheld_labels


def labels(n: int = 60000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, n).astype(np.int64)


LABELS = {"mnist": labels(seed=1), "fashion_mnist": labels(seed=2), "kmnist": labels(8000, 3),
          "notmnist": labels(8000, 4)}


def check_common(shards: list[ClientShard], clients: dict[str, int]) -> None:
    assert [s.client for s in shards] == list(range(1, sum(clients.values()) + 1))
    assert [s.domain for s in shards] == [d for d, n in clients.items() for _ in range(n)]
    for domain in clients:
        idx = np.concatenate([s.indices for s in shards if s.domain == domain])
        assert len(idx) == len(np.unique(idx)), "shards within a domain overlap"
        assert idx.min() >= 0 and idx.max() < len(LABELS[domain])
    for s in shards:
        assert s.indices.dtype == np.int64 and 0 < s.size <= s.cap
        present = set(np.unique(LABELS[s.domain][s.indices]).tolist())
        assert not present & set(s.excluded_labels), "an excluded label is still in the shard"


def test_scenarios_table():
    assert sorted(SCENARIOS) == list(range(1, 8))
    assert SCENARIOS[6].domains == ("mnist", "fashion_mnist", "kmnist", "notmnist")
    assert SCENARIOS[7].domains == SCENARIOS[6].domains
    assert SCENARIOS[7].exclusion == SCENARIOS[4].exclusion == SCENARIOS[2].exclusion
    assert SCENARIOS[7].cap_tiers == SCENARIOS[4].cap_tiers
    for spec in SCENARIOS.values():
        assert sum(share for share, _ in spec.cap_tiers) == 1


def test_iid_equal_shards():
    clients = {"mnist": 10}
    shards = partition(1, clients, LABELS, seed=0)
    check_common(shards, clients)
    assert [s.size for s in shards] == [6000] * 10 and all(s.excluded_labels == () for s in shards)
    assert all(s.cap == 6000 for s in shards)


def test_iid_multi_domain_cap_is_global_s():
    clients = {"mnist": 5, "fashion_mnist": 5, "kmnist": 5, "notmnist": 5}
    shards = partition(6, clients, LABELS, seed=0)
    check_common(shards, clients)
    assert all(s.cap == 3000 for s in shards)  # S = 60000 // 20
    assert [s.size for s in shards if s.domain == "mnist"] == [3000] * 5  # 12000-sample shards capped
    assert [s.size for s in shards if s.domain == "kmnist"] == [1600] * 5  # 8000 pool-train / 5, below S


@pytest.mark.parametrize("scenario", [2, 4, 7])
def test_non_iid_rules(scenario):
    clients = {d: 10 for d in SCENARIOS[scenario].domains}
    shards = partition(scenario, clients, LABELS, seed=11)
    check_common(shards, clients)
    s = 60000 // sum(clients.values())
    for domain in clients:
        caps = Counter(sh.cap for sh in shards if sh.domain == domain)
        assert caps == {2 * s // 3: 3, s: 7}  # 30 % of each domain's clients at ⅔·S
    assert all(len(sh.excluded_labels) in (0, 2, 3, 4) for sh in shards)
    assert any(sh.excluded_labels for sh in shards)


def test_exclusion_count_distribution():
    # 2000 tiny shards: the k frequencies should follow 0.25:0.3:0.1:0.1 normalised
    shards = partition(2, {"mnist": 2000}, LABELS, seed=5)
    freq = Counter(len(sh.excluded_labels) for sh in shards)
    for k, p in zip((0, 2, 3, 4), np.array([0.25, 0.3, 0.1, 0.1]) / 0.75):
        assert abs(freq[k] / 2000 - p) < 0.04, (k, freq)
    # excluded labels are spread over all labels, not always the same ones
    assert set(lab for sh in shards for lab in sh.excluded_labels) == set(range(10))


def test_scenario5_caps_and_exclusions():
    clients = {"mnist": 10, "fashion_mnist": 10}
    shards = partition(5, clients, LABELS, seed=2)
    check_common(shards, clients)
    s = 3000
    for domain in clients:
        sizes = Counter(sh.size for sh in shards if sh.domain == domain)
        # 6000-sample shards minus 2-3 labels still exceed every cap, so size == cap
        assert sizes == {s // 6: 2, s // 3: 3, s: 5}
    assert all(len(sh.excluded_labels) in (2, 3) for sh in shards)


def test_same_seed_same_partition_and_different_seed_differs():
    clients = {"mnist": 6, "fashion_mnist": 4}
    a = partition(4, clients, LABELS, seed=7)
    b = partition(4, dict(clients), {k: v.copy() for k, v in LABELS.items()}, seed=7)
    c = partition(4, clients, LABELS, seed=8)
    assert a == b
    assert a != c
    assert any(not np.array_equal(x.indices, y.indices) for x, y in zip(a, c))


def test_domain_partition_independent_of_other_domains():
    alone = partition(1, {"fashion_mnist": 3}, LABELS, seed=1)  # S = 20000: shards uncapped
    after = partition(1, {"mnist": 3, "fashion_mnist": 3}, LABELS, seed=1)[3:]  # S = 10000
    assert [s.client for s in after] == [4, 5, 6]
    # adding a domain before it only tightens the cap: each shard is a subsample of the same shard
    for x, y in zip(alone, after):
        assert y.size == 10000 and set(y.indices.tolist()) <= set(x.indices.tolist())


def test_max_per_client():
    shards = partition(1, {"mnist": 4}, LABELS, seed=0, max_per_client=100)
    assert all(s.size == 100 and s.cap == 100 for s in shards)
    full = partition(1, {"mnist": 4}, LABELS, seed=0)
    for small, big in zip(shards, full):
        assert set(small.indices.tolist()) <= set(big.indices.tolist())


def test_indices_read_only():
    shard = partition(1, {"mnist": 2}, LABELS, seed=0)[0]
    with pytest.raises(ValueError):
        shard.indices[0] = 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(scenario=9, clients_per_domain={"mnist": 2}), "unknown scenario"),
    (dict(scenario=1, clients_per_domain={"mnist": 0}), "'mnist' has 0 clients"),
    (dict(scenario=1, clients_per_domain={"cifar": 2}), "unknown domain 'cifar'"),
    (dict(scenario=1, clients_per_domain={}), "no domains"),
    (dict(scenario=1, clients_per_domain={"mnist": 2}, max_per_client=0), "max_per_client"),
])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match) as exc:
        partition(train_labels=LABELS, seed=0, **kwargs)
    assert "\n" not in str(exc.value)


def test_empty_shard_is_an_error():
    only_two_labels = {"mnist": np.array([0, 1] * 50, dtype=np.int64)}
    with pytest.raises(ValueError, match=r"client \d+ \(mnist\) has an empty shard"):
        # 100 clients of one sample each: any client excluding its sample's label is empty
        partition(2, {"mnist": 100}, only_two_labels, seed=0)


def test_summary():
    shards = partition(2, {"mnist": 3}, LABELS, seed=0)
    rows = partition_summary(shards)
    assert [r["client"] for r in rows] == [1, 2, 3]
    assert rows[0] == {"client": 1, "domain": "mnist", "size": shards[0].size,
                       "excluded_labels": list(shards[0].excluded_labels), "cap": shards[0].cap}


@pytest.mark.parametrize("scenario", [2, 5])
def test_two_class_domain_never_loses_every_class(scenario):
    labels = {"pneumoniamnist": np.arange(4000) % 2}
    shards = partition(scenario, {"pneumoniamnist": 20}, labels, seed=3)
    assert all(len(sh.excluded_labels) <= 1 for sh in shards)
    assert any(len(sh.excluded_labels) == 1 for sh in shards)  # exclusion still applies
    assert all(sh.size > 0 for sh in shards)


def test_unheld_labels_names_labels_no_client_holds():
    labels = {"pneumoniamnist": np.arange(4000) % 2, "mnist": np.arange(6000) % 10}
    shards = partition(2, {"pneumoniamnist": 4, "mnist": 3}, labels, seed=0)
    # Independent count: a label is held when some client's shard contains an image of it.
    expected = {}
    for d in labels:
        held = set().union(*(set(labels[d][sh.indices].tolist()) for sh in shards if sh.domain == d))
        if missing := sorted(set(range(labels[d].max() + 1)) - held):
            expected[d] = missing
    assert unheld_labels(shards, labels) == expected
    # Seed 0 happens to make all 4 PneumoniaMNIST clients exclude class 0 (the quick config's lesson).
    assert all(sh.excluded_labels == (0,) for sh in shards if sh.domain == "pneumoniamnist")
    assert expected == {"pneumoniamnist": [0]}
