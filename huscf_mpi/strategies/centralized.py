"""Centralized upper bound: a cGAN trained on the pooled client shards, on rank 0.

Source: the usual upper bound of federated GAN papers (e.g. the "centralized" rows of
HuSCF-GAN's and MD-GAN's evaluations): what the same model reaches when all data is pooled.

Pools (``centralized.pool``): ``all`` (the default) trains one cGAN on the union of every
client's shard, as those papers do. In a multi-domain run that one generator, conditioned on
the class label only, mixes the domains in every class, so it is no bound for a method that
keeps one generator per domain (HuSCF-GAN's clusters); ``domain`` trains one cGAN per domain
on the union of that domain's shards: pooled data with the clustering known in advance, the
bound for per-domain generators. Each pool starts from the same initial weights.

Rank layout: the run's usual ``mpiexec -n N+1`` (not ``-n 1``), so partition, seeds,
evaluating clients and the result file are exactly those of every other method. In its first
iteration each client sends its whole shard to rank 0 (``central_images``, uint8
(n_i, C, H, W), and ``central_labels``, int64 (n_i,)): pooling is what "centralized" means,
and the ledger shows it. From then on clients only evaluate.

Where things live: rank 0 holds the pooled shards, a whole G and D per pool (HuSCF-GAN's
virtual networks, same initial weights) and their Adam optimisers.

Sample-passes: per iteration of the other methods each client consumes one batch of B, so
rank 0 runs, per pool, one unsplit step (SPEC §1, batch B, the same losses and
``training.fake_labels``) per client of the pool, on batches drawn from the pool's union: the
same number of samples seen, and the same batch statistics, as the federation. Pool ``p``
(in the order of the clients' domains) draws its batches from the stream
``seeding.rng(seed, "batches", p)``; all pools share one noise stream, used pool after pool.
Losses are recorded as ``rounds/server_loss_d/_g`` (the mean over every step of the round;
clients report NaN). Evaluation: each pool's G goes to the evaluating clients of its pool
(``eval_generator``, evaluation plane), which generate locally. Rank 0 is not paced to an
emulated server profile (as for HuSCF-GAN's body), so emulated runs time it at real speed.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import seeding
from ..comm import kind
from ..data import ClientBatches
from ..data.registry import get_domain
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


def pools(info) -> list[list[int]]:
    """The clients whose shards each pool trains on, in client order: ``[info.clients]`` for
    ``centralized.pool: all``, one list per domain (in order of first appearance) for ``domain``."""
    if info.config.centralized.pool == "all":
        return [list(info.clients)]
    by_domain: dict[str, list[int]] = {}
    for c in info.clients:
        by_domain.setdefault(info.domains[c], []).append(c)
    return list(by_domain.values())


class Pool:
    """One pooled cGAN: its clients, whole G and D with their Adam states, and (from the first
    iteration) the union of its clients' shards as batches from ``seeding.rng(seed, "batches", index)``.
    Uniform fake labels (``training.fake_labels: uniform``) are drawn from the labels of its
    clients' domains (``n_classes``: the largest domain's count)."""

    def __init__(self, info, clients: list[int], index: int):
        self.clients, self.index = clients, index
        self.n_classes = max(get_domain(info.domains[c]).n_classes for c in clients)
        self.nets = whole_networks(info)
        self.g_opt = adam(self.nets["g"].parameters(), info.config)
        self.d_opt = adam(self.nets["d"].parameters(), info.config)
        self.data: ClientBatches | None = None


class CentralizedServer(ServerStrategy):
    def __init__(self, info, transport):
        super().__init__(info, transport)
        cfg = info.config
        self.clients = list(info.clients)
        self.pools = [Pool(info, members, i) for i, members in enumerate(pools(info))]
        self.noise = torch.Generator().manual_seed(seeding.int_seed(cfg.seed, "sampling", 0))
        for c in self.clients:
            transport.declare(c, IMAGES, (info.sizes[c], *info.arch.image_shape), np.uint8, send=False)
            transport.declare(c, LABELS, (info.sizes[c],), np.int64, send=False)
        self.losses: list[tuple[float, float]] = []
        self.evaluation = EvaluationGenerator(info, transport)

    def _receive_shards(self) -> None:
        images, labels = self.t.recv_many(self.clients, IMAGES), self.t.recv_many(self.clients, LABELS)
        cfg = self.info.config
        for pool in self.pools:  # concatenate copies out of the receive buffers
            pool.data = ClientBatches(np.concatenate([images[c] for c in pool.clients]),
                                      np.concatenate([labels[c] for c in pool.clients]),
                                      cfg.training.batch_size, seeding.rng(cfg.seed, "batches", pool.index))
        for c in self.clients:  # the pooled copies are all rank 0 keeps
            self.t.forget(c, IMAGES)
            self.t.forget(c, LABELS)

    def train_iteration(self, last_of_round):
        if self.pools[0].data is None:
            self._receive_shards()
        zdim = self.info.arch.z_dim
        for pool in self.pools:
            for _ in pool.clients:
                x, y = pool.data.next()
                z = torch.randn(x.shape[0], zdim, generator=self.noise)
                self.losses.append(gan_step(pool.nets["g"], pool.nets["d"], pool.g_opt, pool.d_opt, x, y, z,
                                            fake_labels(self.info.config, y, self.noise, pool.n_classes)))

    def round_end(self, round_index):
        loss_d, loss_g = np.mean(self.losses, axis=0) if self.losses else (np.nan, np.nan)
        self.losses = []
        return RoundRecord({"server_loss_d": np.float64(loss_d), "server_loss_g": np.float64(loss_g)},
                           log=f"centralized ({len(self.pools)} pool{'s' * (len(self.pools) > 1)}): "
                               f"loss D {loss_d:.3f} G {loss_g:.3f}")

    def begin_evaluation(self, clients):
        for pool in self.pools:
            members = [c for c in clients if c in pool.clients]
            if members:
                self.evaluation.send(pool.nets["g"], members)


def _exposure(config):
    return {("raw_images", "client", "server"), ("real_labels", "client", "server"),
            ("parameters", "server", "client")}


STRATEGY = Strategy("centralized", CentralizedClient, CentralizedServer, uses_cuts=False,
                    exposure=_exposure)
