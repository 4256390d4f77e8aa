"""Start-up shared by all ranks: checks, partition, cut vectors, and agreement on errors.

Set-up errors (wrong rank count, a missing dataset file, an invalid cut) must stop *every*
rank with one clear line, never leave some ranks waiting. Each phase therefore ends with an
``allgather`` of the local error (or ``None``) and every rank raises the first one found.

Partitioning is the experiment harness, not the protocol: rank 0 reads the label files once
to draw the SPEC §4 partition and sends each client its shard indices at set-up (pickled,
once). From then on rank 0 acts only as the server and holds no images or labels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import seeding
from ..comm import MPITransport
from ..config import Config
from ..errors import SetupError
from ..data import DataError, load_domain, partition, partition_summary, resolve_data_root
from ..data.datasets import epoch_iterations
from ..cuts.devices import load_devices
from ..models import get_architecture
from ..strategies import RunInfo
from .cut_setup import CutPlan, fixed_cuts, plan_cuts

log = logging.getLogger("huscf_mpi")


@dataclass
class ClientAssignment:
    """What rank 0 sends a client at set-up: its domain and shard indices."""

    domain: str
    indices: np.ndarray
    excluded_labels: tuple[int, ...]


def agree(transport: MPITransport, error: str | None) -> None:
    """Collective: raise :class:`SetupError` on every rank if any rank reports an error."""
    errors = transport.allgather(error)
    first = next((e for e in errors if e), None)
    if first:
        raise SetupError(first)


def build_run_info(config: Config, transport: MPITransport, data_root: str | None
                   ) -> tuple[RunInfo, ClientAssignment | None, Path, list[dict], CutPlan]:
    """Collective set-up. Returns the shared :class:`RunInfo`, this client's assignment
    (``None`` on rank 0), the data root, (rank 0 only) the partition summary rows, and the
    cut plan (cuts, emulated profiles; on rank 0 also what to record)."""
    rank, size = transport.rank, transport.size
    n = config.data.n_clients
    if size != n + 1:
        # Every rank sees the same numbers, so all raise together without communicating.
        raise SetupError(f"{size} MPI ranks for {n} clients: run `mpiexec -n {n + 1}` "
                         f"(1 server + {n} clients) or change data.domains in the config")
    error, payload, root, fixed = None, None, None, None
    try:
        arch = get_architecture(config.model.architecture)
        if config.cuts != "ga":
            fixed = fixed_cuts(config, arch)
        elif config.cut_selection.devices:
            try:
                load_devices(Path(config.cut_selection.devices))
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise SetupError(f"cut_selection.devices: {e}; give a YAML like jobs/devices/paper.yaml") from None
        root = resolve_data_root(data_root if data_root is not None else config.data.root)
        if rank == 0:
            labels, splits = {}, {}
            for domain in config.data.domains:
                d = load_domain(domain, root, config.seed)
                labels[domain], splits[domain] = d.train_labels, d.split
            shards = partition(config.data.scenario, config.data.domains, labels, config.seed,
                               config.data.max_samples_per_client)
            summary = partition_summary(shards)
            for row in summary:
                row["split"] = splits[row["domain"]]
            payload = (shards, summary)
    except (SetupError, DataError, KeyError, ValueError) as e:
        error = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
    agree(transport, error)

    plan = CutPlan(fixed) if fixed is not None else plan_cuts(config, arch, transport)
    cuts = plan.cuts
    shards, summary = transport.bcast(payload if rank == 0 else None)
    B = config.training.batch_size
    sizes = {s.client: s.size for s in shards}
    iters = config.training.iterations_per_epoch or epoch_iterations(list(sizes.values()), B)
    evaluators: dict[str, int] = {}
    for s in shards:
        evaluators.setdefault(s.domain, s.client)
    info = RunInfo(
        config=config, arch=arch, cuts=cuts, clients=[s.client for s in shards],
        domains={s.client: s.domain for s in shards}, sizes=sizes, evaluators=evaluators,
        iterations_per_round=iters * config.training.local_epochs,
        init_seed=seeding.int_seed(config.seed, seeding.INIT), emulated=plan.emulated, block_flops=plan.flops)
    mine = None
    if rank > 0:
        s = shards[rank - 1]
        mine = ClientAssignment(s.domain, s.indices, s.excluded_labels)
    return info, mine, root, summary if rank == 0 else [], plan
