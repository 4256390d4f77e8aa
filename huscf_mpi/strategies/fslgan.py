"""FSL-GAN: one generator on the server; each client's discriminator split across its own devices.

Sources: Kortoçi, Liang, Zhou, Lee, Mehrabi, Hui, Tarkoma, Crowcroft, "Federated Split GANs",
arXiv 2207.01750 (2022), and its software paper "Federated split GANs for collaborative
training with heterogeneous devices", Software Impacts 14 (2022) 100436, whose code is the
single TensorFlow notebook ``dcsfgan_3parts.ipynb`` of github.com/YukariSonz/FSL-GAN
(``split_method_for_D_by_capacity``, ``train_step_clients``, ``aggregation``). The notebook
simulates devices in one process; here every device is an MPI rank.

Ranks. A *client* is one data owner with ``fslgan.devices_per_client`` = k devices ("one
client means one discriminator"): its own rank c (1..N) holds the data, its k-1 helper ranks
hold none and come after all clients (client c: ranks ``N + (c-1)(k-1) + 1 .. N + c(k-1)``,
:func:`huscf_mpi.roles.setup.device_groups`). A run needs ``1 + N·k`` ranks.

Parts. The discriminator (L blocks) is split into three parts as in the notebook's part A
(conv64), B (conv128) and C (conv256 + dense): A = block 1, B = blocks 2..L-2, C = blocks
L-1..L. For cgan28 (and cgan32) that is A = [1] (label embedding + conv 64), B = [2, 3]
(the two 128-channel convs), C = [4, 5] (conv 256 + linear + sigmoid) (:func:`parts_of`).

Placement (:func:`place_parts`), at set-up, identically on every rank from the device
profiles set-up assigns (``RunInfo.profiles``: emulated with ``cut_selection.devices``, else
measured as for ``cuts: ga``). The notebook's capacity is a parameter count per device; ours
is compute: a device's capacity is ``flops_per_s × fslgan.budget_seconds`` FLOPs per
iteration, a part's cost its training FLOPs per iteration, 2 forward + 3 backward passes of
the batch (real and fake forward; the discriminator loss backward through both; the generator
loss backward through the fake path counted as a full pass), from ``RunInfo.block_flops``.
The walk is the notebook's: devices in order, a device takes the next parts while its
remaining capacity covers them, then the walk moves on; a device too weak for the next part
hosts nothing and the chain skips it. The order: the owner first (part A takes the real
images and the labels, which never leave their owner, so A is always the owner's, within
budget or not), then the helpers fastest first (the notebook's ``split_method_preprocessing_time``,
"faster is better"; ties by rank). Where the notebook drops a client whose devices cannot hold
every part (a "false client"), a part that no device from the walk's position on can take
goes to the one of them with the most capacity left, and the placement records it as over
budget. The placement is written to the result file as ``/strategy/placement`` (one row per
client and part: rank, blocks, cost, over_budget) and ``/strategy/devices`` (one row per rank).

One iteration (the notebook's ``train_step_clients``: simultaneous updates, one forward pass
per discriminator feeding both losses). B = batch, images (B, C, H, W) float32:
1. server: ŷ_c ~ U{0..K_c-1} (B,) per client c from its domain's K_c classes, z ~ N(0, I)
   (N·B, z_dim); x̂ = G(z, ŷ) once on the concatenation; client c's slice x̂_c goes to its
   owner (``fslgan_fake``, synthetic images) with ŷ_c (``fslgan_fake_labels``, int64 (B,)).
2. the chain of client c, device to device (``fslgan_act``, float32 (2, B, *h): the real and
   the fake activation stacked): part A on the owner gets (x, y) and (x̂_c, ŷ_c); each next
   device runs its parts on both; the last computes L_D = BCE(D(x̂_c), 0) + BCE(D(x), 1) and
   L_G = BCE(D(x̂_c), 1) with D before this iteration's step.
3. back along the chain (``fslgan_grad``, float32 (3, B, *h): ∂L_D/∂h_real, ∂L_D/∂h_fake,
   ∂L_G/∂h_fake); every device accumulates ∂L_D/∂θ of its parts and steps them (Adam);
   the owner sends ∂L_G/∂x̂_c to the server (``fslgan_image_grad``, float32 (B, C, H, W)).
   The last device sends (L_D, L_G) to the owner for its round report (``fslgan_losses``,
   float64 (2,), report plane, never to rank 0).
4. server: one Adam step of G on the gradient of Σ_c L_G,c (the notebook's summed
   ``gen_loss``): ``x̂.backward(concat_c ∂L_G,c/∂x̂_c)``.
Every round (``local_epochs`` epochs; the notebook aggregates every epoch) each hosting rank
sends its parts' parameters and BatchNorm buffers to the server (``fslgan_params_up``,
float32 (P_rank,)); the server averages each part over the clients with FedAvg weights
n_c / Σ n (``rounds/weights``) and sends every host its parts back (``fslgan_params_down``).

Deviations from the notebook: conditional (the server sends the sampled labels down with the
fakes, so the synthetic-data classifier can be trained; ``training.fake_labels`` must be
``uniform``, since conditioning on real labels would send them to the server); one fake batch
per client (G runs once on the N·B concatenation, each client's labels from its own domain)
where the notebook shows one batch to every discriminator; our D (BatchNorm, sigmoid + BCE)
instead of the notebook's DCGAN D (dropout, logits); FedAvg size-weighted (the notebook takes
a plain mean over equal shards); Adam with the shared settings (the notebook: 1e-4); capacity
in FLOPs instead of parameter counts, and its ``capacity -= THRESHOLD[next part]`` (it
subtracts the *next* part's threshold) becomes the placed part's cost. Time is measured (and
paced on emulated devices: compute by each rank's profile, every hop by the transport), not
simulated with ``processing_time_factor`` and a fixed 50 ms LAN hop. Evaluation: the server
sends G's parameters to the evaluating clients, which generate locally (``eval_generator``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .. import seeding
from ..comm import kind
from ..data.registry import get_domain
from ..models.params import dtypes_of, flatten, layout, layout_size, load_state, state_of, unflatten
from ..models.split import Segment, full_blocks
from .base import RoundRecord, ServerStrategy, Strategy
from .common import EvaluationGenerator, ServerGeneratorClient, adam, fedavg, size_weights

FAKE = kind("fslgan_fake", 400, "protocol", "synthetic_images")
FAKE_LABELS = kind("fslgan_fake_labels", 401, "protocol", "sampled_labels")
IMAGE_GRAD = kind("fslgan_image_grad", 402, "protocol", "image_gradients")
ACT = kind("fslgan_act", 403, "protocol", "smashed_data")
GRAD = kind("fslgan_grad", 404, "protocol", "smashed_data")
PARAMS_UP = kind("fslgan_params_up", 405, "protocol", "parameters")
PARAMS_DOWN = kind("fslgan_params_down", 406, "protocol", "parameters")
LOSSES = kind("fslgan_losses", 407, "report", "losses")

PART_NAMES = ("A", "B", "C")
# Passes per iteration a part's cost counts: forward real + fake; backward of L_D through both,
# of L_G through the fake path.
FORWARD_PASSES, BACKWARD_PASSES = 2, 3


def parts_of(n_blocks: int) -> tuple[tuple[int, ...], ...]:
    """The discriminator's three parts as block indices: A = (1,), B = (2..L-2), C = (L-1, L).

    Raises ``ValueError`` for L < 4 (part B would be empty)."""
    if n_blocks < 4:
        raise ValueError(f"FSL-GAN splits D into 3 parts and needs at least 4 blocks, got {n_blocks}")
    return (1,), tuple(range(2, n_blocks - 1)), (n_blocks - 1, n_blocks)


def part_costs(block_flops: Mapping, parts: Sequence[Sequence[int]]) -> list[float]:
    """Training FLOPs per iteration of each part (2 forward + 3 backward passes of the batch).

    ``block_flops`` is ``RunInfo.block_flops["d"]`` (``{"forward"|"backward": (L,) FLOPs}``);
    empty → zeros (no profiles: every part fits anywhere)."""
    if not block_flops:
        return [0.0] * len(parts)
    f, b = np.asarray(block_flops["forward"], float), np.asarray(block_flops["backward"], float)
    return [float(sum(FORWARD_PASSES * f[i - 1] + BACKWARD_PASSES * b[i - 1] for i in p)) for p in parts]


def place_parts(group: Sequence[int], costs: Sequence[float], capacity: Mapping[int, float]
                ) -> tuple[list[int], list[bool]]:
    """The notebook's greedy walk (module doc): the host rank of each part and whether it is over budget.

    ``group``: the client's ranks, owner first; ``costs``: FLOPs per part in chain order;
    ``capacity``: rank → FLOPs per iteration it may spend. Returns ``(hosts, over_budget)``,
    both of ``len(costs)``. The hosts follow the walk (owner, then the helpers fastest first),
    so each device holds consecutive parts and appears at most once in the chain.
    """
    owner, helpers = group[0], sorted(group[1:], key=lambda r: (-capacity[r], r))
    walk = [owner, *helpers]
    left = {r: float(capacity[r]) for r in walk}
    hosts, over, pos = [owner], [costs[0] > left[owner]], 0
    left[owner] -= costs[0]
    for cost in costs[1:]:
        fit = next((i for i in range(pos, len(walk)) if left[walk[i]] >= cost), None)
        over.append(fit is None)
        if fit is None:  # nobody can take it: where most capacity is left (the earliest on ties)
            fit = max(range(pos, len(walk)), key=lambda i: (left[walk[i]], -i))
        pos = fit
        hosts.append(walk[fit])
        left[walk[fit]] -= cost
    return hosts, over


@dataclass(frozen=True)
class Placement:
    """Where every client's discriminator parts live (identical on every rank).

    Attributes
    ----------
    parts : block indices of parts A, B, C.
    costs : FLOPs per iteration of each part.
    hosts : client → host rank of each part.
    over_budget : client → per part, whether it exceeds its host's capacity.
    capacity : rank → FLOPs per iteration it may spend (inf without profiles).
    """

    parts: tuple[tuple[int, ...], ...]
    costs: tuple[float, ...]
    hosts: dict[int, tuple[int, ...]]
    over_budget: dict[int, tuple[bool, ...]]
    capacity: dict[int, float]

    def chain(self, client: int) -> list[tuple[int, tuple[int, ...]]]:
        """``[(rank, part indices), ...]`` in chain order, one entry per device that hosts parts."""
        out: list[tuple[int, list[int]]] = []
        for p, r in enumerate(self.hosts[client]):
            if out and out[-1][0] == r:
                out[-1][1].append(p)
            else:
                out.append((r, [p]))
        return [(r, tuple(ps)) for r, ps in out]

    def blocks(self, parts: Sequence[int]) -> list[int]:
        return [b for p in parts for b in self.parts[p]]


def placement(info) -> Placement:
    """The run's :class:`Placement` from ``info.profiles``, ``info.block_flops`` and ``fslgan.budget_seconds``."""
    parts = parts_of(info.arch.n_blocks("d"))
    costs = part_costs(info.block_flops.get("d", {}), parts)
    budget = info.config.fslgan.budget_seconds
    capacity = {r: (info.profiles[r].flops_per_s * budget if r in info.profiles else float("inf"))
                for c in info.clients for r in info.group(c)}
    hosts, over = {}, {}
    for c in info.clients:
        h, o = place_parts(info.group(c), costs, capacity)
        hosts[c], over[c] = tuple(h), tuple(o)
    return Placement(parts, tuple(costs), hosts, over, capacity)


