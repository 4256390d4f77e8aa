"""How a training run is stopped from outside: signals, a crashed peer, and how far it got.

MPICH's ``mpiexec`` (Hydra) forwards SIGINT, SIGTERM and SIGUSR1 to every rank (each rank runs
in its own process group, so a terminal's Ctrl-C reaches the ranks only through it; on SIGINT
Hydra also prints "Sending Ctrl-C to processes as requested"; a second Ctrl-C makes it kill
the job). SLURM's ``srun`` and ``scancel`` also signal every task. So every rank gets the
signal, and rank 0 alone acts on it:

- :func:`install` replaces the default handlers on every rank, first thing in ``train`` (no
  ``KeyboardInterrupt`` traceback from any rank, even during imports). The handler only
  records the signal: no MPI call, no I/O, nothing that could run in the middle of an h5py
  write or an MPI request's bookkeeping.
- Rank 0's transport calls :func:`check` (through ``MPITransport.on_poll``) every time it
  waits for a message, which is at least once per iteration, so a recorded signal becomes an
  :class:`Interrupted` raised at a wait. ``roles/run.py`` then marks the result file
  "interrupted", logs one line and ends the job with ``MPI_Abort``.
- SIGUSR1 while training with checkpoints (SLURM's warning that the wall time is running out)
  is held instead (:func:`defer`): rank 0 finishes the round, writes its checkpoint and only
  then stops, so a resume loses nothing. SIGINT and SIGTERM (Ctrl-C, ``scancel``, the time
  limit itself, after which SLURM kills within ``KillWait`` seconds) stop at once; the resume
  then repeats the rounds after the last checkpoint. A second signal of any kind stops at once.
- Client ranks ignore the signal: rank 0's abort ends them. A client that crashes reports
  its error to rank 0 (:data:`CRASH_TAG`), which raises :class:`PeerCrashed` at its next wait,
  so the file says which rank failed.

A stopped run is continued from its last checkpoint, written at the end of a round
(``huscf-mpi train --resume``, :mod:`huscf_mpi.roles.checkpointing`). Deviation from issue 11's
"finish the current iteration": the unit is the round, the only point where every rank is at
the same place without a control message per iteration.
"""
from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field

# Signals that stop a run: Ctrl-C, scancel / a wall-time limit, SLURM's --signal=B:USR1@...
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)

# MPI tag of a client's crash report to rank 0 (pickled text; outside the kinds' ranges, see comm/kinds.py).
CRASH_TAG = 32000

# SLURM's wall-time warning (--signal=B:USR1@<seconds>): time to finish the round, not to drop it.
GRACEFUL = signal.SIGUSR1

_received: list[int] = []
_state = {"defer": False, "announced": False}
log = logging.getLogger("huscf_mpi")


class Stopped(BaseException):
    """A run ended from outside its own code path on rank 0. A BaseException, so the
    ``except Exception`` blocks that collect set-up errors do not swallow it."""


class Interrupted(Stopped):
    """A stop signal reached rank 0 (raised at its next wait for a message)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number (SIGINT 130,
        SIGTERM 143, SIGUSR1 138); ``mpiexec`` exits with it (it returns the abort code)."""
        return 128 + self.signum


class PeerCrashed(Stopped):
    """Another rank crashed after set-up and said so to rank 0 before ending the job."""

    def __init__(self, rank: int, error: str):
        self.rank, self.error = int(rank), str(error)
        super().__init__(f"rank {self.rank}: {self.error}")


@dataclass
class Progress:
    """How far rank 0 got: ``phase`` ("set-up", "training", "final evaluation", "finishing"),
    ``rounds_done`` (rounds written to the file), ``iterations_done`` (of the round after them)
    and ``lost_clients`` (given up on by an asynchronous server: the job must end without them)."""

    phase: str = "set-up"
    rounds_done: int = 0
    iterations_done: int = 0
    lost_clients: list = field(default_factory=list)

    def text(self, rounds: int | None = None, iterations: int | None = None) -> str:
        if self.phase != "training":
            return f"during {self.phase} after {self.rounds_done} round(s)"
        return (f"in round {self.rounds_done + 1}{f' of {rounds}' if rounds else ''}, after "
                f"{self.iterations_done}{f' of {iterations}' if iterations else ''} iteration(s)")


def _record(signum, frame) -> None:
    _received.append(signum)


def install() -> None:
    """Record SIGINT, SIGTERM and SIGUSR1 instead of acting on them (idempotent; main thread only)."""
    for s in SIGNALS:
        if signal.getsignal(s) is not _record:
            signal.signal(s, _record)


def received() -> int | None:
    """The first stop signal received, or None."""
    return _received[0] if _received else None


def defer(on: bool) -> None:
    """While on (training with checkpoints), a first SIGUSR1 is held, not raised: rank 0
    finishes the round, checkpoints and then stops (:func:`held`). Any other signal, or a second
    one, still stops the run at once."""
    _state["defer"] = bool(on)


def held() -> int | None:
    """The SIGUSR1 being held until the round's checkpoint, or None."""
    return _received[0] if _received == [GRACEFUL] and _state["defer"] else None


def check() -> None:
    """Raise :class:`Interrupted` if a stop signal has been received (unless it is held: :func:`defer`)."""
    if not _received:
        return
    if held() is None:
        raise Interrupted(_received[-1])  # the one that stops the run now
    if not _state["announced"]:
        _state["announced"] = True
        log.warning("%s: finishing this round and its checkpoint, then stopping (send it again, or SIGTERM, to "
                    "stop at once)", signal.Signals(GRACEFUL).name)


def reset() -> None:
    """Forget received signals (tests)."""
    _received.clear()
    _state.update(defer=False, announced=False)
