"""The client loop (ranks 1..N, and helper ranks): local data, the strategy's iterations, round reports.

A helper rank (a device of a multi-rank client, ``RunInfo.groups``) runs the same loop with no
data (``assignment`` is ``None``): the strategy's iterations get ``None, None``, it evaluates nothing,
and it reports its round statistics like a client.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from .. import process, seeding
from ..comm import MPITransport
from ..comm.kinds import ITERATION_SECONDS, ROUND_STATS
from ..cuts.emulation import Pacer
from ..data import ClientBatches, decoded_meta, load_shard, open_domain
from ..strategies import RunInfo, Strategy
from .reports import evaluation_due, max_rss_bytes, private_dirty_bytes, round_stats_fields
from . import checkpointing, preflight
from .setup import ClientAssignment

log = logging.getLogger("huscf_mpi")


def run_client(info: RunInfo, assignment: ClientAssignment, transport: MPITransport, strategy: Strategy,
               resume: checkpointing.Resume | None = None) -> None:
    """Train every round (after ``resume.round`` when resuming: the state saved then is restored
    first), checkpointing at the rounds :func:`checkpointing.due` names."""
    cfg, client = info.config, transport.rank
    error, evaluator = None, None
    fields = round_stats_fields(strategy)
    try:
        profile = info.emulated.get(client)
        if profile is not None:  # every protocol message and paced compute section of this rank
            transport.pacer = Pacer(profile.flops_per_s, profile.link_bytes_per_s)
        batches = None
        if assignment is not None:  # the shard only, as uint8 (memory-mapped from the node's decoded-data cache)
            images, labels = load_shard(assignment.domain, assignment.cache, cfg.seed, assignment.indices)
            batches = ClientBatches(images, labels, cfg.training.batch_size, seeding.rng(cfg.seed, "batches", client))
        side = strategy.client(info, client, transport, shard=batches)
        if assignment is not None and info.evaluators[assignment.domain] == client:
            from .evaluation import DomainEvaluator  # scikit-learn/scipy only on evaluating clients

            evaluator = DomainEvaluator(info, client, open_domain(assignment.domain, assignment.cache, cfg.seed),
                                        transport, decoded_meta(assignment.domain, assignment.cache))
        transport.declare(0, ROUND_STATS, (len(fields),), np.float64)
        transport.declare(0, ITERATION_SECONDS, (info.iterations_per_round,), np.float64)
        cuts = info.cuts[client].as_tuple() if client in info.cuts else "none"
        if assignment is not None:
            log.info("client %d: %s, %d samples, excluded labels %s, cuts %s", client, assignment.domain,
                     len(labels), list(assignment.excluded_labels), cuts)
        else:
            log.info("rank %d: a device without data of client %d", client,
                     next(c for c in info.clients if client in info.group(c)))
        if resume is not None:
            checkpointing.restore_client(resume.load(client), side, batches, evaluator, transport)
            resume.forget()
    except Exception as e:  # reported collectively so no rank is left waiting
        error = f"client {client}: {e}"
    preflight.check(transport, error, transport.declared_bytes(), cfg.preflight.memory, cfg.preflight.memory_fraction)

    if resume is None:
        transport.ledger.take_round()  # set-up traffic (link probes) is not a round's
    start, every = (resume.round if resume else 0) + 1, cfg.training.checkpoint_every
    root = checkpointing.files.checkpoint_dir(cfg.output_path)
    for r in range(start, cfg.training.rounds + 1):
        t0, w0 = time.perf_counter(), transport.wait_seconds
        loss_d = loss_g = 0.0
        seconds = np.full(info.iterations_per_round, np.nan)  # the first iterations_per_round only
        n = 0
        while side.next_iteration(n):
            t_it = time.perf_counter()
            x, y = batches.next() if batches is not None else (None, None)
            ld, lg = side.train_iteration(x, y)
            loss_d, loss_g = loss_d + ld, loss_g + lg
            if n < len(seconds):
                seconds[n] = time.perf_counter() - t_it
            n += 1
        train_seconds = time.perf_counter() - t0
        own = side.round_end(r) or {}
        transport.flush()
        process.release_free_heap()  # before private_dirty_bytes below: the iteration's holes go back
        wall, waited = time.perf_counter() - t0, transport.wait_seconds - w0
        sent, received = transport.ledger.take_round()
        pacer = transport.pacer
        loss_d, loss_g = (loss_d / n, loss_g / n) if n else (np.nan, np.nan)  # means over this round's n
        values = {"loss_d": loss_d, "loss_g": loss_g, "compute_seconds": wall - waited,
                  "comm_seconds": waited, "train_seconds": train_seconds, "bytes_sent": sent,
                  "bytes_received": received, "max_rss_bytes": max_rss_bytes(),
                  "private_dirty_bytes": private_dirty_bytes(),
                  "emulation_overrun_seconds": pacer.overrun_seconds,
                  "emulation_overrun_sections": pacer.overrun_sections, **own}
        transport.isend(0, ROUND_STATS, np.array([values.get(k, np.nan) for k in fields], np.float64))
        transport.isend(0, ITERATION_SECONDS, seconds)
        if evaluator is not None and evaluation_due(r, cfg.evaluation.every, cfg.training.rounds):
            side.begin_evaluation()
            evaluator.round(side)
        if checkpointing.due(r, every, cfg.training.rounds):
            checkpointing.save_client(transport.comm, root, r,
                                      checkpointing.client_state(side, batches, evaluator, transport))
    if evaluator is not None:
        side.begin_evaluation()
        evaluator.final(side)
    transport.gather(transport.ledger.received_rows(client))  # for the result file's who-saw-what
    transport.barrier()
