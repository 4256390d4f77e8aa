import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HUSCF_DATA_ROOT", ROOT / "data"))


def mpiexec() -> str:
    """The mpiexec beside this Python (the pip MPICH), else the one on PATH."""
    here = Path(sys.executable).with_name("mpiexec")
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("mpiexec not found: install the mpich wheel (make venv)")
    return found


def checkout_env() -> dict:
    """The environment with this checkout first on PYTHONPATH: subprocesses run its code, whatever
    the venv's editable install points at (a git worktree of the project)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path)


def run_mpi(n: int, args: list[str], timeout: float = 600, cwd=None) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n python args...`` (or a console script if args[0] is one); returns the process."""
    env = dict(checkout_env(), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [mpiexec(), "-n", str(n), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def rendered_by(script: str) -> str:
    """The ``# Rendered by: huscf-mpi slurm ...`` header line of a rendered SLURM script."""
    return next(ln for ln in script.splitlines() if ln.startswith("# Rendered by: "))


def header_argv(script: str) -> list[str]:
    """The command of a script's "Rendered by" header, split as the shell would (``huscf-mpi`` first)."""
    return shlex.split(rendered_by(script).removeprefix("# Rendered by: "))


def huscf_cli() -> str:
    return str(Path(sys.executable).with_name("huscf-mpi"))


needs_data = pytest.mark.skipif(not (DATA / "mnist").is_dir(), reason=f"no MNIST in the data root {DATA}")
