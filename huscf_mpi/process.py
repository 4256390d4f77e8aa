"""Per-process settings made before MPI and torch load, and the process's launch time (issue 7).

OpenMP threads, UCX transports and glibc's trim threshold are read by the runtimes they
configure when those start (OpenMP when torch initialises it, UCX at ``MPI_Init``, malloc as
the heap grows), so ``huscf-mpi train`` applies them first thing, before importing mpi4py or
torch. Everything here reads only the launcher's environment: no MPI call is needed yet.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
TRIM_THRESHOLD_BYTES = 512 * 1024

# What the launcher (MPICH's Hydra, Open MPI, SLURM's srun) tells a rank before MPI starts.
_LOCAL_SIZE = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_STEP_NUM_TASKS_ON_NODE")
_RANK = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID")
_SIZE = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_NTASKS")


def openmp_env() -> None:
    """One OpenMP thread per rank; a user's own setting wins.

    Rank 0 raises its thread count later (``roles/threads.py``); it is the only rank with
    OpenMP workers, so the wait policy only matters there. libgomp's default (spin a short
    while after a parallel region, then sleep) is kept: ``OMP_WAIT_POLICY=PASSIVE`` (sleep at
    once) made the server's body pass slower, since every one of its many short parallel
    regions then wakes a sleeping worker (N=4, width 1.0: 2.31 vs 1.89-1.92 s per iteration
    with ACTIVE, same machine, same hour), and ACTIVE (spin forever) would burn a core the
    clients need while the server waits for them.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where unsupported)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _launcher_int(names: tuple[str, ...]) -> int | None:
    for name in names:
        try:
            return int(os.environ[name])
        except (KeyError, ValueError):
            continue
    return None


def launcher_rank() -> int | None:
    """This process's rank as the launcher's environment says (before ``MPI_Init``), else None."""
    return _launcher_int(_RANK)


def launcher_size() -> int | None:
    """The job's rank count as the launcher's environment says, else None."""
    return _launcher_int(_SIZE)


def oversubscribed_client() -> bool:
    """True on a client rank (rank > 0) of a node with more ranks than this rank's cores,
    as far as the launcher's environment says; False when it does not say."""
    rank, local = launcher_rank(), _launcher_int(_LOCAL_SIZE)
    return bool(rank and local and local > available_cores())


def single_node_ucx() -> bool:
    """Keep UCX off shared memory when every rank of the job is on this node; True if set.

    The pip MPICH (ch4 with the UCX netmod) moves intra-node messages through its own POSIX
    shared memory; UCX is only the inter-node path, yet by default it also maps its own
    shared-memory pools, about 6 MiB per rank (203 MiB of ``Shmem`` at 33 ranks here, 52 MiB
    with this setting). In a single-node job (the launcher's local rank count equals its world
    size) ``UCX_TLS=self,tcp`` drops them. A user's own ``UCX_TLS`` wins; multi-node jobs are
    left alone.
    """
    local, size = _launcher_int(_LOCAL_SIZE), launcher_size()
    if "UCX_TLS" in os.environ or not local or local != size:
        return False
    os.environ["UCX_TLS"] = "self,tcp"
    return True


_trimming_libc: list = []  # the C library, once compact_heap() has set its threshold: release_free_heap() reuses it


def compact_heap(trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Fix glibc's malloc trim threshold at ``trim_threshold`` bytes; False without glibc.

    glibc keeps freed memory for reuse and, each time a large block is freed, raises its
    mmap and trim thresholds (up to 32 MiB), so the import-time and per-iteration garbage of
    a rank stays in a heap that is never given back. A fixed trim threshold (which also stops
    the thresholds moving) returns it instead: a client at width 0.25 holds 178 instead of
    191 MiB of private memory (``/proc/self/smaps_rollup``), 1.3 GiB less at 100 clients a
    node. The price is page faults when memory is allocated again, so the CLI applies it to
    client ranks only where the node has more ranks than cores, where memory binds first.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc and libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1:
            _trimming_libc[:] = [libc]
            return True
    except (OSError, AttributeError):
        pass
    return False


def release_free_heap() -> bool:
    """Return the free pages inside glibc's heap to the kernel (``malloc_trim(0)``); True if any were.

    Only where :func:`compact_heap` took effect (an oversubscribed client rank): the trim
    threshold gives back the top of the heap only, while one training iteration leaves
    page-sized holes below it (autograd's and the kernels' transient buffers). Called once per
    round, after the round's iterations, it brings a plain client at width 0.25 from 171-174 to
    167-169 MiB of private memory between rounds (benchmarks/README.md, 16 and 100 clients); the
    next iteration takes the pages again, so its peak is unchanged. It walks the heap once
    (~5 ms in a client-like process here).
    """
    return bool(_trimming_libc and _trimming_libc[0].malloc_trim(0))


def started_at() -> float | None:
    """When this process was created, in seconds since the epoch (Linux ``/proc``); else None.

    From ``/proc/self/stat`` (field 22, start time in clock ticks after boot) and the boot
    time ``btime`` of ``/proc/stat``: the launch of a rank, before Python or any import runs.
    """
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def unlink_shared_memory_names() -> list[str]:
    """Remove the names of the MPI library's node-shared memory files (``/dev/shm/mpich_shm_*``)
    that this process has mapped; returns the names it removed.

    MPICH unlinks its node's segment only in ``MPI_Finalize``, so every job that ends by
    ``MPI_Abort`` (a failed, interrupted or client-losing run: ``roles/run.py``) left ~3 MiB of
    tmpfs, i.e. memory, per node behind, and a requeued SLURM job reusing the same job and
    step ids could hang in ``MPI_Init`` on a stale file. Called once every rank has passed
    ``MPI_Init`` (after set-up's first collective), when every rank of the node has mapped the
    segment: the mappings stay valid, only the name goes. Ranks of a node race to remove the
    same name; all but one find it gone, which is fine.
    """
    removed = []
    try:
        with open("/proc/self/maps") as f:
            names = {line.split(maxsplit=5)[5].strip() for line in f if "/dev/shm/mpich_shm_" in line}
    except OSError:
        return removed
    for name in sorted(names):
        try:
            os.unlink(name.removesuffix(" (deleted)"))
            removed.append(name)
        except OSError:
            pass
    return removed
