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

With ``seeds`` (needed for several configs) the script is one array job over configs x seeds:
a small bash table maps array task ``i`` to config ``i // n_seeds`` and seed ``i % n_seeds``
(``jobs/README.md``, "Comparing methods: one array over configs x seeds").
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Sequence

LAUNCHERS = ("srun", "mpiexec")
_TIME = re.compile(r"^(\d+-)?\d+(:\d{1,2}){0,2}$")  # SLURM: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM[:SS]
_ARRAY = re.compile(r"^\d+(-\d+)?(:\d+)?(,\d+(-\d+)?(:\d+)?)*(%\d+)?$")  # 0-4, 1,3,5, 0-9:2, 0-99%10
_SEEDS = re.compile(r"^\d+(-\d+)?(:\d+)?(,\d+(-\d+)?(:\d+)?)*$")  # 0-2, 0,5,9, 0-9:2
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


# seeds: one array job over configs x seeds; {table} (from seed_table) sets i, CONFIG, NAME and SEED.
_TABLE_TEMPLATE = _HEAD.replace("# HuSCF-GAN training, ", "# huscf-mpi train, ") + """\
#SBATCH --job-name={job_name}
#SBATCH --ntasks={ntasks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={log}
{extra_directives}
""" + _START + """
{table}
# One thread per rank: the ranks already fill the cores, more threads would oversubscribe them.
""" + _SETUP + """echo "job ${{SLURM_JOB_ID}} (array task $i: $NAME, seed $SEED): ${{SLURM_NTASKS}} ranks on \\
${{SLURM_JOB_NODELIST}}, writing $OUTPUT"
{launch} \\
    huscf-mpi train --config "$CONFIG" --output "$OUTPUT" --seed "$SEED"{train_args}
"""
assert _TABLE_TEMPLATE.startswith("#!/bin/bash\n# huscf-mpi train, ")

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


def parse_seeds(spec: str) -> list[int]:
    """Seeds of a ``--seeds`` spec, in order: ``"0-2"`` -> [0, 1, 2]; ``"0,5,9"``; ``"0-9:2"``.

    Raises
    ------
    ValueError
        Not such a spec, an empty range, or a seed given twice (one line).
    """
    text = _check(spec, _SEEDS, "seeds", "0-2 or 0,5,9 or 0-9:2")
    seeds: list[int] = []
    for part in text.split(","):
        span, _, step = part.partition(":")
        first, _, last = span.partition("-")
        lo, hi = int(first), int(last or first)
        if hi < lo or (step and int(step) < 1):
            raise ValueError(f"seeds {spec!r}: {part} is empty; e.g. 0-2")
        seeds += range(lo, hi + 1, int(step or 1))
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(f"seeds {spec!r} gives seed {seed} twice; the runs would be the same")
        seen.add(seed)
    return seeds


def seed_table(configs: Sequence[str | Path], names: Sequence[str], seeds: Sequence[int],
               notes: Sequence[str] = ()) -> str:
    """The bash lines of a configs x seeds array script that pick the task's run.

    Array task ``i`` (``$SLURM_ARRAY_TASK_ID``, 0 .. len(configs) * len(seeds) - 1) sets
    ``CONFIG=configs[i // len(seeds)]``, ``NAME=names[i // len(seeds)]`` and
    ``SEED=seeds[i % len(seeds)]``; another ``i`` stops the script with status 2. ``notes``
    (one per config) end the configs' comment lines.
    """
    n = len(seeds)
    paths = [shlex.quote(str(c)) for c in configs]
    width = max(map(len, paths))
    rows = "".join(f"    {p.ljust(width)}  # task{f's {k * n}-{k * n + n - 1}' if n > 1 else f' {k}'}"
                   f"{': ' + notes[k] if k < len(notes) else ''}\n" for k, p in enumerate(paths))
    return (f"# The array task's run: task i trains CONFIGS[i / {n}] with SEEDS[i % {n}] (integer division).\n"
            f"CONFIGS=(\n{rows})\n"
            f"NAMES=({' '.join(names)})  # in the result file names\n"
            f"SEEDS=({' '.join(map(str, seeds))})\n"
            'i="${SLURM_ARRAY_TASK_ID:?not an array task; submit this script with sbatch}"\n'
            "if ! [[ \"$i\" =~ ^[0-9]+$ ]] || ((i >= ${#CONFIGS[@]} * ${#SEEDS[@]})); then\n"
            '    echo "huscf-mpi: array task $i: this script has tasks 0-$((${#CONFIGS[@]} * ${#SEEDS[@]} - 1))" >&2\n'
            "    exit 2\n"
            "fi\n"
            'CONFIG="${CONFIGS[i / ${#SEEDS[@]}]}"\n'
            'NAME="${NAMES[i / ${#SEEDS[@]}]}"\n'
            'SEED="${SEEDS[i % ${#SEEDS[@]}]}"\n')


