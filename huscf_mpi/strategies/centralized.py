"""Centralized upper bound: one cGAN trained on the union of all client shards, on rank 0.

Source: the usual upper bound of federated GAN papers (e.g. the "centralized" rows of
HuSCF-GAN's and MD-GAN's evaluations): what the same model reaches when all data is pooled.

Rank layout: the run's usual ``mpiexec -n N+1`` (not ``-n 1``), so partition, seeds,
evaluating clients and the result file are exactly those of every other method. In its first
iteration each client sends its whole shard to rank 0 (``central_images``, uint8
(n_i, C, H, W), and ``central_labels``, int64 (n_i,)): pooling is what "centralized" means,
and the ledger shows it. From then on clients only evaluate.

Where things live: rank 0 holds the union of the shards, a whole G and D (HuSCF-GAN's virtual
networks, same initial weights) and their Adam optimisers.

Sample-passes: per iteration of the other methods each client consumes one batch of B, so
rank 0 runs N unsplit steps (SPEC §1, batch B, the same losses and ``training.fake_labels``)
on batches drawn from the union per iteration: the same number of samples seen, and the same
batch statistics, as the federation. Losses are recorded as ``rounds/server_loss_d/_g``
(clients report NaN). Evaluation: G's parameters go to the evaluating clients
(``eval_generator``, evaluation plane), which generate locally. Rank 0 is not paced to an
emulated server profile (as for HuSCF-GAN's body), so emulated runs time it at real speed.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import seeding
from ..comm import kind
from ..data import ClientBatches
from .base import RoundRecord, ServerStrategy, Strategy, fake_labels
from .common import EvaluationGenerator, ServerGeneratorClient, adam, gan_step, whole_networks

IMAGES = kind("central_images", 300, "protocol", "raw_images")
LABELS = kind("central_labels", 301, "protocol", "real_labels")


class CentralizedClient(ServerGeneratorClient):
    def __init__(self, info, client, transport, shard=None):
        super().__init__(info, client, transport, shard)
        n = info.sizes[client]
        transport.declare(0, IMAGES, (n, *info.arch.image_shape), np.uint8)
        transport.declare(0, LABELS, (n,), np.int64)
        self.sent = False
        self.evaluation = (EvaluationGenerator(info, transport, whole_networks(info)["g"])
                           if client in info.evaluators.values() else None)

    def train_iteration(self, x, y):
        if not self.sent:
            self.t.isend(0, IMAGES, np.ascontiguousarray(self.shard.images).reshape(-1, *self.info.arch.image_shape))
            self.t.isend(0, LABELS, np.ascontiguousarray(self.shard.labels, dtype=np.int64))
            self.sent = True
        return float("nan"), float("nan")

    def round_end(self, round_index):
        return None


class CentralizedServer(ServerStrategy):
    def __init__(self, info, transport):
        super().__init__(info, transport)
        cfg = info.config
        self.clients = list(info.clients)
        self.nets = whole_networks(info)
        self.g_opt, self.d_opt = adam(self.nets["g"].parameters(), cfg), adam(self.nets["d"].parameters(), cfg)
        self.noise = torch.Generator().manual_seed(seeding.int_seed(cfg.seed, "sampling", 0))
        for c in self.clients:
            transport.declare(c, IMAGES, (info.sizes[c], *info.arch.image_shape), np.uint8, send=False)
            transport.declare(c, LABELS, (info.sizes[c],), np.int64, send=False)
        self.data: ClientBatches | None = None
        self.losses: list[tuple[float, float]] = []
        self.evaluation = EvaluationGenerator(info, transport)

    def _pool(self) -> ClientBatches:
        images = self.t.recv_many(self.clients, IMAGES)
        images = np.concatenate([images[c] for c in self.clients])  # copies out of the receive buffers
        labels = self.t.recv_many(self.clients, LABELS)
        labels = np.concatenate([labels[c] for c in self.clients])
        for c in self.clients:  # the pooled copy is all rank 0 keeps
            self.t.forget(c, IMAGES)
            self.t.forget(c, LABELS)
        cfg = self.info.config
        return ClientBatches(images, labels, cfg.training.batch_size, seeding.rng(cfg.seed, "batches", 0))

    def train_iteration(self, last_of_round):
        if self.data is None:
            self.data = self._pool()
        g, d, K, zdim = self.nets["g"], self.nets["d"], self.info.arch.n_classes, self.info.arch.z_dim
        for _ in self.clients:
            x, y = self.data.next()
            z = torch.randn(x.shape[0], zdim, generator=self.noise)
            self.losses.append(gan_step(g, d, self.g_opt, self.d_opt, x, y, z,
                                        fake_labels(self.info.config, y, self.noise, K)))

    def round_end(self, round_index):
        loss_d, loss_g = np.mean(self.losses, axis=0) if self.losses else (np.nan, np.nan)
        self.losses = []
        return RoundRecord({"server_loss_d": np.float64(loss_d), "server_loss_g": np.float64(loss_g)},
                           log=f"centralized: loss D {loss_d:.3f} G {loss_g:.3f}")

    def begin_evaluation(self, clients):
        self.evaluation.send(self.nets["g"], clients)


def _exposure(config):
    return {("raw_images", "client", "server"), ("real_labels", "client", "server"),
            ("parameters", "server", "client")}


STRATEGY = Strategy("centralized", CentralizedClient, CentralizedServer, uses_cuts=False,
                    exposure=_exposure)
