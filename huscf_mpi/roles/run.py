"""``huscf-mpi train``: set-up, then the server or client loop depending on the rank.

How a run ends, and what its result file then says (``status``, set in :func:`ending` only):

- **complete**: the loops returned; rank 0 renames ``<path>.partial`` to ``<path>`` and only
  then marks it "complete" (``ResultWriter.close``). If the file cannot be put in place it
  stays ``.partial``, "failed" with the reason; rank 0 logs one line and exits 1.
- **set-up problem**: agreed on collectively; :class:`SetupError` on every rank (the CLI prints
  one line from rank 0 and exits 2). No result file, or none left behind.
- **failed**: any exception after set-up. On rank 0 it is logged with its traceback; a client
  logs its own traceback and reports the error to rank 0 (``stopping.CRASH_TAG``), which
  notices at its next wait. Rank 0 marks the file "failed" with ``error`` naming the rank,
  logs one line and aborts the job (``MPI_Abort``, exit 1), so no rank is left waiting. A
  client that hears nothing within ``CRASH_GRACE_S`` aborts the job itself.
- **interrupted**: SIGINT, SIGTERM or SIGUSR1 to ``mpiexec`` (forwarded to every rank; see
  :mod:`huscf_mpi.stopping`). Rank 0 raises :class:`~huscf_mpi.stopping.Interrupted` at its next
  wait, marks the file "interrupted" with the signal and the round and iteration reached, logs
  one line (no traceback) and aborts the job with 128 + the signal's number (130, 143, 138),
  which ``mpiexec`` returns. Clients ignore the signal and end with the job.

In every case but "complete" the file stays at ``<path>.partial``; a run killed outright
(SIGKILL, a lost node) leaves it "running".
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from mpi4py import MPI

from .. import process, stopping
from ..comm import DeadlineExceeded, MPITransport
from ..errors import ClientsLost, SetupError, UsageError
from ..registry import TITLES, load_strategy
from . import checkpointing
from .client import run_client
from .setup import agree, build_run_info
from .threads import available_cores, server_threads

if TYPE_CHECKING:  # client ranks get a ConfigView instead, without pydantic (launch.py)
    from ..config import Config

log = logging.getLogger("huscf_mpi")

# How long a crashed client waits for rank 0 to end the job before aborting it itself [s].
CRASH_GRACE_S = 60.0
EXIT_FAILED = 1
EXIT_USAGE = 2  # the CLI's exit status for bad input (cli.EXIT_USAGE)
ABORT_DELAY_S = 0.5  # between rank 0's last log line and MPI_Abort


@dataclass
class Ending:
    """How a run ended: the result file's final ``status``, its ``error`` line and ``stop``
    attributes, the job's exit code, and whether rank 0 logs a traceback."""

    status: str
    error: str = ""
    stop: dict = field(default_factory=dict)
    exit_code: int = 0
    traceback: bool = False


def ending(exc: BaseException | None, progress: stopping.Progress, rounds: int | None = None,
           iterations: int | None = None) -> Ending:
    """The one place that decides how a run ended, from what rank 0 caught (None: it returned).

    An :class:`~huscf_mpi.stopping.Interrupted` is "interrupted"; a collective
    :class:`SetupError` (e.g. the memory preflight, once the file exists), a client's
    :class:`~huscf_mpi.stopping.PeerCrashed`, too few live clients (:class:`ClientsLost`), a
    :class:`~huscf_mpi.comm.DeadlineExceeded` (a client silent for ``training.client_timeout_s``)
    or any other exception "failed"; nothing
    "complete". A stopped run continues from its last checkpoint (``train --resume``), which
    was written at a round's end: the rounds after it are trained again.
    """
    from ..results import schema

    if exc is None:
        return Ending(schema.STATUS_COMPLETE)
    where = dict(stop_phase=progress.phase, rounds_done=progress.rounds_done,
                 iterations_done=progress.iterations_done)
    if isinstance(exc, stopping.Interrupted):
        return Ending(schema.STATUS_INTERRUPTED, f"{exc} {progress.text(rounds, iterations)}",
                      dict(where, stop_signal=exc.signal_name), exc.exit_code)
    if isinstance(exc, SetupError):  # every rank stops together; the CLI prints the line and exits 2
        return Ending(schema.STATUS_FAILED, f"set-up: {exc}", where, EXIT_USAGE)
    if isinstance(exc, (stopping.PeerCrashed, ClientsLost)):
        return Ending(schema.STATUS_FAILED, str(exc), where, EXIT_FAILED)
    if isinstance(exc, DeadlineExceeded):  # a frozen or dead client: its message never came
        return Ending(schema.STATUS_FAILED, f"{exc} (training.client_timeout_s): a client froze or died",
                      where, EXIT_FAILED)
    return Ending(schema.STATUS_FAILED, f"rank 0: {exc!r}", where, EXIT_FAILED, traceback=True)


