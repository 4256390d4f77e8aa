"""The strategy seam: what a client and the server do per iteration and at a round's end.

The engine (``huscf_mpi.roles``) owns start-up, the round/iteration loops, timing, progress,
evaluation scoring, reports and the result file; it calls a strategy for everything that makes
an algorithm what it is, and never asks which one runs. A method is one module here that
defines a :class:`ClientStrategy`, a :class:`ServerStrategy`, its message kinds
(:func:`huscf_mpi.comm.kind`) and one :class:`Strategy` record, registered in
``strategies/__init__.py``.

Both sides of a strategy follow the same deterministic schedule, so no per-step control
messages are needed. A client may exchange messages with other clients (its transport reaches
every rank); the server may compute nothing at all (FedGAN) or everything (centralized).

A strategy may give each client several ranks (:attr:`Strategy.devices_per_client`, FSL-GAN's
devices of one data owner): client ``c`` keeps rank ``c`` and holds the data; its *helper*
ranks come after all clients (:attr:`RunInfo.groups`), run the same client loop without data
(``shard`` is ``None`` and :meth:`ClientStrategy.train_iteration` gets ``None, None``) and
report their round statistics like any client rank.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..comm import MPITransport
from ..models import Architecture, CutVector

if TYPE_CHECKING:  # client ranks get a ConfigView instead, without pydantic (launch.py)
    from ..config import Config


@dataclass
class RunInfo:
    """What every rank knows after set-up (identical on all ranks)."""

    config: Config
    arch: Architecture
    cuts: dict[int, CutVector]           # client id -> cut vector ({} for strategies without cuts)
    clients: list[int]                   # client ids (= their data-owning ranks) 1..N
    domains: dict[int, str]              # client id -> domain
    sizes: dict[int, int]                # client id -> shard size n_i
    evaluators: dict[str, int]           # domain -> client id that evaluates it (its first client)
    iterations_per_round: int
    init_seed: int
    emulated: dict = field(default_factory=dict)     # client id -> DeviceProfile it is paced to
    block_flops: dict = field(default_factory=dict)  # net -> {"forward"|"backward": FLOPs per block (L,)}
    # client id -> its ranks, the client's own (data-owning) rank first; {} means (c,) each.
    groups: dict = field(default_factory=dict)
    # rank -> DeviceProfile a strategy plans with: the emulated ones (cut_selection.devices), or
    # measured ones when the strategy asks for them (Strategy.needs_profiles); {} if neither.
    profiles: dict = field(default_factory=dict)
    # Rank 0 only (the one rank that serves; {} elsewhere): round → the recorded buffers and phase
    # order an asynchronous server replays (``train --replay FILE``); {} serves live arrivals.
    replay: dict = field(default_factory=dict)

    def group(self, client: int) -> tuple[int, ...]:
        """The ranks of ``client``'s devices, its own rank first."""
        return tuple(self.groups.get(client, (client,)))

    @property
    def helpers(self) -> list[int]:
        """Ranks that run a client's side without data (devices of a multi-rank client), ascending."""
        return sorted(r for c in self.clients for r in self.group(c)[1:])

    @property
    def client_ranks(self) -> list[int]:
        """Every rank but the server's: the clients, then the helpers (the order of per-rank reports)."""
        return list(self.clients) + self.helpers


