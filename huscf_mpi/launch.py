"""How a ``huscf-mpi`` process starts: client ranks of ``train`` skip the command line (issue 7).

``mpiexec -n N+1 huscf-mpi train ...`` starts N+1 identical processes. Rank 0 parses the
options and validates the config (click, PyYAML, pydantic); every other rank waits in
:func:`client_main` for what rank 0 decided, handed over once (:func:`hand_over`): the run
(the config as a :class:`~huscf_mpi.config_view.ConfigView`, the data root, the resume point,
...) or the exit status to end with (a bad option or config, ``--help``, a crash before
training). A client rank so never imports click, PyYAML or pydantic: 7-9 MiB less private
memory each, 0.7 GiB less at the peak of 101 ranks on one node (benchmarks/README.md, issue 7).
Bad input is still reported once, by rank 0.

Which rank a process is comes from the launcher's environment (``PMI_RANK``, ``SLURM_PROCID``,
...: :mod:`huscf_mpi.process`), read before MPI starts, so every rank takes the same decision.
Where the launcher does not say (or under ``python -m huscf_mpi.cli``), every rank parses the
command line itself, as a single process does.
"""
from __future__ import annotations

import sys
import time

from . import process, stopping

# How long the ranks wait for each other at the hand-over [s]: start-up of 101 ranks on 2 cores
# takes ~100 s; past this a rank ends the job instead of waiting forever.
HANDOVER_TIMEOUT_S = 1800.0
EXIT_TIMEOUT = 1

_state = {"active": False, "sent": False}


def _train_launch(argv: list[str]) -> int | None:
    """This process's rank in a multi-rank ``train`` launch, else None."""
    rank, size = process.launcher_rank(), process.launcher_size()
    if len(argv) > 1 and argv[1] == "train" and rank is not None and size is not None and size > 1:
        return rank
    return None


def prepare_rank() -> None:
    """What a ``train`` rank sets first, before MPI or torch load: stop signals are recorded
    (:mod:`huscf_mpi.stopping`), one OpenMP thread, UCX off shared memory on one node, and
    glibc's trim threshold on an oversubscribed client rank (:mod:`huscf_mpi.process`)."""
    stopping.install()  # Ctrl-C / SIGTERM during the imports: recorded, no traceback (see roles/run.py)
    process.openmp_env()
    process.single_node_ucx()
    if process.oversubscribed_client():
        process.compact_heap()  # first thing: the import-time garbage is returned too


def _meet(comm, waiting_for: str) -> None:
    """The hand-over's ``Ibarrier``, polled with sleeps of up to 10 ms (the other ranks may still
    be importing torch on the same cores); past :data:`HANDOVER_TIMEOUT_S` this rank says so in
    one line and aborts the job (exit 1) instead of waiting forever."""
    request, t0 = comm.Ibarrier(), time.monotonic()
    while not request.Test():
        waited = time.monotonic() - t0
        if waited > HANDOVER_TIMEOUT_S:
            print(f"huscf-mpi: error: rank {comm.Get_rank()}: {waiting_for} did not arrive within "
                  f"{HANDOVER_TIMEOUT_S:.0f} s; ending the job", file=sys.stderr, flush=True)
            comm.Abort(EXIT_TIMEOUT)
        time.sleep(min(0.01, max(1e-4, waited / 32)))


def hand_over(message: dict) -> None:
    """Rank 0: send the client ranks ``message`` (``{"run": {...}}`` or ``{"exit": status}``).

    Does nothing unless this is rank 0 of a multi-rank ``train`` launch started by :func:`main`,
    and nothing after the first call, so the CLI may call it where it decides and :func:`main`
    again on the way out. Collective with :func:`client_main`'s receive (an ``Ibarrier``, then
    a pickled ``bcast`` of a few KiB, once per job).
    """
    if not _state["active"] or _state["sent"]:
        return
    _state["sent"] = True
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    _meet(comm, "the client ranks")
    comm.bcast(message, root=0)


def _exit_status(code) -> int:
    return 0 if code is None else code if isinstance(code, int) else 1


def client_main() -> None:
    """A client rank of ``train``: wait for rank 0's hand-over, then train or exit with its status.

    Aborts the job (exit 1, one line) if rank 0 hands nothing over within :data:`HANDOVER_TIMEOUT_S`.
    """
    prepare_rank()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    _meet(comm, "rank 0's hand-over of the run")
    message = comm.bcast(None, root=0)
    if "exit" in message:
        sys.exit(message["exit"])
    run = message["run"]
    from .errors import UsageError
    from .logs import setup_logging

    setup_logging(comm.Get_rank(), run.pop("verbose"))
    try:
        train(run.pop("config"), run.pop("resume"), **run)
    except UsageError:
        sys.exit(2)  # rank 0 says why (cli.EXIT_USAGE)


def train(config, found: tuple | None, **run) -> None:
    """This rank's part of the run (``roles.train``), from where a ``--resume`` found its
    checkpoint (``checkpoint.files.find``'s ``(root, manifest)``) if given; the same on rank 0
    (``cli.train``) and on the client ranks."""
    from .roles import train as run_train  # torch loads only for a valid config
    from .roles.checkpointing import Resume

    run_train(config, resume=Resume(*found) if found else None, **run)


def main() -> None:
    """The ``huscf-mpi`` command."""
    rank = _train_launch(sys.argv)
    if rank is not None and rank > 0:
        client_main()
        return
    _state["active"] = rank == 0
    if rank == 0:
        prepare_rank()  # before hand_over may start MPI, even if the command line is refused
    from .cli import main as cli

    try:
        cli()
    except SystemExit as e:
        hand_over({"exit": _exit_status(e.code)})
        raise
    except BaseException:
        hand_over({"exit": 1})
        raise
