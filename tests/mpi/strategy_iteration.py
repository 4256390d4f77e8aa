"""Run one iteration, one round end and one evaluation hand-off of a strategy over MPI.

Usage: mpiexec -n 4 python tests/mpi/strategy_iteration.py STRATEGY FAKE_LABELS OUT.npz OUT.json
(rank 0 server, 3 clients). Batches are random tensors from a fixed seed (no dataset needed).
OUT.npz holds every party's parameters and buffers after the round end, keyed
``<rank>/<module>/<state key>``; OUT.json the who-saw-what set from all ranks' ledgers.
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


def case(strategy: str, fake_labels: str) -> RunInfo:
    cfg = Config.model_validate({"seed": SEED, "strategy": strategy, "data": {"domains": {"mnist": 3}},
                                 "model": {"width": WIDTH},
                                 "training": {"batch_size": BATCH, "fake_labels": fake_labels},
                                 "evaluation": {"batch_size": 4}, "cuts": {c: list(v) for c, v in CUTS.items()}})
    return RunInfo(config=cfg, arch=get_architecture("cgan28"),
                   cuts={c: CutVector.from_tuple(v) for c, v in CUTS.items()} if strategy == "huscf" else {},
                   clients=list(CLIENTS), domains={c: "mnist" for c in CLIENTS}, sizes=dict(SIZES),
                   evaluators={"mnist": 1}, iterations_per_round=1, init_seed=INIT_SEED)


def batch(client):
    g = torch.Generator().manual_seed(100 + client)
    return torch.rand(BATCH, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (BATCH,), generator=g)


def shard(client):
    rng = np.random.default_rng(200 + client)
    images = rng.integers(0, 256, (SIZES[client], 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, SIZES[client]).astype(np.int64)
    return ClientBatches(images, labels, BATCH, np.random.default_rng(300 + client))


def modules(party) -> dict:
    """Every torch module a party holds, by name."""
    return {name: m for name, m in vars(party).items() if isinstance(m, torch.nn.Module)} | {
        f"{k}": v for name in ("nets", "bodies") for k, v in getattr(party, name, {}).items()} | (
        party.m.parts() if hasattr(party, "m") else {})


def main(strategy, fake_labels, out, out_json):
    torch.set_num_threads(1)
    t = MPITransport(MPI.COMM_WORLD)
    info = case(strategy, fake_labels)
    method = load_strategy(strategy)
    if t.rank == 0:
        party = method.server(info, t)
        party.train_iteration(last_of_round=True)
        party.round_end(1)
        party.begin_evaluation([1])
        party.serve_generation([1])
    else:
        party = method.client(info, t.rank, t, shard=shard(t.rank))
        party.train_iteration(*batch(t.rank))
        party.round_end(1)
        if t.rank == 1:
            party.begin_evaluation()
            party.generate(torch.zeros(4, 100), torch.arange(4))
    t.flush()
    state = {f"{t.rank}/{name}/{k}": v.detach().numpy().copy()
             for name, m in modules(party).items() for k, v in m.state_dict().items()}
    gathered = t.gather((state, t.ledger.received_rows(t.rank)))  # pickled once, test only
    if t.rank == 0:
        merged, rows = {}, []
        for s, r in gathered:
            merged.update(s)
            rows += r
        np.savez(out, **merged)
        with open(out_json, "w") as f:
            json.dump(sorted(exposure_set(exposure_table(rows))), f)
    t.barrier()


if __name__ == "__main__":
    main(*sys.argv[1:])
