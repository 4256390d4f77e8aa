"""Algorithms behind one small API (the strategy seam); baselines plug in beside HuSCF-GAN."""
from .base import ClientStrategy, RoundRecord, RunInfo, ServerStrategy
from .huscf import HuSCFClient, HuSCFServer

STRATEGIES = {"huscf": (HuSCFClient, HuSCFServer)}

__all__ = ["ClientStrategy", "ServerStrategy", "RunInfo", "RoundRecord", "HuSCFClient", "HuSCFServer", "STRATEGIES"]