_SCRIPT_SETS = {"config_path": "--config", "output": "--output", "seed": "--seed"}


def check_train_args(configs: Sequence[str | Path], train_args: Sequence[str], array: bool) -> None:
    """Parse ``train_args`` with ``huscf-mpi train``'s own parser and validate every config with them.

    Refuses what train would refuse (unknown options, bad values, a value out of range for the
    config) and the options the script sets itself: ``--config`` and ``--output`` always,
    ``--seed`` in an array job (``array``), where each task sets its own.

    Raises
    ------
    ValueError
        One line starting with ``-- <option>``.
    """
    import click
    from click.core import ParameterSource

    from .cli import train, train_overrides, usage_line
    from .config import ConfigError, load_config

    args = [str(a) for a in train_args]
    if not args:
        return
    for arg in args:
        if arg in ("-h", "--help"):
            raise ValueError(f"-- {arg}: a batch script cannot show help; run huscf-mpi train --help instead")
    try:
        ctx = train.make_context("huscf-mpi train", list(args))
    except click.UsageError as e:
        raise ValueError(f"-- {usage_line(e)}") from None
    for param, option in _SCRIPT_SETS.items():
        if ctx.get_parameter_source(param) != ParameterSource.COMMANDLINE:
            continue
        given = next((a for a in args if a == option or a.startswith(option + "=")), option)
        if array:
            raise ValueError(f"-- {given}: each array task sets its own --config, --seed and --output "
                             "(from --config and --array or --seeds); drop it")
        if param == "config_path":
            raise ValueError(f"-- {given}: the script sets --config itself; give the config as slurm --config")
        if param == "output":
            raise ValueError(f"-- {given}: the script sets --output itself (results/<job name>-<job id>.h5); "
                             "name the files with --job-name")
    overrides, options = train_overrides(ctx.params, prefix="-- ")
    for config in configs:
        try:
            load_config(config, overrides, options)
        except ConfigError as e:
            raise ValueError(str(e)) from None


def clients_in(config_path: str | Path) -> dict[str, int]:
    """Clients per domain of a config file (validates the config).

    Raises
    ------
    ValueError
        The config cannot be read or is invalid (one line).
    """
    from .config import load_config

    return dict(load_config(config_path).data.domains)


def devices_in(config_path: str | Path) -> int:
    """MPI ranks per client of a config file: 1, or the strategy's ``devices_per_client`` (fslgan)."""
    from .config import load_config
    from .registry import load_strategy

    cfg = load_config(config_path)
    return load_strategy(cfg.strategy).devices_per_client(cfg)