def _owner_of(info, rank: int) -> int:
    return next(c for c in info.clients if rank in info.group(c))


class FSLGANClient(ServerGeneratorClient):
    """A device of one client: the owner (``client`` in ``info.clients``) or a helper rank.

    Holds ``self.d``, a :class:`Segment` of the blocks of its parts (``None`` if it hosts none),
    and one Adam over them. Its neighbours in the chain are ``self.prev`` / ``self.next``
    (``None`` at the ends)."""

    def __init__(self, info, client, transport, shard=None):
        super().__init__(info, client, transport, shard)
        cfg, arch = info.config, info.arch
        self.owner = _owner_of(info, client)
        self.is_owner = client == self.owner
        self.place = placement(info)
        chain = self.place.chain(self.owner)
        ranks = [r for r, _ in chain]
        self.position = ranks.index(client) if client in ranks else None
        self.end = chain[-1][0]
        self.prev = self.next = self.d = None
        B, shapes = cfg.training.batch_size, arch.output_shapes("d", cfg.model.width)
        if self.position is not None:
            self.my_parts = chain[self.position][1]
            self.my_blocks = self.place.blocks(self.my_parts)
            blocks = full_blocks(arch, cfg.model.width, info.init_seed)["d"]
            self.d = Segment({b: blocks[b] for b in self.my_blocks})
            self.d_opt = adam(self.d.parameters(), cfg)
            self.layout = layout(arch, cfg.model.width, {"d": self.my_blocks})
            self.dtypes = dtypes_of(arch, cfg.model.width)
            f = np.asarray(info.block_flops["d"]["forward"], float) if info.block_flops else None
            b = np.asarray(info.block_flops["d"]["backward"], float) if info.block_flops else None
            idx = [i - 1 for i in self.my_blocks]
            self.flops = ((FORWARD_PASSES * f[idx].sum(), BACKWARD_PASSES * b[idx].sum()) if f is not None
                          else (0.0, 0.0))
            if self.position > 0:
                self.prev = ranks[self.position - 1]
                shape = (2, B, *shapes[self.my_blocks[0] - 2])
                transport.declare(self.prev, ACT, shape, send=False)
                transport.declare(self.prev, GRAD, (3, *shape[1:]))
            if self.position < len(chain) - 1:
                self.next = ranks[self.position + 1]
                shape = (2, B, *shapes[self.my_blocks[-1] - 1])
                transport.declare(self.next, ACT, shape)
                transport.declare(self.next, GRAD, (3, *shape[1:]), send=False)
            transport.declare(0, PARAMS_UP, (layout_size(self.layout),))
            transport.declare(0, PARAMS_DOWN, (layout_size(self.layout),), send=False)
        if self.is_owner:
            image = (B, *arch.image_shape)
            transport.declare(0, FAKE, image, send=False)
            transport.declare(0, FAKE_LABELS, (B,), np.int64, send=False)
            transport.declare(0, IMAGE_GRAD, image)
            if self.end != client:
                transport.declare(self.end, LOSSES, (2,), np.float64, send=False)
        elif client == self.end:
            transport.declare(self.owner, LOSSES, (2,), np.float64)
        self.evaluation = None
        if client in info.evaluators.values():
            self.evaluation = EvaluationGenerator(info, transport, Segment(full_blocks(arch, cfg.model.width,
                                                                                    info.init_seed)["g"]))

    def train_iteration(self, x, y):
        if self.d is None:  # a device too weak for any part: idle
            return float("nan"), float("nan")
        bce = torch.nn.functional.binary_cross_entropy
        if self.is_owner:
            real_in = x
            fake_in = self.t.recv_tensor(0, FAKE, requires_grad=True)
            y_fake = self.t.recv_tensor(0, FAKE_LABELS)
            y_real = y
        else:
            act = self.t.recv_tensor(self.prev, ACT)
            real_in, fake_in = act[0].detach().requires_grad_(True), act[1].detach().requires_grad_(True)
            y_real = y_fake = None
        fwd, bwd = self.flops
        self.d_opt.zero_grad(set_to_none=True)
        with self.pace(fwd):
            h_real, h_fake = self.d(real_in, y_real), self.d(fake_in, y_fake)
        if self.next is None:  # the chain's end: both losses from this one forward pass
            B = h_real.shape[0]
            loss_d = bce(h_fake, torch.zeros(B, 1)) + bce(h_real, torch.ones(B, 1))
            loss_g = bce(h_fake, torch.ones(B, 1))
            with self.pace(bwd):
                (g_fake,) = torch.autograd.grad(loss_g, [fake_in], retain_graph=True)
                self._backward_d([loss_d], None, real_in, fake_in)
            losses = np.array([float(loss_d.detach()), float(loss_g.detach())])
            if not self.is_owner:
                self.t.isend(self.owner, LOSSES, losses)
        else:
            self.t.isend(self.next, ACT, torch.stack([h_real, h_fake]).detach())
            grads = self.t.recv_tensor(self.next, GRAD)
            with self.pace(bwd):
                (g_fake,) = torch.autograd.grad(h_fake, [fake_in], grads[2], retain_graph=True)
                self._backward_d([h_real, h_fake], [grads[0], grads[1]], real_in, fake_in)
        if self.is_owner:
            self.t.isend(0, IMAGE_GRAD, g_fake)
        else:
            self.t.isend(self.prev, GRAD, torch.stack([real_in.grad, fake_in.grad, g_fake]))
        self.d_opt.step()
        if not self.is_owner:
            return float("nan"), float("nan")
        if self.next is not None:
            losses = self.t.recv(self.end, LOSSES)
        return float(losses[0]), float(losses[1])

    def _backward_d(self, outputs, grads, real_in, fake_in) -> None:
        """∂L_D/∂θ of this device's parts; on a helper also ∂L_D/∂(its inputs) into ``.grad``."""
        inputs = list(self.d.parameters())
        if not self.is_owner:
            inputs += [real_in, fake_in]
        torch.autograd.backward(outputs, grads, inputs=inputs)

    def round_end(self, round_index):
        if self.d is None:
            return None
        self.t.isend(0, PARAMS_UP, flatten(state_of({"d": [self.d]}), self.layout))
        load_state({"d": [self.d]}, unflatten(self.t.recv(0, PARAMS_DOWN), self.layout, self.dtypes))
        return None


