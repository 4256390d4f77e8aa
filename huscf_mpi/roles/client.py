"""The client loop (ranks 1..N): local data, the strategy's iterations, round reports."""
from __future__ import annotations

import logging
import time

import numpy as np

from .. import seeding
from ..comm import Kind, MPITransport
from ..data import ClientBatches, load_shard, open_domain
from ..strategies import ClientStrategy, RunInfo
from .reports import ROUND_STATS, evaluation_due, max_rss_bytes, private_dirty_bytes
from . import preflight
from .setup import ClientAssignment

log = logging.getLogger("huscf_mpi")


def run_client(info: RunInfo, assignment: ClientAssignment, transport: MPITransport,
               strategy_cls: type[ClientStrategy]) -> None:
    cfg, client = info.config, transport.rank
    error, evaluator = None, None
    try:
        # The shard only, as uint8 (memory-mapped from the node's decoded-data cache).
        images, labels = load_shard(assignment.domain, assignment.cache, cfg.seed, assignment.indices)
        batches = ClientBatches(images, labels, cfg.training.batch_size, seeding.rng(cfg.seed, "batches", client))
        strategy = strategy_cls(info, client, transport)
        if info.evaluators[assignment.domain] == client:
            from .evaluation import DomainEvaluator  # scikit-learn/scipy only on evaluating clients

            evaluator = DomainEvaluator(info, client, open_domain(assignment.domain, assignment.cache, cfg.seed),
                                        transport)
        transport.declare(0, Kind.ROUND_STATS, (len(ROUND_STATS),), np.float64)
        log.info("client %d: %s, %d samples, excluded labels %s, cuts %s", client, assignment.domain,
                 len(labels), list(assignment.excluded_labels), info.cuts[client].as_tuple())
    except Exception as e:  # reported collectively so no rank is left waiting
        error = f"client {client}: {e}"
    preflight.check(transport, error, transport.declared_bytes(), cfg.preflight.memory, cfg.preflight.memory_fraction)

    for r in range(1, cfg.training.rounds + 1):
        t0, w0 = time.perf_counter(), transport.wait_seconds
        loss_d = loss_g = 0.0
        for _ in range(info.iterations_per_round):
            x, y = batches.next()
            ld, lg = strategy.train_iteration(x, y)
            loss_d, loss_g = loss_d + ld, loss_g + lg
        strategy.round_end(r)
        transport.flush()
        wall, waited = time.perf_counter() - t0, transport.wait_seconds - w0
        sent, received = transport.ledger.take_round()
        n = info.iterations_per_round
        transport.isend(0, Kind.ROUND_STATS, np.array([
            loss_d / n, loss_g / n, wall - waited, waited, sent, received, max_rss_bytes(), private_dirty_bytes(),
            strategy.pacer.overrun_seconds, strategy.pacer.overrun_sections]))
        if evaluator is not None and evaluation_due(r, cfg.evaluation.every, cfg.training.rounds):
            evaluator.round(strategy)
    if evaluator is not None:
        evaluator.final(strategy)
    transport.barrier()
