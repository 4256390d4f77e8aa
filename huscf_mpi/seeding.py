"""Independent random streams derived from one root seed.

Each concern (data partition, model init, GA, sampling on client i, ...) gets its own stream,
so adding a draw in one place never shifts the numbers of another. Streams are NumPy
``SeedSequence`` children keyed by a stable hash of the stream's name, independent of the
order in which they are requested.
"""
from __future__ import annotations

import hashlib

import numpy as np

PARTITION = "partition"
INIT = "init"
GA = "ga"
DEVICES = "devices"
CLUSTERING = "clustering"
EVALUATION = "evaluation"


def _key(name: str) -> list[int]:
    digest = hashlib.sha256(name.encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def seed_sequence(root_seed: int, name: str, *index: int) -> np.random.SeedSequence:
    """The ``SeedSequence`` of stream ``name`` (optionally per ``index``, e.g. a client id)."""
    return np.random.SeedSequence(entropy=int(root_seed), spawn_key=tuple(_key(name)) + tuple(int(i) for i in index))


def rng(root_seed: int, name: str, *index: int) -> np.random.Generator:
    """A NumPy generator for stream ``name``."""
    return np.random.default_rng(seed_sequence(root_seed, name, *index))


def int_seed(root_seed: int, name: str, *index: int) -> int:
    """A 63-bit integer seed for libraries that take one (torch, scikit-learn, DEAP's ``random``)."""
    return int(seed_sequence(root_seed, name, *index).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)
