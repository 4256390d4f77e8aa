"""Crash client rank 2 in its first training iteration; the whole job must abort, not hang.

Usage: mpiexec -n 3 python tests/mpi/crash_client.py CONFIG.yaml OUT.h5 DATA_ROOT
"""
import sys

from dataclasses import replace

from huscf_mpi import registry
from huscf_mpi.config import load_config
from huscf_mpi.roles import run
from huscf_mpi.strategies import HuSCFClient
from huscf_mpi.strategies.huscf import STRATEGY as HUSCF


class Crashing(HuSCFClient):
    def train_iteration(self, x, y):
        if self.client == 2:
            raise RuntimeError("injected failure on client 2")
        return super().train_iteration(x, y)


STRATEGY = replace(HUSCF, name="crashing", client=Crashing)


def main(config, out, data_root):
    registry.register("crashing", __name__)
    run.train(load_config(config, {"output": out, "strategy": "crashing"}), data_root=data_root)


if __name__ == "__main__":
    main(*sys.argv[1:])
