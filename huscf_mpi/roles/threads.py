"""How many cores rank 0's body computations use (issue 7, ``server.threads``).

In the synchronous protocol (SPEC §1) the phases mostly alternate: the server computes the
bodies while every client waits for its reply, and the clients compute heads and tails while
the server waits for their smashed data (they overlap a little: the clients' D tail on fakes
runs beside the server's body pass on reals, and each side's Adam step beside the other's next
phase). Waiting ranks do not hold a core: the transport polls with short sleeps, and rank 0's
OpenMP workers go to sleep shortly after a parallel region ends (libgomp's default wait policy,
see ``huscf_mpi/process.py``). So ``auto`` gives the server all the cores it may run on: its
CPU affinity mask. Under ``mpiexec`` on a laptop or one node that is the whole node; under
SLURM it is the task's ``--cpus-per-task`` (so a job that puts rank 0 on its own node gives it
that node, see ``jobs/README.md``, "Rank 0 on its own node").

Client ranks always run one thread: with 100 clients per node, more would only oversubscribe.
"""
from __future__ import annotations

from ..process import available_cores

__all__ = ["available_cores", "server_threads"]


def server_threads(setting: int | str, cores: int, busy_clients_on_node: int = 0) -> int:
    """Torch threads for rank 0.

    Parameters
    ----------
    setting : ``"auto"`` or an int >= 1 (``server.threads``); an int is used as given.
    cores : CPUs rank 0 may run on (:func:`available_cores`).
    busy_clients_on_node : client ranks on rank 0's node that compute *while* the server
        computes. 0 in the synchronous protocol (clients wait for the body's output).

    Returns
    -------
    int >= 1: ``setting`` if an int, else ``max(1, cores - busy_clients_on_node)``.
    """
    if setting != "auto":
        return int(setting)
    return max(1, int(cores) - int(busy_clients_on_node))
