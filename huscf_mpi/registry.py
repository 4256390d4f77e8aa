"""Which module implements each ``strategy`` name, without importing any of them.

The config validates ``strategy`` against :data:`STRATEGY_MODULES` before torch is loaded;
the engine then imports the chosen module and reads its ``STRATEGY`` record
(:class:`huscf_mpi.strategies.base.Strategy`). A new method is one module plus one line here
(or a :func:`register` call, e.g. from a test).
"""
from __future__ import annotations

import importlib

STRATEGY_MODULES: dict[str, str] = {
    "huscf": "huscf_mpi.strategies.huscf",
    "fedgan": "huscf_mpi.strategies.fedgan",
    "mdgan": "huscf_mpi.strategies.mdgan",
    "fslgan": "huscf_mpi.strategies.fslgan",
    "centralized": "huscf_mpi.strategies.centralized",
}
TITLES = {"huscf": "HuSCF-GAN", "fedgan": "FedGAN", "mdgan": "MD-GAN", "fslgan": "FSL-GAN", "centralized": "Centralized"}


def register(name: str, module: str) -> None:
    """Make ``strategy: name`` load ``module`` (which defines ``STRATEGY``)."""
    STRATEGY_MODULES[name] = module


def load_strategy(name: str):
    """The ``Strategy`` record of ``name``; ``KeyError`` naming the known ones if unknown."""
    if name not in STRATEGY_MODULES:
        raise KeyError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_MODULES)}")
    return importlib.import_module(STRATEGY_MODULES[name]).STRATEGY


def ranks_needed(config) -> int:
    """MPI ranks a run of ``config`` (a validated ``Config``) needs: 1 server + N clients x the
    strategy's ``devices_per_client`` (1 for most methods; imports the strategy's module)."""
    return 1 + config.data.n_clients * load_strategy(config.strategy).devices_per_client(config)
