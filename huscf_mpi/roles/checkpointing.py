"""The engine's checkpoints: what each rank saves after a round, rank 0's commit, and the restore.

After every ``training.checkpoint_every``-th round (and the last), once the round's rows are in
the result file and its evaluation is done, every rank writes its own state file
(:mod:`huscf_mpi.checkpoint.files`) and tells rank 0 how it went; rank 0 commits the
checkpoint (the manifest) when every rank's file is in place. What a rank saves:

- its strategy side, attribute by attribute (:func:`huscf_mpi.checkpoint.state.capture`):
  model parts, optimizer moments, noise generators, federation and scheduling state;
- clients: the batch order (the shard's permutation, position and generator), the evaluation
  noise generator, the emulation pacer's counters;
- every rank: its message ledger and the process-wide generators;
- rank 0: the cut plan (cuts, emulated and measured profiles, block FLOPs), so a resumed
  ``cuts: ga`` run keeps its cuts instead of profiling again.

The report to rank 0 (ok, bytes, seconds; float64) travels on :data:`CHECKPOINT_TAG` outside
the transport, so the ledger a checkpoint saves is the ledger an uninterrupted run has.
A checkpoint that fails (a full disk, a rank silent past ``training.client_timeout_s``) is
logged and skipped: the run goes on and the previous checkpoint stays the one to resume from.
An asynchronous run that has lost clients writes no more checkpoints (their ranks never report).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from mpi4py import MPI

from .. import stopping
from ..checkpoint import files
from ..checkpoint.state import SKIP, capture, global_rng_state, restore, set_global_rng_state
from ..comm.kinds import CHECKPOINT_TAG  # the report: float64 (3,) = (ok, bytes, seconds)

log = logging.getLogger("huscf_mpi")

_POLL_S = 1e-3


@dataclass
class Resume:
    """Where a resumed run continues from: the checkpoint folder and its manifest."""

    root: Path
    manifest: files.Manifest
    _loaded: dict = field(default_factory=dict, repr=False)

    @classmethod
    def find(cls, path) -> "Resume":
        """The checkpoint ``train --resume PATH`` names (:func:`huscf_mpi.checkpoint.files.find`)."""
        return cls(*files.find(path))

    @property
    def round(self) -> int:
        return self.manifest.round

    def load(self, rank: int) -> dict:
        """This rank's saved state (read once, kept until :meth:`forget`); ``ValueError`` (one
        line) if its file is missing, unreadable or another rank's or round's."""
        if rank not in self._loaded:
            self._loaded[rank] = self._read(rank)
        return self._loaded[rank]

    def forget(self) -> None:
        self._loaded.clear()

    def _read(self, rank: int) -> dict:
        state = files.load_rank(self.manifest.rank_file(self.root, rank))
        if state.get("rank") != rank or state.get("round") != self.round:
            raise ValueError(f"checkpoint file {self.manifest.rank_file(self.root, rank)} is not rank {rank}'s "
                             f"state after round {self.round}")
        return state


def due(round_index: int, every: int, rounds: int) -> bool:
    """Whether round ``round_index`` ends with a checkpoint: every ``every``-th and the last (0: never)."""
    return every > 0 and (round_index % every == 0 or round_index == rounds)


def _ledger_state(ledger) -> dict:
    return {"entries": {k: list(v) for k, v in ledger.entries.items()},
            "round_sent": ledger.round_sent, "round_received": ledger.round_received}


def _restore_ledger(ledger, state: dict) -> None:
    ledger.entries = defaultdict(lambda: [0, 0], {k: list(v) for k, v in state["entries"].items()})
    ledger.round_sent, ledger.round_received = state["round_sent"], state["round_received"]


def client_state(side, batches, evaluator, transport) -> dict:
    """A client's (or helper rank's) state after a round; see the module docstring."""
    return {"strategy": capture(side),
            "batches": None if batches is None else capture(batches, SKIP | {"images", "labels"}),
            "evaluation_noise": None if evaluator is None else evaluator.noise.get_state(),
            "pacer": capture(transport.pacer), "ledger": _ledger_state(transport.ledger), "rng": global_rng_state()}


def restore_client(state: dict, side, batches, evaluator, transport) -> None:
    restore(side, state["strategy"])
    if batches is not None:
        restore(batches, state["batches"], SKIP | {"images", "labels"})
    if evaluator is not None:
        evaluator.noise.set_state(state["evaluation_noise"])
    restore(transport.pacer, state["pacer"])
    _restore_ledger(transport.ledger, state["ledger"])
    set_global_rng_state(state["rng"])


def server_state(strategy, transport, plan) -> dict:
    """Rank 0's state after a round: its strategy side, ledger, generators and the cut plan."""
    from ..roles.cut_setup import CutPlan

    kept = CutPlan(plan.cuts, plan.emulated, plan.flops, {}, plan.profiles)  # not the result-file record
    return {"strategy": capture(strategy), "ledger": _ledger_state(transport.ledger), "rng": global_rng_state(),
            "plan": kept}


def restore_server(state: dict, strategy, transport) -> None:
    restore(strategy, state["strategy"])
    _restore_ledger(transport.ledger, state["ledger"])
    set_global_rng_state(state["rng"])