def _server_poll(comm):
    """Rank 0's check at every wait: a stop signal, then a client's crash report."""
    status = MPI.Status()
    crashed = []

    def poll():
        stopping.check()
        if not crashed and comm.Iprobe(source=MPI.ANY_SOURCE, tag=stopping.CRASH_TAG, status=status):
            source = status.Get_source()
            crashed.append(stopping.PeerCrashed(source, comm.recv(source=source, tag=stopping.CRASH_TAG)))
        if crashed:
            raise crashed[0]

    return poll


def _client_crashed(comm, rank: int, exc: BaseException) -> None:
    """Log a client's crash, tell rank 0 (which marks the file and ends the job), then wait for
    that; abort the job itself if rank 0 does not within ``CRASH_GRACE_S``."""
    log.error("rank %d crashed: %s\n%s", rank, exc, "".join(traceback.format_exception(exc)).rstrip())
    try:
        text = " | ".join(part.strip() for part in repr(exc).splitlines() if part.strip())  # one line, no h5py
        request = comm.isend(text[:2000], dest=0, tag=stopping.CRASH_TAG)
        t0 = time.monotonic()
        while time.monotonic() - t0 < CRASH_GRACE_S:
            request.Test()
            time.sleep(0.05)
    finally:
        _abort(comm, EXIT_FAILED)


@dataclass
class _State:
    writer: object = None
    set_up: bool = False  # past the collective set-up checks: a UsageError now is a crash
    iterations: int | None = None
    progress: stopping.Progress = field(default_factory=stopping.Progress)


def train(config: Config, data_root: str | None = None, overwrite: bool = False, poll_sleep_max: float = 1e-3,
          resume: checkpointing.Resume | None = None):
    """Run one training job of ``config.strategy`` on ``MPI.COMM_WORLD``; returns the result path on rank 0, else None.

    ``resume``: continue the stopped run whose checkpoint it names (``config`` must be that run's):
    every rank reloads its state and rank 0 appends to the same result file."""
    stopping.install()
    transport = MPITransport(MPI.COMM_WORLD, poll_sleep_max=poll_sleep_max)
    if transport.rank == 0:
        transport.on_poll = _server_poll(transport.comm)
    # Synchronous phases alternate, so the server may take every core while clients wait.
    torch.set_num_threads(server_threads(config.server.threads, available_cores()) if transport.rank == 0 else 1)
    state = _State()
    try:
        _train(config, transport, data_root, overwrite, state, resume)
    except SetupError as e:  # raised on every rank together (agreed); the CLI prints one line
        if transport.rank == 0 and state.writer is not None:  # e.g. the memory preflight, after the file was made
            end = ending(e, state.progress)
            state.writer.close(end.status, end.error, **end.stop)
        raise
    except UsageError as e:
        if not state.set_up:
            raise  # a set-up check of every rank; the CLI prints one line
        _crashed(config, transport, state, e)  # bad input found by one rank only, mid-run: a crash
    except BaseException as e:  # noqa: BLE001 - any crash must take the whole job down
        _crashed(config, transport, state, e)
    if transport.rank > 0:
        return None
    where = _finish(config, transport, state, None)
    checkpointing.remove(checkpointing.files.checkpoint_dir(config.output_path))  # complete: nothing to resume
    if state.progress.lost_clients:  # complete, but lost ranks never reach MPI_Finalize: end the job here
        _abort(transport.comm, 0)
    return where


def _crashed(config, transport, state, exc: BaseException) -> None:
    if transport.rank > 0:
        _client_crashed(transport.comm, transport.rank, exc)
    _finish(config, transport, state, exc)


