"""Start-up shared by all ranks: checks, partition, cut vectors, and agreement on errors.

Set-up errors (wrong rank count, a missing dataset file, an invalid cut) must stop *every*
rank with one clear line, never leave some ranks waiting. Each phase therefore ends with an
``allgather`` of the local error (or ``None``) and every rank raises the first one found.

Partitioning is the experiment harness, not the protocol: rank 0 reads the labels once to
draw the SPEC §4 partition and sends each client its shard indices at set-up. From then on
rank 0 acts only as the server and holds no images or labels.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import process, seeding
from ..comm import MPITransport
from ..errors import SetupError
from ..data import DataError, ensure_decoded, open_domain, partition, partition_summary, resolve_data_root, unheld_labels
from ..data.datasets import epoch_iterations
from ..models import domain_architecture
from ..strategies import RunInfo
from .cut_setup import CutPlan, fixed_cuts, plan_cuts, plan_profiles

if TYPE_CHECKING:  # client ranks get a ConfigView instead, without pydantic (launch.py)
    from ..config import Config

log = logging.getLogger("huscf_mpi")


@dataclass
class ClientAssignment:
    """What a client gets at set-up: its domain, shard indices and where the decoded data is."""

    domain: str
    indices: np.ndarray
    excluded_labels: tuple[int, ...]
    cache: Path


def agree(transport: MPITransport, error: str | None) -> None:
    """Collective: raise :class:`SetupError` on every rank if any rank reports an error."""
    errors = transport.allgather(error)
    first = next((e for e in errors if e), None)
    if first:
        raise SetupError(first)


def device_groups(n_clients: int, devices_per_client: int) -> dict[int, tuple[int, ...]]:
    """Client id -> its ranks: its own rank first, then its ``k - 1`` helpers after all N clients.

    Client c of N with k devices: ``(c, N + (c-1)(k-1) + 1, ..., N + c(k-1))``; so clients keep
    ranks 1..N (the partition, evaluators and per-client results read as for one rank each).
    """
    k = devices_per_client
    return {c: (c, *range(n_clients + (c - 1) * (k - 1) + 1, n_clients + c * (k - 1) + 1))
            for c in range(1, n_clients + 1)}


def output_problem(path: Path, overwrite: bool) -> str | None:
    """Why the result file cannot be written at ``path`` (one line), or None. Checked on rank 0
    (the only writer) in set-up's first phase, so a bad path stops the run before the data
    cache, profiling, the GA or any training."""
    path = Path(path)
    if path.is_dir():
        return (f"output {path} is a directory; give a file path such as {path / 'run.h5'} (--output, or output: "
                "in the config)")
    if path.exists() and not overwrite:
        return f"output {path} already exists; pass --overwrite to replace it or set --output"
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"output {path}: {folder} is a file, not a folder; choose another --output"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"output {path}: cannot create files in {folder} (permission denied); choose another --output"
    return None


def build_run_info(config: Config, transport: MPITransport, data_root: str | None, uses_cuts: bool = True,
                   devices_per_client: int = 1, needs_profiles: bool = False, overwrite: bool | None = None,
                   resumed: bool = False, saved_plan: CutPlan | None = None
                   ) -> tuple[RunInfo, ClientAssignment | None, list[dict], CutPlan, list[str]]:
    """Collective set-up. Returns the shared :class:`RunInfo`, this client's assignment
    (``None`` on rank 0), (rank 0 only) the partition summary rows, the cut
    plan (cuts, emulated profiles; on rank 0 also what to record) and every rank's host name.

    Data flow: the first rank on each host (the node leader) makes sure the decoded-data
    cache holds every domain of the run (``data/cache.py``); rank 0 draws the partition from
    the cached labels, broadcasts the small per-client table (domain, size, excluded labels)
    and scatters each client only its own shard indices, as one ``Scatterv`` of int64.
    With ``overwrite`` given (True or False), rank 0 also checks the output path first
    (:func:`output_problem`). A ``resumed`` run takes rank 0's ``saved_plan`` (from its
    checkpoint) instead of profiling and choosing cuts again.
    """
    rank, size = transport.rank, transport.size
    n, k = config.data.n_clients, devices_per_client
    if size != n * k + 1:
        # Every rank sees the same numbers, so all raise together without communicating.
        if k == 1:
            raise SetupError(f"{size} MPI ranks for {n} clients: run `mpiexec -n {n + 1}` "
                             f"(1 server + {n} clients) or change data.domains in the config")
        raise SetupError(f"{size} MPI ranks for {n} clients of {k} devices each ({config.strategy}): run "
                         f"`mpiexec -n {n * k + 1}` (1 server + {n} x {k}) or change data.domains in the config")
    hosts = transport.allgather(socket.gethostname())
    process.unlink_shared_memory_names()  # every rank has passed MPI_Init: an aborted job leaves no tmpfs behind
    cache = Path(config.data.cache).expanduser()
    error, payload, root, fixed, replay = None, None, None, None, {}
    try:
        if rank == 0 and overwrite is not None:
            problem = output_problem(config.output_path, overwrite)
            if problem:
                raise SetupError(problem)
        arch = domain_architecture(config.model.architecture, config.data.domains, config.model.body_norm)
        if uses_cuts and config.cuts != "ga":
            fixed = fixed_cuts(config, arch)
        root = (resolve_data_root(data_root) if data_root is not None
                else resolve_data_root(config.data.root, source="data.root in the config"))
        if hosts.index(hosts[rank]) == rank:  # node leader
            for domain in config.data.domains:
                ensure_decoded(domain, root, cache)
        if rank == 0 and config.training.replay is not None:  # h5py on rank 0 only
            from ..results.replay import load_replay

            replay = load_replay(config.training.replay, config)
    except (SetupError, DataError, KeyError, ValueError) as e:
        error = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
    agree(transport, error)

    try:
        if rank == 0:
            labels, splits = {}, {}
            for domain in config.data.domains:
                d = open_domain(domain, cache, config.seed)
                labels[domain], splits[domain] = d.train_labels, d.split
            shards = partition(config.data.scenario, config.data.domains, labels, config.seed,
                               config.data.max_samples_per_client)
            summary = partition_summary(shards)
            for domain, missing in unheld_labels(shards, labels).items():
                log.warning("%s: every client excludes label(s) %s (scenario %d rules, seed %d), so the federation "
                            "never trains on them; another seed or more clients would", domain, missing,
                            config.data.scenario, config.seed)
            for row in summary:
                row["split"] = splits[row["domain"]]
            payload = summary
    except (DataError, ValueError) as e:
        error = str(e)
    agree(transport, error)

    # Fixed cuts or none: emulated profiles only (if any); `cuts: ga`: profiling and the GA.
    if resumed:
        plan = transport.bcast(saved_plan if rank == 0 else None)
    elif not uses_cuts or fixed is not None:
        plan = plan_profiles(config, transport, fixed, measure=needs_profiles)
    else:
        plan = plan_cuts(config, arch, transport)
    cuts = plan.cuts
    summary = transport.bcast(payload if rank == 0 else None)
    sizes = {row["client"]: row["size"] for row in summary}
    mine = transport.scatter_rows(np.concatenate([s.indices for s in sorted(shards, key=lambda s: s.client)])
                                  if rank == 0 else None,
                                  [0] + [sizes[c] for c in range(1, n + 1)] + [0] * (size - 1 - n))
    B = config.training.batch_size
    iters = config.training.iterations_per_epoch or epoch_iterations(list(sizes.values()), B)
    evaluators: dict[str, int] = {}
    for row in summary:
        evaluators.setdefault(row["domain"], row["client"])
    info = RunInfo(
        config=config, arch=arch, cuts=cuts, clients=[row["client"] for row in summary],
        domains={row["client"]: row["domain"] for row in summary}, sizes=sizes, evaluators=evaluators,
        iterations_per_round=iters * config.training.local_epochs,
        init_seed=seeding.int_seed(config.seed, seeding.INIT), emulated=plan.emulated, block_flops=plan.flops,
        groups=device_groups(n, k), profiles=plan.profiles, replay=replay)  # replay: rank 0's only
    assignment = None
    if 0 < rank <= n:  # helper ranks (n < rank) hold no data
        row = next(r for r in summary if r["client"] == rank)
        assignment = ClientAssignment(row["domain"], mine, tuple(row["excluded_labels"]), cache)
    return info, assignment, summary if rank == 0 else [], plan, hosts
