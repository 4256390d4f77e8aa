"""FedGAN: every client trains a whole cGAN locally; the server averages them (FedAvg).

Source: Rasouli, Sun, Rajagopal, "FedGAN: Federated Generative Adversarial Networks for
Distributed Data", arXiv 2006.07228 (2020), Algorithm 1 ("FL-GAN" in the MD-GAN paper).

Where things live: each client holds a whole G and D (the architecture and width of
HuSCF-GAN's virtual networks, the same initial weights), both Adam optimisers, its data and
labels. The server holds only the running average; it computes nothing but that average.

On the wire: nothing during an iteration. At each round's end (every E = ``local_epochs``
local epochs, the paper's synchronisation interval K) each client sends its G and D
parameters and BatchNorm buffers up (``fedgan_params_up``, float32 (P,)), and the server
sends every client the size-weighted average (``fedgan_params_down``, float32 (P,)),
w_i = n_i / Σ n_j. Parameters are the only payload.

Deviations: conditional (a cGAN, as in every strategy here), so the synthetic-data classifier
can be trained; the local step is SPEC §1's unsplit step with the same losses and the same
``training.fake_labels`` conditioning; the paper's equal learning-rate schedules for G and D
become the shared Adam settings. Optimiser states stay local (the paper averages parameters
only).
"""
from __future__ import annotations

import torch

from .. import seeding
from ..comm import kind
from .base import ClientStrategy, RoundRecord, ServerStrategy, Strategy, fake_labels
from .common import ParameterBuffer, adam, fedavg, gan_step, generate_with, net_flops, size_weights, whole_networks

PARAMS_UP = kind("fedgan_params_up", 100, "protocol", "parameters")
PARAMS_DOWN = kind("fedgan_params_down", 101, "protocol", "parameters")


class FedGANClient(ClientStrategy):
    def __init__(self, info, client, transport, shard=None):
        super().__init__(info, client, transport, shard)
        cfg = info.config
        self.nets = whole_networks(info)
        self.g_opt, self.d_opt = adam(self.nets["g"].parameters(), cfg), adam(self.nets["d"].parameters(), cfg)
        self.noise = torch.Generator().manual_seed(seeding.int_seed(cfg.seed, "sampling", client))
        self.buffer = ParameterBuffer(info)
        transport.declare(0, PARAMS_UP, (self.buffer.size,))
        transport.declare(0, PARAMS_DOWN, (self.buffer.size,), send=False)
        self.flops = {net: net_flops(info, net) for net in ("g", "d")}

    def train_iteration(self, x, y):
        z = torch.randn(x.shape[0], self.info.arch.z_dim, generator=self.noise)
        y_fake = fake_labels(self.info.config, y, self.noise, self.n_classes)
        return gan_step(self.nets["g"], self.nets["d"], self.g_opt, self.d_opt, x, y, z, y_fake,
                        self.pace, self.flops)

    def round_end(self, round_index):
        self.t.isend(0, PARAMS_UP, self.buffer.pack(self.nets))
        self.buffer.unpack(self.t.recv(0, PARAMS_DOWN), self.nets)

    def generate(self, z, labels):
        return generate_with(self.nets["g"], z, labels)


class FedGANServer(ServerStrategy):
    def __init__(self, info, transport):
        super().__init__(info, transport)
        self.clients = list(info.clients)
        self.size = ParameterBuffer(info).size
        self.weights = size_weights(info, self.clients)
        for c in self.clients:
            transport.declare(c, PARAMS_UP, (self.size,), send=False)
            transport.declare(c, PARAMS_DOWN, (self.size,))

    def train_iteration(self, last_of_round):
        pass  # clients train alone between rounds

    def round_end(self, round_index):
        got = self.t.recv_many(self.clients, PARAMS_UP)
        avg = fedavg([got[c] for c in self.clients], self.weights)  # BN counters are rounded when a client unpacks
        for c in self.clients:
            self.t.isend(c, PARAMS_DOWN, avg)
        return RoundRecord({"weights": self.weights.copy()}, log="FedAvg of whole G and D")


def _exposure(config):
    return {("parameters", "client", "server"), ("parameters", "server", "client")}


STRATEGY = Strategy("fedgan", FedGANClient, FedGANServer, uses_cuts=False, exposure=_exposure)
