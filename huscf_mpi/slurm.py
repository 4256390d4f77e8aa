"""SLURM batch scripts for ``huscf-mpi train`` (what ``huscf-mpi slurm`` prints).

A rendered script asks for one task per MPI rank (1 server + the config's clients), one CPU
per task, sets one thread per rank, activates the project's virtual environment and writes
the result file under ``results/`` named by job id (and array index). ``jobs/README.md`` says
which launcher to use when; in short:

- ``launcher="mpiexec"``: the Hydra ``mpiexec`` of the pip MPICH in the venv. Inside an
  allocation it reads SLURM's node list and starts its proxies with ``srun``; this works
  whatever PMI the SLURM build has, and is what ``jobs/slurm-selftest.sh`` verifies.
- ``launcher="srun"``: ``srun --mpi=pmi2``: SLURM starts every rank itself (accounting, signal
  delivery, no Hydra). Needs an MPI whose PMI client talks to SLURM's pmi2 plugin.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Sequence

LAUNCHERS = ("srun", "mpiexec")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM[:SS]
_ARRAY = re.compile(r"^\d+(-\d+)?(:\d+)?(,\d+(-\d+)?(:\d+)?)*(%\d+)?$")  # 0-4, 1,3,5, 0-9:2, 0-99%10
_NODES = re.compile(r"^\d+(-\d+)?$")
_MEM = re.compile(r"^\d+[KMGT]?$")
_NAME = re.compile(r"[^A-Za-z0-9._-]+")

_TEMPLATE = """\
#!/bin/bash
# HuSCF-GAN training, {ranks_text}.
# Rendered by: {command}
# Submit from the project directory (the one holding .venv/, data/ and results/):
#     sbatch {script_hint}
#SBATCH --job-name={job_name}
#SBATCH --ntasks={ntasks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={log}
{extra_directives}
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-$PWD}}"

# One thread per rank: the ranks already fill the cores, more threads would oversubscribe them.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# The project's environment (made by `make`), relative to the submit directory unless
# HUSCF_VENV names another one (sbatch passes the submitting shell's environment on).
VENV="${{HUSCF_VENV:-.venv}}"
if [ ! -x "$VENV/bin/huscf-mpi" ]; then
    echo "huscf-mpi: no $VENV/bin/huscf-mpi; run make in $PWD or set HUSCF_VENV" >&2
    exit 2
fi
set +u  # activate scripts may read unset variables
source "$VENV/bin/activate"
set -u

mkdir -p results
OUTPUT="{output}"
echo "job ${{SLURM_JOB_ID}}: ${{SLURM_NTASKS}} ranks on ${{SLURM_JOB_NODELIST}}, writing $OUTPUT"
{launch} \\
    huscf-mpi train --config {config} --output "$OUTPUT"{train_args}
