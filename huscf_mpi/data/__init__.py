"""Datasets, scenario partitions and client batches (SPEC §4)."""
from .errors import DataError
from .idx import read_idx
from .cache import decoded_meta, ensure_decoded
from .loading import (OFFICIAL, POOL_SPLIT, DomainData, load_domain, load_shard, open_domain, pool_split_indices,
                      sha256_file, to_unit_range)
from .partition import SCENARIOS, ClientShard, ExclusionRule, ScenarioSpec, partition, partition_summary, unheld_labels
from .registry import DOMAINS, UNAVAILABLE, DomainSpec, domain_key, get_domain
from .root import ENV_VAR, resolve_data_root


def __getattr__(name: str):
    # Lazy: batches need torch, and the config validator imports this package for SCENARIOS.
    if name in ("ClientBatches", "epoch_iterations"):
        from . import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ClientBatches", "epoch_iterations", "DataError", "read_idx", "OFFICIAL", "POOL_SPLIT", "DomainData",
    "load_domain", "load_shard", "open_domain", "ensure_decoded", "decoded_meta", "pool_split_indices", "sha256_file", "to_unit_range", "SCENARIOS", "ClientShard",
    "ExclusionRule", "ScenarioSpec", "partition", "partition_summary", "unheld_labels", "DOMAINS", "UNAVAILABLE", "DomainSpec", "domain_key",
    "get_domain", "ENV_VAR", "resolve_data_root",
]
