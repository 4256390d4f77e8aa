"""What a result file records about where and how it was produced."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "numpy", "mpi4py", "mpich", "h5py", "scikit-learn", "deap", "pydantic", "huscf-mpi")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = ""
    return out


def git_state(where: Path | None = None) -> tuple[str, bool]:
    """(commit, dirty) of the checkout holding the package, or ("", False) outside one."""
    where = where or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return "", False


def collect(mpi_library: str, n_ranks: int, hosts: list[str], seed: int, config_yaml: str) -> dict:
    commit, dirty = git_state()
    return {
        "config_yaml": config_yaml, "seed": seed, "command": " ".join(sys.argv),
        "git_commit": commit, "git_dirty": dirty, "versions": versions(),
        "mpi_library": mpi_library, "n_ranks": n_ranks, "hosts": hosts,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID", ""),
    }
