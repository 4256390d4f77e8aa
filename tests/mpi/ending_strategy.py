"""The toy method (tests/mpi/toy_strategy.py), ended in a chosen way, for tests/test_run_end.py.

Usage: mpiexec -n 3 python tests/mpi/ending_strategy.py CONFIG.yaml OUT.h5 DATA_ROOT MODE

MODE:
- ``complete``: runs as is;
- ``client-crash``: client 2 raises in its first iteration of round 3 (round 1 is written by then);
- ``server-crash``: rank 0 raises in its first iteration of round 2;
- ``slow``: rank 0 sleeps 0.2 s per iteration, so a signal or a change on disk lands mid-run.

Each rank writes its process id to ``OUT.pid.<rank>`` first, so a test can check that no rank
outlives the job. Logging is set up as ``huscf-mpi train`` does.
"""
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mpi4py import MPI  # noqa: E402

from huscf_mpi import registry  # noqa: E402
from huscf_mpi.logs import setup_logging  # noqa: E402
from huscf_mpi.config import load_config  # noqa: E402
from huscf_mpi.roles import run  # noqa: E402
from toy_strategy import STRATEGY as TOY, ToyClient, ToyServer  # noqa: E402

MODE = sys.argv[4] if len(sys.argv) > 4 else "complete"


class Client(ToyClient):
    def train_iteration(self, x, y):
        if MODE == "client-crash" and self.client == 2 and self.count == 2 * self.info.iterations_per_round:
            raise RuntimeError("injected failure on client 2")
        return super().train_iteration(x, y)


class Server(ToyServer):
    iterations = 0

    def train_iteration(self, last_of_round):
        if MODE == "server-crash" and self.iterations == self.info.iterations_per_round:
            raise ValueError("injected failure on the server")
        if MODE == "slow":
            time.sleep(0.2)
        self.iterations += 1
        return super().train_iteration(last_of_round)


STRATEGY = replace(TOY, name="ending", client=Client, server=Server)


def main(config, out, data_root):
    rank = MPI.COMM_WORLD.Get_rank()
    Path(f"{out}.pid.{rank}").write_text(str(os.getpid()))
    setup_logging(rank, False)
    registry.register("ending", __name__)
    run.train(load_config(config, {"output": out, "strategy": "ending"}), data_root=data_root)


if __name__ == "__main__":
    main(*sys.argv[1:4])