"""


def _check(value, pattern: re.Pattern, what: str, example: str) -> str:
    text = str(value).strip()
    if not pattern.match(text):
        raise ValueError(f"{what} {value!r} is not valid; e.g. {example}")
    return text


def clients_in(config_path: str | Path) -> dict[str, int]:
    """Clients per domain of a config file (validates the config).

    Raises
    ------
    ValueError
        The config cannot be read or is invalid (one line).
    """
    from .config import load_config

    return dict(load_config(config_path).data.domains)


def render_sbatch(config_path: str | Path, ntasks: int | None = None, time: str = "24:00:00",
                  array: str | None = None, partition: str | None = None, job_name: str | None = None,
                  launcher: str = "mpiexec", nodes: int | str | None = None, overcommit: bool = False,
                  mem_per_cpu: str | None = None,
                  train_args: Sequence[str] = (), command: str | None = None,
                  script_path: str | Path | None = None) -> str:
    """Text of a SLURM batch script running ``huscf-mpi train --config config_path``.

    Parameters
    ----------
    config_path : str or Path
        Run config; written into the script as given, so a relative path is relative to the
        directory ``sbatch`` is run from. It is loaded here to validate it and count clients.
    ntasks : int, optional
        MPI ranks = 1 server + number of clients (the default, from the config). Another
        value is refused, since ``train`` needs exactly that many.
    time : str, default "24:00:00"
        Wall-clock limit, in a SLURM format (``HH:MM:SS``, ``D-HH:MM``, minutes, ...).
    array : str, optional
        SLURM array spec over seeds (e.g. ``"0-4"``): task ``i`` trains with ``--seed i`` and
        writes ``results/<name>-<array job id>-<i>.h5``. Without it the config's seed is used
        and the file is ``results/<name>-<job id>.h5``.
    partition : str, optional
    job_name : str, optional
        Default: the config file's stem (e.g. ``scenario6``); also names the result files.
    launcher : {"mpiexec", "srun"}, default "mpiexec"
        ``mpiexec -n $SLURM_NTASKS`` (the venv's Hydra) or ``srun --mpi=pmi2``.
    nodes : int or str, optional
        ``--nodes`` (e.g. 1 or "2-4").
    overcommit : bool, default False
        ``--overcommit``: allow more tasks than CPUs (small tests on few cores).
    mem_per_cpu : str, optional
        ``--mem-per-cpu`` (e.g. "2G"); each rank holds torch and its domain's data.
    train_args : sequence of str
        Extra ``huscf-mpi train`` arguments, e.g. ``["--rounds", "2"]``.
    command : str, optional
        The command line that rendered the script, recorded in its header.
    script_path : str or Path, optional
        Where the script will be saved, for the ``sbatch`` hint in its header.

    Returns
    -------
    str
        The script.

    Raises
    ------
    ValueError
        Invalid config or argument (one line naming it).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: choose {' or '.join(LAUNCHERS)}")
    domains = clients_in(config_path)
    n_clients = sum(domains.values())
    if ntasks is None:
        ntasks = n_clients + 1
    if int(ntasks) != n_clients + 1:
        raise ValueError(f"--ntasks {ntasks}: {config_path} has {n_clients} clients, so train needs "
                         f"{n_clients + 1} ranks (1 server + {n_clients}); omit --ntasks to use that")
    time = _check(time, _TIME, "time", "01:30:00 or 2-00:00:00")
    name = _NAME.sub("-", job_name or Path(config_path).stem).strip("-") or "huscf"

    directives = []
    if array is not None:
        directives.append(f"#SBATCH --array={_check(array, _ARRAY, 'array', '0-4 or 0,2,4 or 0-99%10')}")
    if partition:
        if not re.match(r"^[A-Za-z0-9._,-]+$", partition):
            raise ValueError(f"partition {partition!r} is not valid; e.g. cpu")
        directives.append(f"#SBATCH --partition={partition}")
    if nodes is not None:
        directives.append(f"#SBATCH --nodes={_check(nodes, _NODES, 'nodes', '1 or 2-4')}")
    if overcommit:
        directives.append("#SBATCH --overcommit")
    if mem_per_cpu is not None:
        directives.append(f"#SBATCH --mem-per-cpu={_check(mem_per_cpu, _MEM, 'mem-per-cpu', '2G or 1500M')}")

    if array is not None:
        output = f"results/{name}-${{SLURM_ARRAY_JOB_ID}}-${{SLURM_ARRAY_TASK_ID}}.h5"
        log = "results/%x-%A_%a.out"
        train_args = ["--seed", '"${SLURM_ARRAY_TASK_ID}"', *map(shlex.quote, train_args)]
    else:
        output = f"results/{name}-${{SLURM_JOB_ID}}.h5"
        log = "results/%x-%j.out"
        train_args = [shlex.quote(a) for a in train_args]
    launch = "srun --mpi=pmi2" if launcher == "srun" else 'mpiexec -n "$SLURM_NTASKS"'
    split = ", ".join(f"{d} {n}" for d, n in domains.items())
    ranks_text = f"{ntasks} MPI ranks (1 server + {n_clients} clients: {split})"
    if array is not None:
        ranks_text += f", one run per seed {array}"
    return _TEMPLATE.format(
        ranks_text=ranks_text, command=command or f"render_sbatch({str(config_path)!r}, ...)",
        script_hint=str(script_path) if script_path else "<this script>", job_name=name, ntasks=ntasks, time=time, log=log,
        extra_directives="\n".join(directives) + ("\n" if directives else ""),
        output=output, launch=launch, config=shlex.quote(str(config_path)),
        train_args="".join(" " + a for a in train_args))