def _finish(config, transport, state, exc: BaseException | None):
    """Rank 0: end the result file as :func:`ending` decides and log it; return its path if the
    run is complete, else end the job (``MPI_Abort`` with the ending's exit code)."""
    from ..results import schema
    from ..results.writer import ResultNotPlaced

    end = ending(exc, state.progress, config.training.rounds, state.iterations)
    where = None
    try:
        if end.traceback:
            log.error("rank 0 crashed: %s", "".join(traceback.format_exception(exc)).rstrip())
        if state.writer is not None:
            try:
                where = state.writer.close(end.status, end.error, **end.stop)
            except ResultNotPlaced as e:
                end, where = Ending(schema.STATUS_FAILED, str(e), exit_code=EXIT_FAILED), e.where
        if end.status == schema.STATUS_COMPLETE:
            log.info("wrote %s", where)
            return where
        left = f"result file left at {where} (status {end.status})" if where else "no result file written"
        left += _resume_hint(config, where)
        if isinstance(exc, stopping.Interrupted):
            log.warning("%s; %s", end.error, left)
        else:
            log.error("run failed: %s; %s", end.error, left)
    except BaseException as e:  # noqa: BLE001 - the file could not be marked; still end the job
        log.error("run ended (%s) but its result file could not be marked: %r", end.status, e)
        end.exit_code = end.exit_code or EXIT_FAILED
    _abort(transport.comm, end.exit_code)


def _abort(comm, code: int) -> None:
    """End the whole job with ``code``, after giving the launcher a moment to pass on our last lines
    (Hydra tears down its output forwarding as it kills the ranks)."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    time.sleep(ABORT_DELAY_S)
    comm.Abort(code)
    os._exit(code)  # MPICH's MPI_Abort can return before the launcher kills this process


def _resume_hint(config, where) -> str:
    """"; continue with ..." when the stopped run has a checkpoint to resume from, else ""."""
    try:
        root, manifest = checkpointing.files.find(checkpointing.files.checkpoint_dir(config.output_path))
    except ValueError:
        return ""
    return f"; continue it with `huscf-mpi train --resume {where}` (from round {manifest.round})"


def _saved_plan(transport, resume):
    """Rank 0's cut plan from the checkpoint (None elsewhere); every rank checks the rank count."""
    if transport.size != resume.manifest.ranks:
        raise SetupError(f"--resume: the checkpoint was written by {resume.manifest.ranks} MPI ranks, this run has "
                         f"{transport.size}; run `mpiexec -n {resume.manifest.ranks}`")
    error, plan = None, None
    if transport.rank == 0:
        try:
            plan = resume.load(0)["plan"]
        except (ValueError, KeyError) as e:
            error = f"--resume: {e}"
    agree(transport, error)
    return plan