class FSLGANServer(ServerStrategy):
    """Rank 0: the conditional generator G and its Adam, and the per-part FedAvg."""

    def __init__(self, info, transport):
        super().__init__(info, transport)
        cfg, arch = info.config, info.arch
        self.g = Segment(full_blocks(arch, cfg.model.width, info.init_seed)["g"])
        self.g_opt = adam(self.g.parameters(), cfg)
        self.clients = list(info.clients)
        self.noise = torch.Generator().manual_seed(seeding.int_seed(cfg.seed, "sampling", 0))
        self.classes = [get_domain(info.domains[c]).n_classes for c in self.clients]
        self.weights = size_weights(info, self.clients)
        self.place = placement(info)
        self.part_sizes = [layout_size(layout(arch, cfg.model.width, {"d": p})) for p in self.place.parts]
        B = cfg.training.batch_size
        for c in self.clients:
            transport.declare(c, FAKE, (B, *arch.image_shape))
            transport.declare(c, FAKE_LABELS, (B,), np.int64)
            transport.declare(c, IMAGE_GRAD, (B, *arch.image_shape), send=False)
            for r, parts in self.place.chain(c):
                size = sum(self.part_sizes[p] for p in parts)
                transport.declare(r, PARAMS_UP, (size,), send=False)
                transport.declare(r, PARAMS_DOWN, (size,))
        self.evaluation = EvaluationGenerator(info, transport)

    def train_iteration(self, last_of_round):
        B, zdim = self.info.config.training.batch_size, self.info.arch.z_dim
        y = torch.cat([torch.randint(0, k, (B,), generator=self.noise) for k in self.classes])
        z = torch.randn(len(self.clients) * B, zdim, generator=self.noise)
        x = self.g(z, y)
        for c, xc, yc in zip(self.clients, x.detach().chunk(len(self.clients)), y.chunk(len(self.clients))):
            self.t.isend(c, FAKE, xc)
            self.t.isend(c, FAKE_LABELS, yc)
        got = self.t.recv_many(self.clients, IMAGE_GRAD)
        grad = torch.from_numpy(np.concatenate([got[c] for c in self.clients]))  # ∂(Σ_c L_G,c)/∂x̂
        self.g_opt.zero_grad(set_to_none=True)
        x.backward(grad)
        self.g_opt.step()

    def round_end(self, round_index):
        hosts = [(c, r, parts) for c in self.clients for r, parts in self.place.chain(c)]
        got = self.t.recv_many(sorted({r for _, r, _ in hosts}), PARAMS_UP)
        offsets = np.cumsum([0, *self.part_sizes])
        pieces: dict[int, list[np.ndarray]] = {p: [] for p in range(len(self.part_sizes))}  # client order
        for c, r, parts in hosts:
            start = 0
            for p in parts:
                pieces[p].append(got[r][start:start + self.part_sizes[p]])
                start += self.part_sizes[p]
        avg = np.empty(offsets[-1], np.float32)
        for p, arrays in pieces.items():  # FedAvg per part, in client order
            avg[offsets[p]:offsets[p + 1]] = fedavg(arrays, self.weights)
        for _, r, parts in hosts:
            self.t.isend(r, PARAMS_DOWN, np.concatenate([avg[offsets[p]:offsets[p + 1]] for p in parts]))
        return RoundRecord({"weights": self.weights.copy()}, log="FedAvg of each discriminator part")

    def begin_evaluation(self, clients):
        self.evaluation.send(self.g, clients)

    def tables(self):
        pl, info = self.place, self.info
        rows = [(c, p, r) for c in self.clients for p, r in enumerate(pl.hosts[c])]
        profile = {r: info.profiles[r] for r in pl.capacity if r in info.profiles}
        placement_table = {
            "client": [c for c, _, _ in rows], "part": [PART_NAMES[p] for _, p, _ in rows],
            "blocks": [",".join(map(str, pl.parts[p])) for _, p, _ in rows], "rank": [r for _, _, r in rows],
            "cost_flops": [pl.costs[p] for _, p, _ in rows],
            "over_budget": [int(pl.over_budget[c][p]) for c, p, _ in rows]}
        ranks = [(c, r) for c in self.clients for r in info.group(c)]
        devices = {
            "rank": [r for _, r in ranks], "client": [c for c, _ in ranks],
            "owner": [int(r == c) for c, r in ranks],
            "parts": [",".join(PART_NAMES[p] for p, h in enumerate(pl.hosts[c]) if h == r) for c, r in ranks],
            "profile": [profile[r].name if r in profile else "" for _, r in ranks],
            "flops_per_s": [profile[r].flops_per_s if r in profile else float("nan") for _, r in ranks],
            "capacity_flops": [pl.capacity[r] for _, r in ranks]}
        return {"placement": placement_table, "devices": devices}


def _devices(config) -> int:
    return config.fslgan.devices_per_client


def _exposure(config):
    """Documented who-saw-what; ``smashed_data`` client → client only when clients have helper
    devices (a run where every chain stays on its owner, e.g. fast owners, has none)."""
    out = {("synthetic_images", "server", "client"), ("sampled_labels", "server", "client"),
           ("image_gradients", "client", "server"), ("parameters", "client", "server"),
           ("parameters", "server", "client")}
    if config.fslgan.devices_per_client > 1:
        out.add(("smashed_data", "client", "client"))
    return out


STRATEGY = Strategy("fslgan", FSLGANClient, FSLGANServer, uses_cuts=False, exposure=_exposure,
                    devices_per_client=_devices, needs_profiles=True)

__all__ = ["STRATEGY", "Placement", "parts_of", "part_costs", "place_parts", "placement"]
