"""Run one iteration, one round end and one evaluation hand-off of a strategy over MPI.

Usage: mpiexec -n 4 python tests/mpi/strategy_iteration.py STRATEGY FAKE_LABELS OUT.npz OUT.json
(rank 0 server, 3 clients; fslgan: ``-n 7``, 2 clients of 3 devices, see :func:`fslgan_case`).
STRATEGY ``centralized:domain`` is centralized with ``centralized.pool: domain`` and client 2 in
another domain (:data:`POOL_DOMAINS`); every centralized run also saves the generator that
client 1 received for evaluation (``1/eval/g/...``).
Batches are random tensors from a fixed seed (no dataset needed).
OUT.npz holds every party's parameters and buffers after the round end, keyed
``<rank>/<module>/<state key>``; OUT.json the who-saw-what set from all ranks' ledgers, and
OUT.json.rows every rank's ledger rows (``Ledger.received_rows``).
tests/test_strategies.py recomputes the same steps in one process and compares.
"""
import json
import sys

import numpy as np
import torch
from mpi4py import MPI

from huscf_mpi.comm import MPITransport, exposure_set, exposure_table
from huscf_mpi.config import Config
from huscf_mpi.data import ClientBatches
from huscf_mpi.models import CutVector, get_architecture
from huscf_mpi.registry import load_strategy
from huscf_mpi.strategies import RunInfo

CLIENTS, BATCH, WIDTH, SEED, INIT_SEED = (1, 2, 3), 8, 0.25, 3, 11
SIZES = {1: 20, 2: 30, 3: 40}
CUTS = {1: (1, 5, 2, 4), 2: (2, 4, 1, 5), 3: (1, 4, 2, 5)}
POOL_DOMAINS = {1: "mnist", 2: "fashion_mnist", 3: "mnist"}


def case(strategy: str, fake_labels: str) -> RunInfo:
    strategy, _, pool = strategy.partition(":")
    cfg = Config.model_validate({"seed": SEED, "strategy": strategy, "data": {"domains": {"mnist": 3}},
                                 "model": {"width": WIDTH},
                                 "training": {"batch_size": BATCH, "fake_labels": fake_labels},
                                 "evaluation": {"batch_size": 4}, "cuts": {c: list(v) for c, v in CUTS.items()},
                                 "centralized": {"pool": pool or "all"}})
    return RunInfo(config=cfg, arch=get_architecture("cgan28"),
                   cuts={c: CutVector.from_tuple(v) for c, v in CUTS.items()} if strategy == "huscf" else {},
                   clients=list(CLIENTS), domains=dict(POOL_DOMAINS) if pool else {c: "mnist" for c in CLIENTS},
                   sizes=dict(SIZES), evaluators={"mnist": 1}, iterations_per_round=1, init_seed=INIT_SEED)


# FSL-GAN (issue 9): 2 clients x 3 devices; groups {1: (1, 3, 4), 2: (2, 5, 6)}. Per-block D
# FLOPs and device speeds are chosen so that, at budget 0.5 s, part costs (2f + 3b = 8f) are
# A 8e6, B 160e6, C 24.08e6 and capacities (0.5 x FLOP/s) give: client 1: owner 1 hosts A
# (10e6), rank 3 (170e6) B but not C too, rank 4 (50e6) C; chain 1 -> 3 -> 4. Client 2:
# owner 2 hosts A, rank 5 (100e6) is too weak for B and is skipped, rank 6 (250e6) hosts B and
# C; chain 2 -> 6.
FSL_SIZES = {1: 20, 2: 30}
FSL_FORWARD = np.array([1e6, 10e6, 10e6, 3e6, 0.01e6])
FSL_SPEEDS = {1: 20e6, 2: 20e6, 3: 340e6, 4: 100e6, 5: 200e6, 6: 500e6}
FSL_CHAINS = {1: [(1, (0,)), (3, (1,)), (4, (2,))], 2: [(2, (0,)), (6, (1, 2))]}


