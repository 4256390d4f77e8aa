"""Algorithms behind one small API (the strategy seam): HuSCF-GAN and its baselines.

Each method is one module here defining ``STRATEGY`` (a :class:`Strategy`), listed by name in
``huscf_mpi.registry``; the engine loads it with ``registry.load_strategy(name)``.
"""
from .base import ClientStrategy, RoundRecord, RunInfo, ServerStrategy, Strategy, fake_labels
from .huscf import HuSCFClient, HuSCFServer

__all__ = ["ClientStrategy", "ServerStrategy", "RunInfo", "RoundRecord", "Strategy", "fake_labels",
           "HuSCFClient", "HuSCFServer"]
