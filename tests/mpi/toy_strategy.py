"""A toy method in a few dozen lines: the contract test of the strategy seam.

Each iteration every client sends the mean of its real batch's labels up as one float32
number (payload "losses", so the ledger has something to classify); the server adds them up
and at each round's end sends every client the round's total. Each client reports its own
count of iterations as a ``client_values`` entry, and declares both per-round datasets
(``records``: the result writer refuses undeclared names). Nothing in the engine knows this strategy:
it is registered from here and run through ``roles.run.train``.

Usage: mpiexec -n 3 python tests/mpi/toy_strategy.py CONFIG.yaml OUT.h5 DATA_ROOT
"""
import sys

import numpy as np
import torch

from huscf_mpi import registry
from huscf_mpi.comm import kind
from huscf_mpi.config import load_config
from huscf_mpi.results.schema import Dataset
from huscf_mpi.roles import run
from huscf_mpi.strategies import ClientStrategy, RoundRecord, ServerStrategy, Strategy

UP = kind("toy_up", 1000, "protocol", "losses")
DOWN = kind("toy_down", 1001, "protocol", "losses")


class ToyClient(ClientStrategy):
    def __init__(self, info, client, transport, shard=None):
        super().__init__(info, client, transport, shard)
        transport.declare(0, UP, (1,))
        transport.declare(0, DOWN, (1,), send=False)
        self.count = 0

    def train_iteration(self, x, y):
        self.t.isend(0, UP, np.array([y.float().mean()], np.float32))
        self.count += 1
        return 0.5, 0.25

    def round_end(self, round_index):
        self.total = float(self.t.recv(0, DOWN)[0])
        return {"toy_iterations": self.count}

    def generate(self, z, labels):
        return torch.zeros(z.shape[0], *self.info.arch.image_shape)


class ToyServer(ServerStrategy):
    def __init__(self, info, transport):
        super().__init__(info, transport)
        for c in info.clients:
            transport.declare(c, UP, (1,), send=False)
            transport.declare(c, DOWN, (1,))
        self.total = 0.0

    def train_iteration(self, last_of_round):
        self.total += sum(float(v[0]) for v in self.t.recv_many(self.info.clients, UP).values())

    def round_end(self, round_index):
        for c in self.info.clients:
            self.t.isend(c, DOWN, np.array([self.total], np.float32))
        return RoundRecord({"toy_total": np.float64(self.total)}, log=f"toy total {self.total:.2f}")


STRATEGY = Strategy("toy", ToyClient, ToyServer, uses_cuts=False, client_values=("toy_iterations",),
                    exposure=lambda config: {("losses", "client", "server"), ("losses", "server", "client")},
                    records=(Dataset("rounds/toy_iterations", "(R, N)", "float", "", "iterations of each client so far"),
                             Dataset("rounds/toy_total", "(R,)", "float", "", "sum of the clients' label means")))

if __name__ == "__main__":
    config, out, data_root = sys.argv[1:]
    registry.register("toy", __name__)
    run.train(load_config(config, {"output": out, "strategy": "toy"}), data_root=data_root)
