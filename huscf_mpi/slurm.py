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

With ``server_node=True`` the script is a heterogeneous job instead (``#SBATCH hetjob``):
component 0 is rank 0 alone on a whole node, component 1 the clients with one CPU each, so
that the server's body computations (``server.threads: auto``, see ``roles/threads.py``) get
that node's cores. ``jobs/README.md``, "Rank 0 on its own node", says why and how each
launcher starts it.
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

_VENV = """\
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
"""

# Shared by both templates: strict shell in the submit directory; after the thread comment,
# thread caps, the project's environment and the result path.
_START = """\
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-$PWD}}"
"""
_SETUP = """\
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

""" + _VENV + """
mkdir -p results
OUTPUT="{output}"
"""

_HEAD = """\
#!/bin/bash
# HuSCF-GAN training, {ranks_text}.
# Rendered by: {command}
# Submit from the project directory (the one holding .venv/, data/ and results/):
#     sbatch {script_hint}
"""

_TEMPLATE = _HEAD + """\
#SBATCH --job-name={job_name}
#SBATCH --ntasks={ntasks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={log}
{extra_directives}
""" + _START + """
# One thread per rank: the ranks already fill the cores, more threads would oversubscribe them.
""" + _SETUP + """echo "job ${{SLURM_JOB_ID}}: ${{SLURM_NTASKS}} ranks on ${{SLURM_JOB_NODELIST}}, writing $OUTPUT"
{launch} \\
    huscf-mpi train --config {config} --output "$OUTPUT"{train_args}
"""


# server_node: a heterogeneous job (SLURM >= 17.11), rank 0 alone on a node (component 0).
_HET_TEMPLATE = _HEAD + """\
#
# A heterogeneous job: component 0 is rank 0, the server, alone on a whole node (--exclusive);
# component 1 is the {n_clients} clients, one CPU each. The synchronous phases alternate: rank 0
# computes the shared body for every client while they wait, so it gets that node's cores.
# With `server.threads: auto` (the default) rank 0 runs one torch thread per CPU of its
# affinity mask, i.e. of its task: $SERVER_CPUS below ({server_cpus_text}).
# The clients keep one thread each. See jobs/README.md, "Rank 0 on its own node".
#SBATCH --job-name={job_name}
#SBATCH --time={time}
#SBATCH --output={log}
{server_directives}
#SBATCH hetjob
{client_directives}

""" + _START + """
# One thread per client rank. No cap on rank 0's body computations: `huscf-mpi train` sets
# rank 0's torch threads to server.threads itself, and torch.set_num_threads overrides these.
""" + _SETUP + """SERVER_CPUS={server_cpus}  # rank 0's task, hence its threads under server.threads: auto
echo "job ${{SLURM_JOB_ID}}: rank 0 on ${{SLURM_JOB_NODELIST_HET_GROUP_0}} with $SERVER_CPUS CPUs, \\
{n_clients} clients on ${{SLURM_JOB_NODELIST_HET_GROUP_1}}, writing $OUTPUT"
{launch} \\
    huscf-mpi train --config {config} --output "$OUTPUT"{train_args}
"""

_HET_SRUN = """\
# One step over both components, one MPI_COMM_WORLD, component 0's task first: rank 0 is the
# server. The CPUs per task are given again: srun does not read sbatch's --cpus-per-task in
# every SLURM version (22.05 to 23.02 do not).
srun --mpi=pmi2 --ntasks=1 --cpus-per-task="$SERVER_CPUS" : \\
    --mpi=pmi2 --ntasks={n_clients} --cpus-per-task=1"""

_HET_MPIEXEC = """\
# Hydra's mpiexec finds only component 0 in SLURM's variables, and its srun launcher starts all
# proxies with one plain srun, which in a heterogeneous job reaches component 0 alone. So the
# layout is given here (rank 0 alone on the server node, then each client node with its task
# count, in rank order) and the rsh launcher starts each node's proxy through the helper
# below, as a one-task srun step of the component that holds the node.
SERVER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0")"
mapfile -t CLIENT_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_1")
HOSTS="$SERVER_NODE:1"
i=0
for group in ${{SLURM_TASKS_PER_NODE_HET_GROUP_1//,/ }}; do  # tasks per client node: 50(x2) or 34,33(x2)
    tasks="${{group%%(*}}"
    repeat=1
    if [[ "$group" == *"(x"* ]]; then
        repeat="${{group#*(x}}"
        repeat="${{repeat%)}}"
    fi
    for ((r = 0; r < repeat; r++)); do
        HOSTS+=",${{CLIENT_NODES[i]}}:$tasks"
        i=$((i + 1))
    done
done
export HUSCF_SERVER_NODE="$SERVER_NODE" HUSCF_SERVER_CPUS="$SERVER_CPUS"
PROXY_LAUNCHER="$(mktemp "${{TMPDIR:-/tmp}}/huscf-proxy-launch.XXXXXX")"
trap 'rm -f "$PROXY_LAUNCHER"' EXIT
cat >"$PROXY_LAUNCHER" <<'EOF'
#!/bin/bash
# Hydra's rsh launcher runs: <this> <node> <proxy command...>. Start the proxy on <node> as a
# one-task step of that node's component; Hydra serves PMI, so no SLURM MPI plugin (--mpi=none).
# No inherited --cpus-per-task: SLURM >= 23.11 reads it from SLURM_CPUS_PER_TASK_HET_GROUP_<n>
# and it implies --exact, which would hold a node's proxy and all its ranks to one CPU.
node="$1"
shift
unset SLURM_CPUS_PER_TASK_HET_GROUP_0 SLURM_CPUS_PER_TASK_HET_GROUP_1 \\
    SLURM_CPUS_PER_TASK_PACK_GROUP_0 SLURM_CPUS_PER_TASK_PACK_GROUP_1
if [ "$node" = "$HUSCF_SERVER_NODE" ]; then  # rank 0: a step of exactly the server's CPUs
    exec srun --het-group=0 --nodelist="$node" --nodes=1 --ntasks=1 --cpus-per-task="$HUSCF_SERVER_CPUS" \\
        --mpi=none --input=none /bin/sh -c "$*"
fi
# Clients: all the component's CPUs on the node for its proxy and ranks, as Hydra's own srun
# launcher asks (SLURM_EXTERNAL_LAUNCHER: read by SLURM >= 23.11, ignored before).
export SLURM_EXTERNAL_LAUNCHER=1
exec srun --het-group=1 --nodelist="$node" --nodes=1 --ntasks=1 --mpi=none --input=none /bin/sh -c "$*"
EOF
chmod +x "$PROXY_LAUNCHER"
# HYDRA_LAUNCHER_AUTOFORK=0: rank 0's proxy goes through the helper too (not forked here, in the
# batch step, though this script runs on the server node), so rank 0 gets $SERVER_CPUS CPUs.
HYDRA_LAUNCHER_AUTOFORK=0 mpiexec -launcher rsh -launcher-exec "$PROXY_LAUNCHER" -rmk user \\
    -hosts "$HOSTS" -n {ntasks}"""


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
                  mem_per_cpu: str | None = None, server_node: bool = False, server_cpus: int | None = None,
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
        and the file is ``results/<name>-<job id>.h5``. Not with ``server_node`` (SLURM has
        no arrays of heterogeneous jobs).
    partition : str, optional
        With ``server_node``, asked for in both components.
    job_name : str, optional
        Default: the config file's stem (e.g. ``scenario6``); also names the result files.
    launcher : {"mpiexec", "srun"}, default "mpiexec"
        ``mpiexec -n $SLURM_NTASKS`` (the venv's Hydra) or ``srun --mpi=pmi2``. With
        ``server_node``: ``srun --mpi=pmi2 <server> : <clients>`` (one step over both
        components), or Hydra with an explicit host layout from the components' node lists,
        its proxies started as ``srun --het-group`` steps (see ``jobs/README.md``).
    nodes : int or str, optional
        ``--nodes`` (e.g. 1 or "2-4"); with ``server_node``, the clients' nodes.
    overcommit : bool, default False
        ``--overcommit``: allow more tasks than CPUs (small tests on few cores); with
        ``server_node``, for the clients.
    mem_per_cpu : str, optional
        ``--mem-per-cpu`` (e.g. "2G"); each rank holds torch and its domain's data. With
        ``server_node``, for the clients; rank 0 gets its node's memory (``--mem=0``).
    server_node : bool, default False
        Render a heterogeneous job: component 0 is rank 0 alone on a node (``--nodes=1
        --ntasks=1 --exclusive --mem=0``), component 1 the clients (``--ntasks=<clients>
        --cpus-per-task=1``), so that rank 0's body computations get that node's cores.
    server_cpus : int, optional
        With ``server_node``: rank 0's ``--cpus-per-task`` (its affinity mask, hence its torch
        threads under ``server.threads: auto``); SLURM then picks a node with that many CPUs.
        Default: all CPUs of the node (``$SLURM_CPUS_ON_NODE`` of the batch step, which runs
        on rank 0's node).
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
        Invalid config or argument (one line naming it), ``server_cpus`` without
        ``server_node``, or ``server_node`` with ``array``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: choose {' or '.join(LAUNCHERS)}")
    if server_cpus is not None:
        if not server_node:
            raise ValueError(f"server-cpus {server_cpus!r}: only with --server-node (rank 0 on its own node)")
        if isinstance(server_cpus, bool) or not isinstance(server_cpus, int) or server_cpus < 1:
            raise ValueError(f"server-cpus {server_cpus!r} is not valid; e.g. 64 (rank 0's CPUs on its node)")
    if server_node and array is not None:
        raise ValueError(f"array {array!r}: SLURM cannot run a heterogeneous job (--server-node) as an array; "
                         f"submit one job per seed with -- --seed N")
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
    split = ", ".join(f"{d} {n}" for d, n in domains.items())
    ranks_text = f"{ntasks} MPI ranks (1 server + {n_clients} clients: {split})"
    common = dict(command=command or f"render_sbatch({str(config_path)!r}, ...)",
                  script_hint=str(script_path) if script_path else "<this script>", job_name=name, time=time,
                  log=log, output=output, config=shlex.quote(str(config_path)),
                  train_args="".join(" " + a for a in train_args))
    if server_node:
        return _render_server_node(common, ranks_text, directives, partition, n_clients, ntasks, launcher,
                                   server_cpus)
    launch = "srun --mpi=pmi2" if launcher == "srun" else 'mpiexec -n "$SLURM_NTASKS"'
    if array is not None:
        ranks_text += f", one run per seed {array}"
    return _TEMPLATE.format(
        ranks_text=ranks_text, ntasks=ntasks, launch=launch,
        extra_directives="\n".join(directives) + ("\n" if directives else ""), **common)


def _render_server_node(common: dict, ranks_text: str, client_directives: list[str], partition: str | None,
                        n_clients: int, ntasks: int, launcher: str, server_cpus: int | None) -> str:
    """The heterogeneous-job script of :func:`render_sbatch` (``server_node=True``).

    ``client_directives`` are the checked ``--partition``/``--nodes``/``--overcommit``/
    ``--mem-per-cpu`` lines, which go to component 1 (the clients); component 0 repeats the
    partition only, since SLURM does not carry it over from one component to the next.
    """
    server = ([f"#SBATCH --partition={partition}"] if partition else []) + [
        "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --exclusive", "#SBATCH --mem=0"]
    if server_cpus is not None:
        server.append(f"#SBATCH --cpus-per-task={server_cpus}")
    clients = [f"#SBATCH --ntasks={n_clients}", "#SBATCH --cpus-per-task=1"]
    clients[:0] = [d for d in client_directives if d.startswith("#SBATCH --partition=")]
    clients += [d for d in client_directives if not d.startswith("#SBATCH --partition=")]
    launch = (_HET_SRUN if launcher == "srun" else _HET_MPIEXEC).format(n_clients=n_clients, ntasks=ntasks)
    return _HET_TEMPLATE.format(
        ranks_text=ranks_text + ", rank 0 on a node of its own", n_clients=n_clients,
        server_cpus=server_cpus if server_cpus is not None else '"${SLURM_CPUS_ON_NODE:-$(nproc)}"',
        server_cpus_text=f"{server_cpus}, from --server-cpus" if server_cpus is not None else "all CPUs of its node",
        server_directives="\n".join(server), client_directives="\n".join(clients), launch=launch, **common)