def render_sbatch(config_path: str | Path | Sequence[str | Path], ntasks: int | None = None,
                  time: str = "24:00:00", array: str | None = None, seeds: str | None = None,
                  partition: str | None = None, job_name: str | None = None,
                  launcher: str = "mpiexec", nodes: int | str | None = None, overcommit: bool = False,
                  mem_per_cpu: str | None = None, server_node: bool = False, server_cpus: int | None = None,
                  train_args: Sequence[str] = (), command: str | None = None,
                  script_path: str | Path | None = None) -> str:
    """Text of a SLURM batch script running ``huscf-mpi train --config config_path``.

    Parameters
    ----------
    config_path : str or Path, or a sequence of them
        Run config; written into the script as given, so a relative path is relative to the
        directory ``sbatch`` is run from. It is loaded here to validate it and count clients.
        Several configs (with ``seeds``) make one array job over configs x seeds.
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
    seeds : str, optional
        Seeds for one array job over every config x seed (needed with several configs; not
        with ``array``, ``server_node``), e.g. ``"0-2"``, ``"0,5,9"``, ``"0-9:2"``. Array task ``i``
        trains config ``i // n_seeds`` (in the given order) with seed ``i % n_seeds``, chosen by
        a bash table in the script (:func:`seed_table`), and writes
        ``results/<name>-<array job id>-<config stem>-s<seed>.h5``. Every config must need the
        same number of ranks (one job size per array), and config stems must differ.
    partition : str, optional
        With ``server_node``, asked for in both components.
    job_name : str, optional
        Default: the config file's stem (e.g. ``scenario6``), ``compare`` for several configs;
        also names the result files.
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
        ``server_node``, ``server_node`` with ``array`` or ``seeds``, several configs without
        ``seeds``, or configs of different rank counts in one array.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: choose {' or '.join(LAUNCHERS)}")
    configs = [config_path] if isinstance(config_path, (str, Path)) else list(config_path)
    check_train_args(configs, train_args, array=array is not None or seeds is not None)
    if server_cpus is not None:
        if not server_node:
            raise ValueError(f"server-cpus {server_cpus!r}: only with --server-node (rank 0 on its own node)")
        if isinstance(server_cpus, bool) or not isinstance(server_cpus, int) or server_cpus < 1:
            raise ValueError(f"server-cpus {server_cpus!r} is not valid; e.g. 64 (rank 0's CPUs on its node)")
    if server_node and array is not None:
        raise ValueError(f"array {array!r}: SLURM cannot run a heterogeneous job (--server-node) as an array; "
                         f"submit one job per seed with -- --seed N")
    if not isinstance(config_path, (str, Path)):
        configs = list(config_path)
        if len(configs) == 1 and seeds is None:
            config_path = configs[0]  # the plain script, as for one path
        else:
            return _render_table(configs, seeds, ntasks, time, array, partition, job_name, launcher, nodes,
                                 overcommit, mem_per_cpu, server_node, train_args, command, script_path)
    if seeds is not None:
        return _render_table([config_path], seeds, ntasks, time, array, partition, job_name, launcher, nodes,
                             overcommit, mem_per_cpu, server_node, train_args, command, script_path)
    domains = clients_in(config_path)
    n_clients, k = sum(domains.values()), devices_in(config_path)
    if ntasks is None:
        ntasks = n_clients * k + 1
    if int(ntasks) != n_clients * k + 1:
        per = f" x {k} devices" if k > 1 else ""
        raise ValueError(f"--ntasks {ntasks}: {config_path} has {n_clients} clients{per}, so train needs "
                         f"{n_clients * k + 1} ranks (1 server + {n_clients}{per}); omit --ntasks to use that")
    time = _check(time, _TIME, "time", "01:30:00 or 2-00:00:00")
    name = _NAME.sub("-", job_name or Path(config_path).stem).strip("-") or "huscf"

    directives = _directives(array, partition, nodes, overcommit, mem_per_cpu)

    if array is not None:
        output = f"results/{name}-${{SLURM_ARRAY_JOB_ID}}-${{SLURM_ARRAY_TASK_ID}}.h5"
        log = "results/%x-%A_%a.out"
        train_args = ["--seed", '"${SLURM_ARRAY_TASK_ID}"', *map(shlex.quote, train_args)]
    else:
        output = f"results/{name}-${{SLURM_JOB_ID}}.h5"
        log = "results/%x-%j.out"
        train_args = [shlex.quote(a) for a in train_args]
    split = ", ".join(f"{d} {n}" for d, n in domains.items())
    ranks_text = f"{ntasks} MPI ranks (1 server + {n_clients} clients: {split}{f'; {k} ranks each' if k > 1 else ''})"
    common = dict(command=command or f"render_sbatch({str(config_path)!r}, ...)",
                  script_hint=str(script_path) if script_path else "<this script>", job_name=name, time=time,
                  log=log, output=output, config=shlex.quote(str(config_path)),
                  train_args="".join(" " + a for a in train_args))
    if server_node:
        return _render_server_node(common, ranks_text, directives, partition, int(ntasks) - 1, ntasks, launcher,
                                   server_cpus)
    launch = "srun --mpi=pmi2" if launcher == "srun" else 'mpiexec -n "$SLURM_NTASKS"'
    if array is not None:
        ranks_text += f", one run per seed {array}"
    return _TEMPLATE.format(
        ranks_text=ranks_text, ntasks=ntasks, launch=launch,
        extra_directives="\n".join(directives) + ("\n" if directives else ""), **common)


def _directives(array: str | None, partition: str | None, nodes: int | str | None, overcommit: bool,
                mem_per_cpu: str | None) -> list[str]:
    """The checked optional ``#SBATCH`` lines, in the order the scripts have them."""
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
    return directives


