"""Run ONE synchronous HuSCF-GAN iteration over MPI and save every party's parameters.

Usage: mpiexec -n 4 python tests/mpi/one_iteration.py OUT.npz   (rank 0 server, 3 clients)
Batches are random tensors from a fixed seed (no dataset needed); the test recomputes the
same iteration in one process and compares (tests/test_mpi_protocol.py).
"""
import sys

import numpy as np
import torch
from mpi4py import MPI

from huscf_mpi.comm import MPITransport
from huscf_mpi.config import Config
from huscf_mpi.models import CutVector, get_architecture
from huscf_mpi.strategies import HuSCFClient, HuSCFServer, RunInfo

CUTS = {1: (1, 5, 2, 4), 2: (2, 4, 1, 5), 3: (1, 4, 2, 5)}
BATCH, WIDTH, SEED, INIT_SEED = 8, 0.25, 3, 11


def case():
    cfg = Config.model_validate({"seed": SEED, "data": {"domains": {"mnist": 3}}, "model": {"width": WIDTH},
                                 "training": {"batch_size": BATCH, "fake_labels": "uniform"}, "cuts": {c: list(v) for c, v in CUTS.items()}})
    info = RunInfo(config=cfg, arch=get_architecture("cgan28"), cuts={c: CutVector.from_tuple(v) for c, v in CUTS.items()},
                   clients=[1, 2, 3], domains={c: "mnist" for c in CUTS}, sizes={1: 100, 2: 200, 3: 300},
                   evaluators={"mnist": 1}, iterations_per_round=1, init_seed=INIT_SEED)
    return info


def batch(client):
    g = torch.Generator().manual_seed(100 + client)
    return torch.rand(BATCH, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (BATCH,), generator=g)


def main(out):
    torch.set_num_threads(1)
    t = MPITransport(MPI.COMM_WORLD)
    info = case()
    if t.rank == 0:
        party = HuSCFServer(info, t)
        party.train_iteration(last_of_round=True)
        modules = party.bodies
    else:
        party = HuSCFClient(info, t.rank, t)
        party.train_iteration(*batch(t.rank))
        modules = party.m.parts()
    t.flush()
    state = {f"{t.rank}/{name}/{k}": v.detach().numpy().copy()
             for name, m in modules.items() for k, v in m.state_dict().items()}
    gathered = t.gather(state)  # pickled once, test only
    if t.rank == 0:
        merged = {}
        for s in gathered:
            merged.update(s)
        np.savez(out, **merged)
    t.barrier()


if __name__ == "__main__":
    main(sys.argv[1])
