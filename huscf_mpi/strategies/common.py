"""Pieces the baselines share: whole (unsplit) networks, the unsplit cGAN step, parameter
buffers, and a generator copy for evaluating clients.

Every baseline starts from the same initial weights as HuSCF-GAN's virtual network (the same
``full_blocks`` from the run's init seed), and uses the same losses and optimiser settings, so
the methods differ only in who computes what and what crosses the wire.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..comm import kind
from ..models import NETS
from ..models.optim import Adam
from ..models.params import dtypes_of, flatten, layout, layout_size, load_state, state_of, unflatten
from ..models.split import Segment, full_blocks
from .base import ClientStrategy

# Evaluation plane: a generator's parameters, from the rank that trains it to an evaluating
# client that generates locally (MD-GAN and centralized keep G on the server).
EVAL_GENERATOR = kind("eval_generator", 80, "evaluation", "parameters")


def whole_networks(info) -> dict[str, Segment]:
    """``{"g": G, "d": D}``: every block of both networks, initialised from ``info.init_seed``.

    ``G(z, labels)`` maps z (B, z_dim) float32 and labels (B,) int64 to images (B, C, H, W);
    ``D(x, labels)`` maps images and labels to probabilities (B, 1).
    """
    blocks = full_blocks(info.arch, info.config.model.width, info.init_seed)
    return {net: Segment(blocks[net]) for net in NETS}


def adam(params, config) -> Adam:
    return Adam(params, lr=config.training.lr, betas=tuple(config.training.betas))


def net_flops(info, net: str) -> tuple[float, float]:
    """(forward, backward) FLOPs of one whole network for one training batch (0, 0 if not counted)."""
    f = info.block_flops.get(net)
    return (float(f["forward"].sum()), float(f["backward"].sum())) if f else (0.0, 0.0)


def gan_step(g: nn.Module, d: nn.Module, g_opt: Adam, d_opt: Adam, x: torch.Tensor, y: torch.Tensor,
             z: torch.Tensor, y_fake: torch.Tensor, pace=None, flops=None) -> tuple[float, float]:
    """One unsplit cGAN iteration, SPEC §1 steps 1-4 without the split.

    D step: BCE(D(G(z, ŷ).detach(), ŷ), 0) + BCE(D(x, y), 1), one Adam step of D. G step:
    BCE(D(G(z, ŷ), ŷ), 1) backward through D (not stepped) into G, one Adam step of G (the
    same fakes as the D step, as in SPEC §1). ``pace``/``flops`` (``{"g": (f, b), "d": (f, b)}``)
    make each phase take its emulated time. Returns (loss_D, loss_G) as floats.
    """
    from contextlib import nullcontext

    pace = pace or (lambda _: nullcontext())
    (gf, gb), (df, db) = (flops or {}).get("g", (0.0, 0.0)), (flops or {}).get("d", (0.0, 0.0))
    bce = nn.functional.binary_cross_entropy
    B = x.shape[0]
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)
    with pace(gf):
        fake = g(z, y_fake)
    d_opt.zero_grad(set_to_none=True)
    with pace(2 * df + 2 * db):
        loss_d = bce(d(fake.detach(), y_fake), zeros) + bce(d(x, y), ones)
        loss_d.backward()
        d_opt.step()
    g_opt.zero_grad(set_to_none=True)
    with pace(df + db + gb):
        loss_g = bce(d(fake, y_fake), ones)
        loss_g.backward()
        g_opt.step()
    return float(loss_d.detach()), float(loss_g.detach())


class ParameterBuffer:
    """Flat float32 buffers of whole networks (parameters and BatchNorm buffers), SPEC §3's layout.

    ``nets`` selects the networks (e.g. ``("g",)`` for a generator only). :meth:`pack` returns
    a new float32 vector of :attr:`size`; :meth:`unpack` loads one into ``modules``.
    """

    def __init__(self, info, nets=NETS):
        arch, width = info.arch, info.config.model.width
        self.nets = tuple(nets)
        self.layout = layout(arch, width, {net: range(1, arch.n_blocks(net) + 1) for net in self.nets})
        self.dtypes = dtypes_of(arch, width)
        self.size = layout_size(self.layout)

    def pack(self, modules: dict[str, nn.Module]) -> np.ndarray:
        return flatten(state_of({net: [modules[net]] for net in self.nets}), self.layout)

    def unpack(self, flat: np.ndarray, modules: dict[str, nn.Module]) -> None:
        load_state({net: [modules[net]] for net in self.nets}, unflatten(flat, self.layout, self.dtypes))

    def state(self, flat: np.ndarray) -> dict:
        return unflatten(flat, self.layout, self.dtypes)


class EvaluationGenerator:
    """A generator held by the server, copied to evaluating clients at each evaluation.

    Server side: ``send(g, clients)``; client side: ``receive()`` then :meth:`generate`.
    Declares :data:`EVAL_GENERATOR` with every evaluating client at construction.
    """

    def __init__(self, info, transport, g: nn.Module | None = None):
        self.t, self.buffer = transport, ParameterBuffer(info, ("g",))
        self.g = g
        if transport.rank == 0:
            for c in sorted(set(info.evaluators.values())):
                transport.declare(c, EVAL_GENERATOR, (self.buffer.size,))
        elif transport.rank in info.evaluators.values():
            transport.declare(0, EVAL_GENERATOR, (self.buffer.size,), send=False)

    def send(self, g: nn.Module, clients: list[int]) -> None:
        flat = self.buffer.pack({"g": g})
        for c in clients:
            self.t.isend(c, EVAL_GENERATOR, flat)

    def receive(self) -> None:
        self.buffer.unpack(self.t.recv(0, EVAL_GENERATOR), {"g": self.g})

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return generate_with(self.g, z, labels)


def size_weights(info, clients) -> np.ndarray:
    """FedAvg weights n_c / Σ n of ``clients`` (float64, in their order) from their shard sizes."""
    n = np.array([info.sizes[c] for c in clients], np.float64)
    return n / n.sum()


def fedavg(arrays, weights) -> np.ndarray:
    """Σ_c w_c · a_c as float32, accumulated in float64 in the given (client) order, so the sum is
    reproducible; ``arrays`` are equal-shape float arrays, one per weight."""
    acc = np.zeros(np.shape(arrays[0]), np.float64)
    for w, a in zip(weights, arrays):
        acc += w * a
    return acc.astype(np.float32)


class ServerGeneratorClient(ClientStrategy):
    """Client side of a method whose generator lives on rank 0 (MD-GAN, FSL-GAN, centralized).

    An evaluating client sets ``self.evaluation`` to an :class:`EvaluationGenerator` holding a
    local copy of G; at each evaluation it receives rank 0's current weights into the copy and
    generates with it. Other clients never evaluate and may leave it None.
    """

    evaluation: EvaluationGenerator | None = None

    def begin_evaluation(self) -> None:
        self.evaluation.receive()

    def generate(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.evaluation.generate(z, labels)


@torch.no_grad()
def generate_with(g: nn.Module, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``g(z, labels)`` in eval mode (BatchNorm running statistics), no grad; ``g`` is left in train mode."""
    g.eval()
    try:
        return g(z, labels)
    finally:
        g.train()