def _render_table(configs: list, seeds: str | None, ntasks: int | None, time: str, array: str | None,
                  partition: str | None, job_name: str | None, launcher: str, nodes: int | str | None,
                  overcommit: bool, mem_per_cpu: str | None, server_node: bool, train_args: Sequence[str],
                  command: str | None, script_path: str | Path | None) -> str:
    """The configs x seeds array script of :func:`render_sbatch` (``seeds``, or several configs)."""
    if seeds is None:
        raise ValueError(f"{len(configs)} configs: give their seeds with --seeds, e.g. 0-2 (one array job "
                         f"over configs x seeds: task i runs config i // n_seeds with seed i % n_seeds)")
    if array is not None:
        raise ValueError(f"array {array!r}: with --seeds the array runs over configs x seeds and is numbered "
                         f"by the script; give the seeds with --seeds only")
    if server_node:
        raise ValueError(f"seeds {seeds!r}: SLURM cannot run a heterogeneous job (--server-node) as an array; "
                         f"submit one job per config and seed with -- --seed N")
    if not configs:
        raise ValueError("no config given")
    seed_list = parse_seeds(seeds)
    ranks, notes = {}, []  # config -> (ranks, clients); each config's clients per domain
    for config in configs:
        domains = clients_in(config)
        n_clients = sum(domains.values())
        ranks[str(config)] = (n_clients * devices_in(config) + 1, n_clients)
        notes.append(", ".join(f"{d} {n}" for d, n in domains.items()))
    first = str(configs[0])
    for config, (r, c) in ranks.items():
        if r != ranks[first][0]:
            raise ValueError(f"--config {config} needs {r} MPI ranks (1 server + {c} clients) but {first} needs "
                             f"{ranks[first][0]}: one array job has one size; render one array per rank count")
    n_ranks, n_clients = ranks[first]
    if ntasks is None:
        ntasks = n_ranks
    if int(ntasks) != n_ranks:
        raise ValueError(f"--ntasks {ntasks}: the configs have {n_clients} clients, so train needs {n_ranks} "
                         f"ranks (1 server + {n_ranks - 1}); omit --ntasks to use that")
    names = [_NAME.sub("-", Path(c).stem).strip("-") or "config" for c in configs]
    for k, name in enumerate(names):
        if name in names[:k]:
            other = configs[names.index(name)]
            if str(other) == str(configs[k]):
                raise ValueError(f"--config {other} is given twice; its runs would be the same")
            raise ValueError(f"--config {configs[k]} and {other} are both named {name!r} in result file names; "
                             f"give each config its own file name")
    time = _check(time, _TIME, "time", "01:30:00 or 2-00:00:00")
    default = Path(configs[0]).stem if len(configs) == 1 else "compare"
    name = _NAME.sub("-", job_name or default).strip("-") or "huscf"
    n_tasks = len(configs) * len(seed_list)
    directives = _directives(f"0-{n_tasks - 1}", partition, nodes, overcommit, mem_per_cpu)
    plural = "s" if len(seed_list) > 1 else ""
    per = f" x {(n_ranks - 1) // n_clients} devices" if n_ranks - 1 != n_clients else ""
    ranks_text = (f"{ntasks} MPI ranks per run (1 server + {n_clients} clients{per}), {len(configs)} "
                  f"config{'s' if len(configs) > 1 else ''} x {len(seed_list)} seed{plural}: "
                  f"one array job of {n_tasks} runs")
    launch = "srun --mpi=pmi2" if launcher == "srun" else 'mpiexec -n "$SLURM_NTASKS"'
    return _TABLE_TEMPLATE.format(
        ranks_text=ranks_text, command=command or f"render_sbatch({[str(c) for c in configs]!r}, ...)",
        script_hint=str(script_path) if script_path else "<this script>", job_name=name, ntasks=ntasks, time=time,
        log="results/%x-%A_%a.out", extra_directives="\n".join(directives) + "\n",
        table=seed_table(configs, names, seed_list, notes),
        output=f"results/{name}-${{SLURM_ARRAY_JOB_ID}}-${{NAME}}-s${{SEED}}.h5", launch=launch,
        train_args="".join(" " + shlex.quote(a) for a in train_args))


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
