"""Each rank of a ``huscf-mpi train`` launch writes the heavy modules it has imported after its first
round, and its private memory.

Usage: mpiexec -n N python tests/mpi/client_modules.py OUT_DIR [train options]
Runs ``huscf-mpi train [train options] --strategy reporting`` through the command's own entry
point (``huscf_mpi.launch.main``), so client ranks start as they do under ``mpiexec huscf-mpi``.
Writes OUT_DIR/rank<r>.json with {"modules": [...], "private_dirty_bytes": int, "evaluator": bool}.
"""
import json
import sys
from pathlib import Path

from dataclasses import replace

from huscf_mpi import launch, registry
from huscf_mpi.roles.reports import private_dirty_bytes
from huscf_mpi.strategies import HuSCFClient
from huscf_mpi.strategies.huscf import STRATEGY as HUSCF

HEAVY = ("h5py", "sklearn", "scipy", "pandas", "matplotlib", "deap", "sympy", "pydantic", "click", "yaml")  # tqdm comes with torch (torch.hub)


class Reporting(HuSCFClient):
    def round_end(self, r):
        out = super().round_end(r)
        if r == 1:
            mods = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
            evaluator = self.client in self.info.evaluators.values()
            Path(OUT_DIR, f"rank{self.client}.json").write_text(json.dumps(
                {"modules": mods, "private_dirty_bytes": private_dirty_bytes(), "evaluator": evaluator}))
        return out


STRATEGY = replace(HUSCF, name="reporting", client=Reporting)


def main(out_dir, *options):
    global OUT_DIR
    OUT_DIR = out_dir
    registry.register("reporting", __name__)
    sys.argv = ["huscf-mpi", "train", *options, "--strategy", "reporting"]
    launch.main()


if __name__ == "__main__":
    main(*sys.argv[1:])