def fslgan_case() -> RunInfo:
    from huscf_mpi.cuts.devices import DeviceProfile
    from huscf_mpi.roles.setup import device_groups

    cfg = Config.model_validate({"seed": SEED, "strategy": "fslgan", "data": {"domains": {"mnist": 2}},
                                 "model": {"width": WIDTH}, "training": {"batch_size": BATCH, "fake_labels": "uniform"},
                                 "evaluation": {"batch_size": 4},
                                 "fslgan": {"devices_per_client": 3, "budget_seconds": 0.5}})
    return RunInfo(config=cfg, arch=get_architecture("cgan28"), cuts={}, clients=[1, 2],
                   domains={1: "mnist", 2: "mnist"}, sizes=dict(FSL_SIZES), evaluators={"mnist": 1},
                   iterations_per_round=1, init_seed=INIT_SEED,
                   block_flops={"d": {"forward": FSL_FORWARD, "backward": 2 * FSL_FORWARD}},
                   groups=device_groups(2, 3),
                   profiles={r: DeviceProfile(f"dev{r}", v / 1e6, 1, 1e9) for r, v in FSL_SPEEDS.items()})


def batch(client):
    g = torch.Generator().manual_seed(100 + client)
    return torch.rand(BATCH, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (BATCH,), generator=g)


def shard_arrays(client):
    """The client's shard: uint8 images (n, 28, 28) and int64 labels (n,)."""
    rng = np.random.default_rng(200 + client)
    images = rng.integers(0, 256, (SIZES[client], 28, 28), dtype=np.uint8)
    return images, rng.integers(0, 10, SIZES[client]).astype(np.int64)


def shard(client):
    return ClientBatches(*shard_arrays(client), BATCH, np.random.default_rng(300 + client))


def modules(party, strategy) -> dict:
    """Every torch module a party holds, by name."""
    found = {name: m for name, m in vars(party).items() if isinstance(m, torch.nn.Module)} | {
        f"{k}": v for name in ("nets", "bodies") for k, v in getattr(party, name, {}).items()} | (
        party.m.parts() if hasattr(party, "m") else {}) | {
        f"pool{p.index}/{k}": v for p in getattr(party, "pools", []) for k, v in p.nets.items()}
    if strategy.startswith("centralized") and getattr(getattr(party, "evaluation", None), "g", None) is not None:
        found["eval/g"] = party.evaluation.g
    return found


def main(strategy, fake_labels, out, out_json):
    torch.set_num_threads(1)
    t = MPITransport(MPI.COMM_WORLD)
    info = fslgan_case() if strategy == "fslgan" else case(strategy, fake_labels)
    method = load_strategy(strategy.partition(":")[0])
    if t.rank == 0:
        party = method.server(info, t)
        party.train_iteration(last_of_round=True)
        party.round_end(1)
        party.begin_evaluation([1])
        party.serve_generation([1])
    elif t.rank not in info.clients:  # a helper device (fslgan): no data
        party = method.client(info, t.rank, t, shard=None)
        party.train_iteration(None, None)
        party.round_end(1)
    else:
        party = method.client(info, t.rank, t, shard=shard(t.rank))
        party.train_iteration(*batch(t.rank))
        party.round_end(1)
        if t.rank == 1:
            party.begin_evaluation()
            party.generate(torch.zeros(4, 100), torch.arange(4))
    t.flush()
    state = {f"{t.rank}/{name}/{k}": v.detach().numpy().copy()
             for name, m in modules(party, strategy).items() for k, v in m.state_dict().items()}
    gathered = t.gather((state, t.ledger.received_rows(t.rank)))  # pickled once, test only
    if t.rank == 0:
        merged, rows = {}, []
        for s, r in gathered:
            merged.update(s)
            rows += r
        np.savez(out, **merged)
        with open(out_json, "w") as f:
            json.dump(sorted(exposure_set(exposure_table(rows))), f)
        with open(out_json + ".rows", "w") as f:
            json.dump(rows, f)
    t.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:])