def _train(config, transport, data_root, overwrite, state, resume=None) -> None:
    rank = transport.rank
    method = load_strategy(config.strategy)
    saved_plan = _saved_plan(transport, resume) if resume is not None else None
    info, assignment, summary, plan, hosts = build_run_info(
        config, transport, data_root, method.uses_cuts, method.devices_per_client(config), method.needs_profiles,
        overwrite=None if resume else overwrite, resumed=resume is not None, saved_plan=saved_plan)
    # The waiting ranks of a node wake at most ~1,000 times per second per core in all, however
    # many ranks share the node (100 ranks on 2 cores: a 50 ms cap, at most 1/32 of a wait late).
    transport.poll_sleep_max *= max(1.0, hosts.count(hosts[rank]) / available_cores())
    starts = transport.gather(process.started_at())  # for the time from launch to the first iteration
    error = None
    if rank == 0:
        from ..results.writer import ResultWriter

        try:
            state.writer = (ResultWriter.reopen(config.output_path, resume.round) if resume is not None
                            else ResultWriter(config.output_path, overwrite=overwrite))
        except (FileExistsError, OSError) as e:
            error = (f"--resume: {e}" if resume is not None
                     else f"output {config.output_path}: {e}; pass --overwrite or set --output")
        except ValueError as e:  # reopen: a complete file, or fewer rounds than the checkpoint
            error = f"--resume: {e}"
    agree(transport, error)
    state.set_up = True
    if resume is not None:
        state.progress.rounds_done = resume.round
    if rank > 0:
        run_client(info, assignment, transport, method, resume)
        return None
    from .server import run_server  # h5py, tqdm: rank 0 only (issue 7, lean clients)
    from ..results import schema
    from ..results.writer import utc_now

    writer, state.iterations = state.writer, info.iterations_per_round
    writer.declare(*method.records)  # what a strategy outside the package adds to the layout
    if resume is None:
        _write_setup(writer, info, summary, hosts, transport, plan.record)
    _record_start(writer, resume, transport.size, hosts)
    t0 = time.time()
    log.info("%s: %d clients, %d iterations per round, %d rounds; writing %s%s", TITLES.get(method.name, method.name),
             len(info.clients), info.iterations_per_round, config.training.rounds, writer.partial_path,
             f" (resumed after round {resume.round})" if resume else "")
    launched = min((t for t in starts if t is not None), default=None)
    every = config.training.checkpoint_every
    checkpoints = checkpointing.Checkpoints(
        root=checkpointing.files.checkpoint_dir(config.output_path) if every else None, plan=plan, resume=resume,
        poll=transport.on_poll, manifest=dict(result=str(writer.partial_path), config_yaml=config.to_yaml(),
                                              config_hash=checkpointing.files.config_hash(config.to_yaml()),
                                              schema_version=schema.SCHEMA_VERSION))
    final = run_server(info, transport, method, writer, launched=launched, progress=state.progress,
                       checkpoints=checkpoints)
    state.progress.phase = "finishing"
    writer.write_provenance(ended=utc_now(), wall_seconds=time.time() - t0)
    for d, m in final.items():
        log.info("final %s: %s", d, ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    return None


def _record_start(writer, resume, ranks: int, hosts: list[str]) -> None:
    """Add this part of the run to the ``resumes`` table (round 0 for the first start)."""
    from ..results.writer import utc_now

    row = {"round": resume.round if resume else 0, "started": utc_now(),
           "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
           "slurm_restart_count": int(os.environ.get("SLURM_RESTART_COUNT") or 0), "ranks": ranks,
           "hosts": ",".join(sorted(set(hosts)))}
    table = {k: [v.decode() if isinstance(v, bytes) else v for v in writer.read(f"resumes/{k}")]
             if writer.has(f"resumes/{k}") else [] for k in row}
    writer.write_table("resumes", {k: [*table[k], v] for k, v in row.items()})


def _write_setup(writer, info, summary: list[dict], hosts: list[str], transport, cut_record: dict) -> None:
    from .. import provenance
    from ..results.writer import utc_now

    cfg = info.config
    writer.write_provenance(
        **provenance.collect(MPI.Get_library_version().splitlines()[0].strip(), transport.size, hosts,
                             cfg.seed, cfg.to_yaml()),
        started=utc_now(), strategy=cfg.strategy, fake_labels=cfg.training.fake_labels)
    writer.write_array("domains", list(info.evaluators))
    writer.write_table("partition", {
        "client": [r["client"] for r in summary], "domain": [r["domain"] for r in summary],
        "size": [r["size"] for r in summary],
        "excluded_labels": [",".join(map(str, r["excluded_labels"])) for r in summary],
        "split": [r["split"] for r in summary]})
    if info.cuts:
        writer.write_array("cuts/cut_vectors", [info.cuts[c].as_tuple() for c in info.clients])
    if info.cuts or cut_record:
        writer.set_attrs("cuts", mode=("none" if not info.cuts else cfg.cuts if isinstance(cfg.cuts, str) else "fixed"))
    if cut_record:  # cuts: ga — costs, profiles, GA history, predicted latency (SPEC §5)
        writer.set_attrs("cuts", **cut_record["attrs"])
        for name, value in cut_record["arrays"].items():
            writer.write_array(f"cuts/{name}", value)
        writer.write_table("cuts/profiles", cut_record["profiles"])
    writer.set_attrs("run", iterations_per_round=info.iterations_per_round, server_threads=torch.get_num_threads(),
                     evaluators=[info.evaluators[d] for d in info.evaluators])
