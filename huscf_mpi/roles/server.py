"""The server loop (rank 0): serves the strategy, gathers reports, writes the result file."""
from __future__ import annotations

import logging
import time

import numpy as np
from tqdm import tqdm

from .. import stopping
from ..comm import MPITransport, exposure_table, ledger_table
from ..comm.kinds import AUDIO_CLIPS, EVAL_SCALARS, ITERATION_SECONDS, ROUND_STATS, SAMPLE_GRID
from ..data import audio, get_domain
from ..results import ResultWriter
from ..strategies import RunInfo, ServerStrategy, Strategy
from .reports import (SCALARS, audio_clip_count, evaluation_due, grid_shape, max_rss_bytes, n_chunks,
                      private_dirty_bytes, round_stats_fields)
from . import checkpointing, preflight

log = logging.getLogger("huscf_mpi")


def _mean(values: np.ndarray) -> float:
    """Mean of the finite values (NaN if none)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _serve_generation(strategy: ServerStrategy, info: RunInfo, n_samples: int, transport: MPITransport
                      ) -> dict[int, np.ndarray]:
    evaluators = sorted(c for c in info.evaluators.values() if c not in strategy.lost)
    with transport.untimed():  # an evaluating client may train a classifier for minutes
        strategy.begin_evaluation(evaluators)
        for _ in range(n_chunks(n_samples, info.config.evaluation.batch_size)):
            strategy.serve_generation(evaluators)
        return {c: v.copy() for c, v in transport.recv_many(evaluators, EVAL_SCALARS).items()}


def run_server(info: RunInfo, transport: MPITransport, method: Strategy,
               writer: ResultWriter, launched: float | None = None,
               progress: stopping.Progress | None = None, checkpoints: checkpointing.Checkpoints | None = None
               ) -> dict[str, dict[str, float]]:
    """Run every round; returns the final metrics per domain. The caller closes ``writer``.

    ``checkpoints`` (:class:`~huscf_mpi.roles.checkpointing.Checkpoints`): where and how to checkpoint, and a resumed run's
    saved state (its rounds before ``checkpoints.resume.round`` are not run again).
    ``launched``: when the first rank was created (seconds since the epoch, ±1 s); the time
    from it to the first iteration is recorded as ``/run`` attribute ``startup_seconds``.
    ``progress`` is kept up to date (phase, rounds written, iterations of the next), for the
    result file of a run that stops early.
    """
    progress = progress if progress is not None else stopping.Progress()
    cfg = info.config
    clients, domains = info.clients, list(info.evaluators)
    reporting = info.client_ranks  # the clients, then any helper ranks (per-rank figures)
    evaluators = [info.evaluators[d] for d in domains]
    error = None
    fields = round_stats_fields(method)
    clips = {}  # evaluating client -> rows of its AUDIO_CLIPS (audio domains only)
    grid_shapes = {}  # evaluating client -> shape of its SAMPLE_GRID (a lost one's rows stay blank)
    checkpoints = checkpoints or checkpointing.Checkpoints()
    resume = checkpoints.resume
    try:
        strategy = method.server(info, transport)
        if resume is not None:
            checkpointing.restore_server(resume.load(0), strategy, transport)
            resume.forget()
        for c in reporting:
            transport.declare(c, ROUND_STATS, (len(fields),), np.float64, send=False)
            transport.declare(c, ITERATION_SECONDS, (info.iterations_per_round,), np.float64, send=False)
        for c in evaluators:
            transport.declare(c, EVAL_SCALARS, (len(SCALARS),), np.float64, send=False)
            spec = get_domain(info.domains[c])
            shape = grid_shapes[c] = grid_shape(spec.n_classes, info.arch.image_shape, cfg.evaluation.grid_per_class)
            transport.declare(c, SAMPLE_GRID, shape, np.uint8, send=False)
            n = audio_clip_count(spec.n_classes, cfg.evaluation.audio_per_class, cfg.evaluation.synthetic_samples)
            if spec.modality == "audio" and n:
                clips[c] = n
                transport.declare(c, AUDIO_CLIPS, (n, audio.DEFAULT.n_samples), np.int16, send=False)
    except Exception as e:
        error = f"server: {e}"
    # Clients have loaded data and classifiers when this returns; a run that cannot fit stops here.
    hosts, ranks = preflight.check(transport, error, transport.declared_bytes(), cfg.preflight.memory,
                                   cfg.preflight.memory_fraction)
    writer.write_table("preflight", {"host": list(hosts), **{k: [h[k] for h in hosts.values()] for k in (
        "ranks", "cores", "held_bytes", "growth_bytes", "available_bytes", "fits")}})
    writer.write_table("preflight_ranks", {"rank": list(range(len(ranks))), "host": [r.host for r in ranks],
                                           "private_bytes": [r.private_bytes for r in ranks],
                                           "message_bytes": [r.message_bytes for r in ranks],
                                           "growth_bytes": [r.growth_bytes for r in ranks]})
    writer.set_attrs("preflight", mode=cfg.preflight.memory, memory_fraction=cfg.preflight.memory_fraction,
                     growth_fixed_bytes=preflight.GROWTH_FIXED_BYTES,
                     growth_per_message_byte=preflight.GROWTH_PER_MESSAGE_BYTE)
    for name, table in strategy.tables().items():
        writer.write_table(f"strategy/{name}", table)

    rounds, iters = cfg.training.rounds, info.iterations_per_round
    # From here every wait for a training or report message has a deadline: a frozen or dead
    # client ends the run as failed (roles/run.py) instead of hanging it. Evaluations are untimed.
    transport.wait_timeout = cfg.training.client_timeout_s
    if launched is not None:
        startup = time.time() - launched
        writer.set_attrs("run", startup_seconds=startup)
        log.info("first iteration %.1f s after launch (%d ranks)", startup, transport.size)
    bar = tqdm(total=rounds * iters, desc="training", unit="it", dynamic_ncols=True,
               mininterval=1.0, smoothing=0.05)
    start = (resume.round if resume else 0) + 1
    if resume is None:
        transport.ledger.take_round()  # set-up traffic (link probes) is not a round's
    bar.update((start - 1) * iters)
    progress.phase = "training"
    stopping.defer(checkpoints.root is not None)  # SIGUSR1: finish the round and its checkpoint first
    for r in range(start, rounds + 1):
        t0, w0 = time.perf_counter(), transport.wait_seconds
        steps, last, work = [], [t0], [0.0]  # seconds of each server step; synchronous iterations done

        def step(iterations: float) -> None:
            now = time.perf_counter()
            steps.append(now - last[0])
            last[0] = now
            work[0] += iterations
            progress.iterations_done = int(work[0])
            bar.update(iterations)

        strategy.train_round(step)
        train_seconds = time.perf_counter() - t0
        # Lock-step: one step per iteration. Asynchronous: steps are buffers, so the row holds
        # the clients' own iteration times (NaN where no rank did an i-th iteration).
        seconds = np.asarray(steps) if len(steps) == iters else np.full(iters, np.nan)
        record = strategy.round_end(r)
        transport.flush()
        wall, waited = time.perf_counter() - t0, transport.wait_seconds - w0
        sent, received = transport.ledger.take_round()
        live = [c for c in reporting if c not in strategy.lost]  # lost clients (asynchronous modes) report NaN
        stats = transport.recv_many(live, ROUND_STATS)
        missing = np.full(len(fields), np.nan)
        table = np.stack([stats.get(c, missing) for c in reporting])  # (ranks - 1, len(fields)): clients first
        col = {name: table[:, i] for i, name in enumerate(fields)}  # per non-server rank
        own = {name: table[:len(clients), i] for i, name in enumerate(fields)}  # per client
        # An iteration is done when the slowest rank is done with it: whichever side (server or
        # clients) does the method's work sets the time (FedGAN's server idles, centralized's works alone).
        client_seconds = transport.recv_many(live, ITERATION_SECONDS)
        iteration_seconds = np.nanmax([seconds, *client_seconds.values()], axis=0)

        scores = np.full(len(domains), np.nan)
        t_eval = time.perf_counter()
        if evaluation_due(r, cfg.evaluation.every, rounds):
            got = _serve_generation(strategy, info, cfg.evaluation.generation_samples, transport)
            scores = np.array([got[c][SCALARS.index("generation_score")] if c in got else np.nan for c in evaluators])
            if cfg.evaluation.sample_grid:
                with transport.untimed():
                    grids = transport.recv_many(list(got), SAMPLE_GRID)
                for d, c in zip(domains, evaluators):
                    writer.append(f"samples/{d}", grids[c] if c in grids else np.zeros(grid_shapes[c], np.uint8))
        eval_seconds = time.perf_counter() - t_eval

        writer.append("rounds/round", r)
        writer.append("rounds/wall_seconds", wall)
        writer.append("rounds/eval_seconds", eval_seconds)
        writer.append("rounds/loss_d", own["loss_d"])
        writer.append("rounds/loss_g", own["loss_g"])
        writer.append("rounds/generation_score", scores)
        writer.append("rounds/evaluated", np.int8(evaluation_due(r, cfg.evaluation.every, rounds)))  # rows of samples/<domain>
        # Per rank (index 0 = server): seconds computing vs waiting on messages, bytes moved.
        writer.append("rounds/compute_seconds", np.r_[wall - waited, col["compute_seconds"]])
        writer.append("rounds/comm_seconds", np.r_[waited, col["comm_seconds"]])
        writer.append("rounds/bytes_sent", np.r_[sent, col["bytes_sent"]].astype(np.int64))
        writer.append("rounds/bytes_received", np.r_[received, col["bytes_received"]].astype(np.int64))
        writer.append("rounds/max_rss_bytes", np.r_[max_rss_bytes(), col["max_rss_bytes"]].astype(np.int64))
        writer.append("rounds/private_dirty_bytes",
                      np.r_[private_dirty_bytes(), col["private_dirty_bytes"]].astype(np.int64))
        writer.append("rounds/train_seconds", np.r_[train_seconds, col["train_seconds"]])  # per rank
        writer.append("rounds/iteration_seconds", iteration_seconds)  # max over ranks, per iteration
        if info.emulated:  # cumulative per non-server rank: where real compute was slower than its profile
            writer.append("rounds/emulation_overrun_seconds", col["emulation_overrun_seconds"])
            writer.append("rounds/emulation_overrun_sections", col["emulation_overrun_sections"].astype(np.int64))
        for name in method.client_values:
            writer.append(f"rounds/{name}", own[name])
        for name, value in record.arrays.items():
            writer.append(f"rounds/{name}", value)
        writer.flush()
        progress.rounds_done, progress.iterations_done = r, 0
        score_text = ", ".join(f"{d} {s:.2f}" for d, s in zip(domains, scores) if np.isfinite(s))
        loss_d, loss_g = _mean(own["loss_d"]), _mean(own["loss_g"])  # lost clients report NaN
        bar.set_postfix_str(f"round {r}/{rounds} D {loss_d:.3f} G {loss_g:.3f}"
                            + (f" GS {score_text}" if score_text else ""))
        log.info("round %d/%d: loss D %.3f G %.3f, %s%s, %.1f s (+%.1f s eval)", r, rounds, loss_d,
                 loss_g, record.log, f", generation score {score_text}" if score_text else "",
                 wall, eval_seconds)
        if checkpoints.root is not None and checkpointing.due(r, cfg.training.checkpoint_every, rounds):
            checkpoints.save(r, strategy, transport, writer, reporting)
            if stopping.held() is not None:
                progress.phase = "checkpoint"
                raise stopping.Interrupted(stopping.held())
    stopping.defer(False)
    bar.close()
    progress.phase = "final evaluation"

    log.info("final evaluation: %d synthetic samples per domain", cfg.evaluation.synthetic_samples)
    got = _serve_generation(strategy, info, cfg.evaluation.synthetic_samples, transport)
    final = {}
    for d, c in zip(domains, evaluators):
        if c in got:  # a lost evaluator (asynchronous modes) leaves its domain without final metrics
            final[d] = {k: float(v) for k, v in zip(SCALARS, got[c]) if np.isfinite(v)}
            writer.set_attrs(f"final/{d}", **final[d])
    clips = {c: n for c, n in clips.items() if c not in strategy.lost}
    if clips:
        with transport.untimed():  # Griffin-Lim after the final metrics
            got = transport.recv_many(sorted(clips), AUDIO_CLIPS)
        for d, c in zip(domains, evaluators):
            if c in clips:
                k = get_domain(d).n_classes
                writer.write_array(f"audio/{d}", got[c], sample_rate=audio.DEFAULT.sample_rate,
                                   labels=np.repeat(np.arange(k), clips[c] // k).tolist(),
                                   source="Griffin-Lim of generated log-mel spectrograms (final evaluation)")
    if strategy.lost:  # a lost rank never joins a collective: the ledger is rank 0's own
        log.warning("clients %s were lost: the ledger holds what rank 0 received only, and the job ends by "
                    "MPI_Abort(0) once the result file is complete", sorted(strategy.lost))
        rows = transport.ledger.received_rows(0)
        writer.set_attrs("run", lost_clients=sorted(strategy.lost))
    else:
        rows = [row for rank_rows in transport.gather(transport.ledger.received_rows(0)) for row in rank_rows]
    writer.write_table("ledger", ledger_table(rows))
    writer.write_table("exposure", exposure_table(rows))
    if not strategy.lost:
        transport.barrier()
    progress.lost_clients = sorted(strategy.lost)
    return final
