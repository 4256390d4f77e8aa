"""The strategy seam: what a client and the server do per iteration and at a round's end.

The engine (``huscf_mpi.roles``) owns start-up, the round/iteration loops, timing, progress,
evaluation scoring and the result file; it calls a strategy for everything that makes an
algorithm what it is. A baseline (FedGAN, MD-GAN, ...) is a new pair of classes here.
Both sides of a strategy follow the same deterministic schedule, so no per-step control
messages are needed.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from ..comm import MPITransport
from ..cuts.emulation import NoPacer
from ..config import Config
from ..models import Architecture, CutVector


@dataclass
class RunInfo:
    """What every rank knows after set-up (identical on all ranks)."""

    config: Config
    arch: Architecture
    cuts: dict[int, CutVector]           # client id -> cut vector
    clients: list[int]                   # client ids (= ranks) 1..N
    domains: dict[int, str]              # client id -> domain
    sizes: dict[int, int]                # client id -> shard size n_i
    evaluators: dict[str, int]           # domain -> client id that evaluates it (its first client)
    iterations_per_round: int
    init_seed: int
    emulated: dict = field(default_factory=dict)     # client id -> DeviceProfile it is paced to
    block_flops: dict = field(default_factory=dict)  # net -> {"forward"|"backward": FLOPs per block (L,)}


@dataclass
class RoundRecord:
    """Per-round outputs of a strategy's round end, for the result file (arrays over clients)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    log: str = ""


class ClientStrategy(ABC):
    """A client's side of an algorithm."""

    def __init__(self, info: RunInfo, client: int, transport: MPITransport):
        self.info, self.client, self.t = info, client, transport
        self.pacer = NoPacer()  # an emulated client replaces it with a cuts.emulation.Pacer

    @abstractmethod
    def train_iteration(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """One training iteration on a real batch x (B,C,H,W) float32, y (B,) int64 → (loss_D, loss_G)."""

    @abstractmethod
    def round_end(self, round_index: int) -> None:
        """Federation at the end of round ``round_index`` (1-based)."""

    @abstractmethod
    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generated images (B,C,H,W) in [-1, 1] for latent z (B, z_dim) and labels (B,), no grad."""


class ServerStrategy(ABC):
    """The server's side of an algorithm."""

    def __init__(self, info: RunInfo, transport: MPITransport):
        self.info, self.t = info, transport

    @abstractmethod
    def train_iteration(self, last_of_round: bool) -> None:
        """Serve one training iteration of every client."""

    @abstractmethod
    def round_end(self, round_index: int) -> RoundRecord:
        """Federation at the end of round ``round_index``; returns what to record."""

    @abstractmethod
    def serve_generation(self, clients: list[int]) -> None:
        """Serve one generation chunk for each of ``clients`` (their :meth:`ClientStrategy.generate`)."""