@dataclass
class RoundRecord:
    """Per-round outputs of a server's round end, for the result file (``rounds/<name>``)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    log: str = ""


class ClientStrategy(ABC):
    """A client's side of an algorithm.

    ``shard`` is the client's :class:`~huscf_mpi.data.ClientBatches` (its private data; the
    engine draws the training batches from it and passes them to :meth:`train_iteration`);
    ``None`` on a helper rank (``client`` is then the helper's rank, not in ``info.clients``).
    ``self.pace(flops)`` is a context manager that makes the enclosed compute take at least
    its time on the emulated device (a no-op when nothing is emulated); messages are paced by
    the transport.
    """

    def __init__(self, info: RunInfo, client: int, transport: MPITransport, shard=None):
        self.info, self.client, self.t, self.shard = info, client, transport, shard
        self.pace = transport.pacer.compute

    @property
    def n_classes(self) -> int:
        """Labels of this client's domain (``fake_labels`` draws uniform labels from them): in a
        multi-domain run the model's label embedding may be larger (``info.arch.n_classes``)."""
        from ..data.registry import get_domain

        return get_domain(self.info.domains[self.client]).n_classes

    @abstractmethod
    def train_iteration(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """One training iteration on a real batch x (B,C,H,W) float32, y (B,) int64 → (loss_D, loss_G).

        On a helper rank x and y are ``None``; its losses are not reported (return NaN)."""

    def next_iteration(self, done: int) -> bool:
        """Whether this client trains another iteration this round, having done ``done`` (>= 0).

        Synchronous default: ``iterations_per_round`` each. An asynchronous mode asks the
        server, which hands out a round's iterations to whichever clients are ready."""
        return done < self.info.iterations_per_round

    @abstractmethod
    def round_end(self, round_index: int) -> dict[str, float] | None:
        """Federation at the end of round ``round_index`` (1-based).

        Returns this client's values of the strategy's ``client_values`` for the round (the
        engine reports them to the server; missing names are NaN), or ``None``.
        """

    def begin_evaluation(self) -> None:
        """Called on evaluating clients before each evaluation's :meth:`generate` calls."""

    @abstractmethod
    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Generated images (B,C,H,W) in [-1, 1] for latent z (B, z_dim) and labels (B,), no grad."""


class ServerStrategy(ABC):
    """The server's side of an algorithm.

    ``lost`` holds the clients the server has given up on (an asynchronous mode's clients
    silent for ``training.client_timeout_s``): the engine stops expecting their reports and
    evaluations, and ends the job without them."""

    def __init__(self, info: RunInfo, transport: MPITransport):
        self.info, self.t = info, transport
        self.lost: set[int] = set()

    @abstractmethod
    def train_iteration(self, last_of_round: bool) -> None:
        """Serve one training iteration of every client (may do nothing)."""

    def train_round(self, step: Callable[[float], None]) -> None:
        """Serve one round's training; call ``step(iterations)`` after each server step.

        ``iterations`` is the step's work in synchronous iterations (1.0 for a lock-step
        iteration of every client; an asynchronous buffer of k clients is k/N), for progress
        and per-step timing. Default: ``iterations_per_round`` lock-step iterations."""
        n = self.info.iterations_per_round
        for i in range(n):
            self.train_iteration(last_of_round=i == n - 1)
            step(1.0)

    @abstractmethod
    def round_end(self, round_index: int) -> RoundRecord:
        """Federation at the end of round ``round_index``; returns what to record."""

    def begin_evaluation(self, clients: list[int]) -> None:
        """Called before each evaluation, matching the evaluating ``clients``' own hook."""

    def serve_generation(self, clients: list[int]) -> None:
        """Serve one generation chunk for each of ``clients`` (their :meth:`ClientStrategy.generate`)."""

    def tables(self) -> dict[str, dict[str, list]]:
        """Set-up facts to record, written once as tables ``/strategy/<name>`` (e.g. FSL-GAN's placement).

        Each value maps column names to equal-length lists (ints, floats or strings)."""
        return {}


Exposure = set[tuple[str, str, str]]


@dataclass(frozen=True)
class Strategy:
    """One method behind the seam.

    Attributes
    ----------
    name : the config's ``strategy`` value and the result file's provenance ``strategy``
        (tables and plots label it by ``huscf_mpi.registry.TITLES``).
    client, server : the two sides.
    uses_cuts : whether set-up plans cut points (SPEC §5); if not it only assigns emulated
        device profiles (``cut_selection.devices``) and skips profiling and the GA.
    client_values : names of the per-round values each client's :meth:`ClientStrategy.round_end`
        returns; recorded as ``rounds/<name>`` (R, N).
    exposure : config → the documented ``{(payload, sender role, receiver role)}`` of the
        protocol and evaluation planes (roles "client"/"server"; see ``comm.kinds.PAYLOADS``).
        A test compares it with what the ledger records.
    devices_per_client : config → ranks per client (default 1). With k > 1 a run needs
        1 + N·k ranks: clients 1..N own the data, ranks N+1.. are their helpers, k-1 each in
        client order (:attr:`RunInfo.groups`).
    needs_profiles : set-up gives every rank a device profile (:attr:`RunInfo.profiles`) even
        without ``cut_selection.devices``: measured by timing the blocks, as ``cuts: ga`` does.
    modes : the ``training.mode`` values the method implements (config load refuses others).
    records : result-layout entries (``huscf_mpi.results.schema.Dataset`` / ``Table``) of what
        the strategy records beyond ``schema.LAYOUT``: the ``rounds/<name>`` of its
        ``client_values`` and :class:`RoundRecord` arrays and its ``strategy/<name>`` tables. The
        package's strategies declare theirs in ``schema.LAYOUT``; the writer refuses undeclared names.
    """

    name: str
    client: type[ClientStrategy]
    server: type[ServerStrategy]
    uses_cuts: bool
    exposure: Callable[[Config], Exposure]
    client_values: tuple[str, ...] = ()
    devices_per_client: Callable[[Config], int] = lambda config: 1
    needs_profiles: bool = False
    modes: tuple[str, ...] = ("sync",)
    records: tuple = ()  # schema.Dataset / schema.Table; not imported here: clients load no h5py


def fake_labels(config: Config, y: torch.Tensor, generator: torch.Generator, n_classes: int) -> torch.Tensor:
    """Labels that condition a batch of fakes (SPEC §1, ``training.fake_labels``).

    ``"real"``: the real batch's labels ``y`` (the authors' code); ``"uniform"``: drawn
    uniformly from ``0..n_classes-1`` with ``generator``. Shape (B,), int64.
    """
    if config.training.fake_labels == "real":
        return y
    return torch.randint(0, n_classes, (y.shape[0],), generator=generator)