def _save(root: Path, round_index: int, rank: int, state: dict) -> tuple[bool, int, float]:
    t0 = time.perf_counter()
    state = {"rank": rank, "round": round_index, **state}
    try:
        size = files.save_rank(files.rank_file(root, round_index, rank), state)
        return True, size, time.perf_counter() - t0
    except OSError as e:
        log.warning("rank %d: checkpoint after round %d not written: %s", rank, round_index, e.strerror or e)
        return False, 0, time.perf_counter() - t0


def save_client(comm, root: Path, round_index: int, state: dict) -> None:
    """Write this rank's file and report it to rank 0 (who commits the checkpoint)."""
    rank = comm.Get_rank()
    ok, size, seconds = _save(root, round_index, rank, state)
    comm.Send(np.array([float(ok), float(size), seconds]), dest=0, tag=CHECKPOINT_TAG)


def commit(comm, root: Path, round_index: int, state: dict, ranks: list[int], timeout_s: float | None,
           manifest: dict, poll=None) -> dict | None:
    """Rank 0: write its own file, wait for the reports of ``ranks``, and commit the manifest if
    every file is in place. Returns ``{"bytes": [...], "seconds": s}`` if committed, else None.

    ``manifest`` holds the :class:`~huscf_mpi.checkpoint.files.Manifest` fields this function
    does not know (result, config_yaml, config_hash, schema_version, written). ``poll`` is
    called while waiting (rank 0's signal and crash checks). ``seconds`` is rank 0's time from
    its own write to the commit; ``rank_seconds`` the longest any rank took to write its file
    (clients write as soon as their round ends, often before rank 0 starts)."""
    t0 = time.perf_counter()
    reports = {r: np.zeros(3) for r in ranks}
    requests = [comm.Irecv(reports[r], source=r, tag=CHECKPOINT_TAG) for r in ranks]
    ok, size, own = _save(root, round_index, 0, state)
    while not MPI.Request.Testall(requests):
        if poll is not None:
            poll()
        if timeout_s is not None and time.perf_counter() - t0 > timeout_s:
            late = [r for r, q in zip(ranks, requests) if not q.Test()]
            log.warning("checkpoint after round %d skipped: ranks %s did not report within %.0f s "
                        "(training.client_timeout_s)", round_index, late, timeout_s)
            for q in requests:
                if not q.Test():
                    q.Cancel()
            return None
        time.sleep(_POLL_S)
    failed = [r for r in ranks if not reports[r][0]] + ([] if ok else [0])
    if failed:
        log.warning("checkpoint after round %d skipped: ranks %s could not write their files", round_index, failed)
        return None
    sizes = [size] + [int(reports[r][1]) for r in ranks]
    seconds = time.perf_counter() - t0
    files.write_manifest(root, files.Manifest(round=round_index, ranks=comm.Get_size(), bytes=sizes,
                                              seconds=seconds, **manifest))
    return {"bytes": sizes, "seconds": seconds, "rank_seconds": max([own] + [reports[r][2] for r in ranks])}


@dataclass
class Checkpoints:
    """Rank 0's side of a run's checkpoints: commits each one (:func:`commit`) and records the
    last in the result file (attributes of ``/checkpoint``).

    ``root`` None: the run writes none (``training.checkpoint_every: 0``). ``manifest``: the
    manifest fields fixed for the run (result, config_yaml, config_hash, schema_version).
    ``plan``: the cut plan to save. ``resume``: where a resumed run continues from."""

    root: Path | None = None
    manifest: dict = field(default_factory=dict)
    plan: object = None
    resume: Resume | None = None
    poll: Callable | None = None
    count: int = 0
    total_seconds: float = 0.0
    warned: bool = False

    def save(self, r: int, strategy, transport, writer, ranks: list[int]) -> None:
        """Checkpoint after round ``r`` with the non-server ``ranks`` (all of them)."""
        from ..results.writer import utc_now

        if strategy.lost:
            if not self.warned:
                log.warning("no more checkpoints: clients %s were lost", sorted(strategy.lost))
                self.warned = True
                stopping.defer(False)  # a SIGUSR1 now stops at once: no checkpoint will come
            return
        cfg = strategy.info.config
        done = commit(transport.comm, self.root, r, server_state(strategy, transport, self.plan), ranks,
                      cfg.training.client_timeout_s, dict(self.manifest, written=utc_now()), self.poll)
        if done is None:
            return
        self.count += 1
        self.total_seconds += done["seconds"]
        writer.set_attrs("checkpoint", folder=str(self.root), round=r, bytes=int(sum(done["bytes"])),
                         max_rank_bytes=int(max(done["bytes"])), seconds=done["seconds"],
                         max_rank_seconds=done["rank_seconds"], count=self.count,
                         total_seconds=self.total_seconds, every=cfg.training.checkpoint_every)
        writer.flush()
        log.info("checkpoint after round %d: %d files, %.2f MiB, each written in <= %.2f s, committed after "
                 "%.2f s (%s)", r, len(done["bytes"]), sum(done["bytes"]) / 2**20, done["rank_seconds"],
                 done["seconds"], self.root)


def remove(root: Path) -> None:
    """Delete a finished run's checkpoints (its result file is complete: nothing to resume)."""
    import shutil

    if root.is_dir():
        shutil.rmtree(root, ignore_errors=True)
        if root.exists():
            log.warning("could not remove the checkpoints in %s", root)

