"""Scenario partitioning: which training samples each client holds (SPEC §4).

Procedure, per domain in the order given (client ids run 1..N over the domains in that order,
so client id == MPI rank of the client):

1. The domain's training set is permuted (seeded) and split into as many near-equal shards as
   the domain has clients (``np.array_split``: sizes differ by at most one; nothing dropped).
2. Each shard drops the samples of its client's excluded labels.
3. Each shard is capped by seeded random subsampling at the client's scenario cap
   (a fraction of S = 60000 // N, N = total clients), then at ``max_per_client`` if given.

Choices where SPEC §4 is silent:

* Cap tiers (the 30 % at ⅔·S in scenarios 2/4/7; 20 %/30 %/50 % in scenario 5) are assigned
  **per domain**, so every domain gets the same mix. A tier's client count is its share of the
  domain's clients rounded half up; the last tier takes the remainder. Which clients fall in
  a tier is a seeded random choice. Fractional caps are floored (⅔·S → ``2*S // 3``).
* The number of excluded labels k is drawn independently per client; the k labels are
  distinct, uniformly random among the domain's labels (``0 .. max(label)``). k is capped
  at the number of labels minus one, so exclusion never removes every class (a 2-class
  domain such as PneumoniaMNIST excludes at most one).
* Random streams are keyed by ``seeding.PARTITION``, the domain's CRC-32 and the client's
  index within its domain, so a domain's partition does not change when other domains are
  added before it, and the seed alone fixes the result.
* A shard left empty (by exclusions, or more clients than samples) is an error rather than a
  silently idle client, since every client must produce full batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

import numpy as np

from .. import seeding
from .registry import domain_key

TOTAL = 60000  # S = TOTAL // N per SPEC §4, whatever the domains' actual sizes

# Sub-stream purposes under seeding.PARTITION (never reorder: it would change partitions).
_PERMUTE, _TIERS, _EXCLUDE, _SUBSAMPLE = 0, 1, 2, 3


@dataclass(frozen=True)
class ExclusionRule:
    """How many labels a client excludes: k drawn from ``ks`` with probabilities ``p``."""

    ks: tuple[int, ...]
    weights: tuple[float, ...]

    @property
    def p(self) -> np.ndarray:
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum()


@dataclass(frozen=True)
class ScenarioSpec:
    """One SPEC §4 scenario.

    Attributes
    ----------
    number : int
    name : str
    domains : tuple of str
        Default domains, in client-id order.
    exclusion : ExclusionRule or None
        None: clients keep every label.
    cap_tiers : tuple of (Fraction, Fraction)
        (share of a domain's clients, cap as a fraction of S); shares sum to 1.
    """

    number: int
    name: str
    domains: tuple[str, ...]
    exclusion: ExclusionRule | None
    cap_tiers: tuple[tuple[Fraction, Fraction], ...]


_F = Fraction
_ALL_S = ((_F(1), _F(1)),)
_NONIID_EXCL = ExclusionRule((0, 2, 3, 4), (0.25, 0.3, 0.1, 0.1))
_NONIID_CAPS = ((_F(3, 10), _F(2, 3)), (_F(7, 10), _F(1)))
_HIGH_EXCL = ExclusionRule((2, 3), (0.4, 0.6))
_HIGH_CAPS = ((_F(1, 5), _F(1, 6)), (_F(3, 10), _F(1, 3)), (_F(1, 2), _F(1)))
_TWO = ("mnist", "fashion_mnist")
_FOUR = ("mnist", "fashion_mnist", "kmnist", "notmnist")

SCENARIOS: dict[int, ScenarioSpec] = {
    1: ScenarioSpec(1, "single-domain IID", ("mnist",), None, _ALL_S),
    2: ScenarioSpec(2, "single-domain non-IID", ("mnist",), _NONIID_EXCL, _NONIID_CAPS),
    3: ScenarioSpec(3, "two-domain IID", _TWO, None, _ALL_S),
    4: ScenarioSpec(4, "two-domain non-IID", _TWO, _NONIID_EXCL, _NONIID_CAPS),
    5: ScenarioSpec(5, "two-domain highly non-IID", _TWO, _HIGH_EXCL, _HIGH_CAPS),
    6: ScenarioSpec(6, "multi-domain IID", _FOUR, None, _ALL_S),
    7: ScenarioSpec(7, "multi-domain non-IID", _FOUR, _NONIID_EXCL, _NONIID_CAPS),
}


@dataclass(frozen=True, eq=False)
class ClientShard:
    """The training samples of one client.

    Attributes
    ----------
    client : int
        Client id, 1..N (== MPI rank).
    domain : str
    indices : ndarray of int64, shape (n,)
        Sorted, read-only indices into the domain's training set.
    excluded_labels : tuple of int
        Labels absent from this shard (sorted).
    cap : int
        The cap applied (scenario cap, lowered to ``max_per_client`` if given).
    """

    client: int
    domain: str
    indices: np.ndarray
    excluded_labels: tuple[int, ...]
    cap: int

    @property
    def size(self) -> int:
        return int(len(self.indices))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClientShard):
            return NotImplemented
        return (self.client, self.domain, self.excluded_labels, self.cap) == (
            other.client, other.domain, other.excluded_labels, other.cap) and np.array_equal(self.indices, other.indices)


def _tier_counts(n: int, shares: list[Fraction]) -> list[int]:
    counts, left = [], n
    for share in shares[:-1]:
        c = min(left, int(share * n + Fraction(1, 2)))  # round half up, never past n
        counts.append(c)
        left -= c
    return counts + [left]


def _client_caps(spec: ScenarioSpec, n_clients: int, s: int, stream: np.random.Generator) -> np.ndarray:
    counts = _tier_counts(n_clients, [share for share, _ in spec.cap_tiers])
    caps_sorted = np.concatenate([np.full(c, int(frac * s), dtype=np.int64)
                                  for c, (_, frac) in zip(counts, spec.cap_tiers)])
    return caps_sorted[stream.permutation(n_clients)]


def _validate(scenario: int, clients_per_domain: Mapping[str, int], train_labels: Mapping[str, np.ndarray],
              max_per_client: int | None) -> int:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: choose one of {sorted(SCENARIOS)}")
    if not clients_per_domain:
        raise ValueError("no domains given: clients_per_domain must map at least one domain to a client count")
    for domain, n in clients_per_domain.items():
        if domain not in train_labels:
            raise ValueError(f"unknown domain {domain!r}: no training labels given for it "
                             f"(have {', '.join(train_labels) or 'none'})")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"domain {domain!r} has {n!r} clients: give it at least one client or drop it")
    if max_per_client is not None and max_per_client < 1:
        raise ValueError(f"max_per_client must be >= 1 or None, got {max_per_client}")
    total = int(sum(clients_per_domain.values()))
    if total > TOTAL:
        raise ValueError(f"{total} clients leave S = {TOTAL} // {total} = 0 samples per client: use fewer clients")
    return total


def partition(scenario: int, clients_per_domain: Mapping[str, int], train_labels: Mapping[str, np.ndarray],
              seed: int, max_per_client: int | None = None) -> list[ClientShard]:
    """Split each domain's training set among its clients per SPEC §4.

    Parameters
    ----------
    scenario : int
        1..7 (``SCENARIOS``); decides the exclusion and cap rules.
    clients_per_domain : Mapping[str, int]
        Ordered domain -> number of clients; order fixes client ids. Need not equal the
        scenario's default domains.
    train_labels : Mapping[str, ndarray of int, shape (n_d,)]
        Each domain's training labels (values 0..C-1).
    seed : int
        Run seed; the same seed and arguments give the identical partition.
    max_per_client : int or None
        Extra cap applied after the scenario cap (quick-start runs).

    Returns
    -------
    list of ClientShard
        One per client, ids 1..N in domain order.

    Raises
    ------
    ValueError
        Unknown scenario or domain, a domain with fewer than one client, more than 60000
        clients, ``max_per_client < 1``, or a client whose shard would be empty.
    """
    total = _validate(scenario, clients_per_domain, train_labels, max_per_client)
    spec = SCENARIOS[scenario]
    s = TOTAL // total
    shards: list[ClientShard] = []
    client = 0
    for domain, n_clients in clients_per_domain.items():
        labels = np.asarray(train_labels[domain]).astype(np.int64, copy=False)
        n_classes = int(labels.max()) + 1 if len(labels) else 0
        key = domain_key(domain)
        perm = seeding.rng(seed, seeding.PARTITION, key, _PERMUTE).permutation(len(labels)).astype(np.int64)
        caps = _client_caps(spec, int(n_clients), s, seeding.rng(seed, seeding.PARTITION, key, _TIERS))
        for local, chunk in enumerate(np.array_split(perm, int(n_clients))):
            client += 1
            excluded: tuple[int, ...] = ()
            if spec.exclusion is not None:
                r = seeding.rng(seed, seeding.PARTITION, key, _EXCLUDE, local)
                k = int(r.choice(spec.exclusion.ks, p=spec.exclusion.p))
                # At most n_classes - 1: a shard keeps at least one label (matters for 2-class domains;
                # for 10 classes k <= 4 and the draw is the same as before this rule).
                excluded = tuple(sorted(int(c) for c in r.choice(n_classes, size=min(k, n_classes - 1), replace=False)))
            kept = chunk[~np.isin(labels[chunk], excluded)] if excluded else chunk
            cap = int(caps[local]) if max_per_client is None else min(int(caps[local]), int(max_per_client))
            if len(kept) > cap:
                r = seeding.rng(seed, seeding.PARTITION, key, _SUBSAMPLE, local)
                kept = r.choice(kept, size=cap, replace=False)
            if len(kept) == 0:
                raise ValueError(
                    f"client {client} ({domain}) has an empty shard ({len(chunk)} samples before excluding "
                    f"labels {list(excluded)}, cap {cap}): use fewer clients for {domain}")
            indices = np.sort(kept).astype(np.int64)
            indices.setflags(write=False)
            shards.append(ClientShard(client, domain, indices, excluded, cap))
    return shards


def unheld_labels(shards: list[ClientShard], train_labels: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Labels of each domain's training set that no client's shard holds (domain -> sorted labels).

    Exclusion draws are independent per client, so with few clients every one of them can drop
    the same label (e.g. 4 PneumoniaMNIST clients all excluding class 0): the federation then
    never trains on that class. Domains that hold every label are absent from the result.
    """
    held: dict[str, set[int]] = {}
    for sh in shards:
        held.setdefault(sh.domain, set()).update(np.unique(np.asarray(train_labels[sh.domain])[sh.indices]).tolist())
    out = {}
    for domain, have in held.items():
        missing = sorted(set(np.unique(np.asarray(train_labels[domain])).tolist()) - have)
        if missing:
            out[domain] = missing
    return out


def partition_summary(shards: list[ClientShard]) -> list[dict]:
    """JSON-ready rows for the result file: ``client``, ``domain``, ``size``, ``excluded_labels``, ``cap``."""
    return [{"client": sh.client, "domain": sh.domain, "size": sh.size,
             "excluded_labels": list(sh.excluded_labels), "cap": sh.cap} for sh in shards]
