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

Every script survives its wall-time limit (issue 11): with ``signal_grace`` > 0 it asks SLURM for
USR1 that many seconds before the limit (``--signal=B:USR1@<grace>``, to the batch shell only)
and may be requeued (``--requeue``). The shell runs the launcher in the background, passes USR1
and TERM on to it (the launcher forwards them to every rank: on USR1 the run finishes its round
and checkpoint, on TERM it stops at once, either way leaving the result at ``<output>.partial``
and the last checkpoint in ``<output>.ckpt``) and,
when USR1 stopped a run that has a checkpoint, requeues the job unless ``HUSCF_REQUEUE=0``. A
requeued job keeps its job id (and array task id), hence its result path, and its next start
adds ``--resume <output>.partial`` to the train command. :func:`render_resume` renders a script
that continues a stopped run (``huscf-mpi slurm --resume``). ``jobs/README.md``, "Wall-time
limits, signals and resuming", has the why and how.
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
SIGNAL_GRACE = 300  # default seconds between SLURM's USR1 and the time limit
_MAX_GRACE = 65535  # SLURM's largest --signal time

_PROJECT_DIR = "the project directory (the one holding .venv/, data/ and results/)"

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
# Submit from {submit_dir}:
#     sbatch {script_hint}
"""

# With signal_grace > 0: what SLURM sends the batch shell, and how the shell passes it on.
_SIGNAL_DIRECTIVES = """\
#SBATCH --signal=B:USR1@{grace}
#SBATCH --requeue
#SBATCH --open-mode=append"""

_TRAPS = """
# Signals for the run: USR1 from SLURM {grace} s before the time limit (--signal=B:USR1@{grace}: to
# this shell only) or from `scancel --signal=USR1 --batch`, TERM from scancel. The launcher runs in
# the background so that this shell can pass them on to it (it forwards them to every rank; the
# run finishes its round and checkpoint after USR1, stops at once after TERM, and leaves
# $OUTPUT.partial and the last checkpoint). One that comes before the launcher has started
# keeps it from starting; $GOT lists those received.
LAUNCHER="" PENDING="" GOT=""
forward() {{
    GOT+="$1 "
    echo "job ${{SLURM_JOB_ID}}: SIG$1 received${{LAUNCHER:+, passed on to the launcher}}"
    if [ -n "$LAUNCHER" ]; then kill -s "$1" "$LAUNCHER" 2>/dev/null || true; else PENDING="$1"; fi
}}
trap 'forward USR1' USR1
trap 'forward TERM' TERM
"""

# A fresh run's script: a requeued job (same ids, same $OUTPUT) continues its checkpoint.
_RESTART = """\
# SLURM restarts a requeued job under the same {ids}, hence the same $OUTPUT:
# when the last start left a checkpoint, continue from it rather than start over.
if [ -f "$OUTPUT.ckpt/manifest.json" ] && [ -f "$OUTPUT.partial" ]; then
    echo "job ${{SLURM_JOB_ID}}: restart ${{SLURM_RESTART_COUNT:-0}}, resuming $OUTPUT.partial from its last checkpoint"
    TRAIN+=(--resume "$OUTPUT.partial")
fi
"""

# A --resume script: it always continues the stopped run, which must be where it was left.
_RESUMED = """\
# Every start, a requeued one too, continues the stopped run from its last checkpoint.
if [ ! -f "$OUTPUT.ckpt/manifest.json" ]; then
    echo "huscf-mpi: no checkpoint $OUTPUT.ckpt/manifest.json in $PWD: submit from the directory the run was" \\
        "started in{run_dir}, or it has completed ($OUTPUT)" >&2
    exit 2
fi
"""

_RUN = """\
{launch} \\
    "${{TRAIN[@]}}"
"""

_RUN_AND_REQUEUE = """\
status=0
if [ -n "$PENDING" ]; then
    # Signalled before the run started (while the environment activated): nothing is lost by not
    # starting it, and a launcher started now could miss the signal while it sets its handlers.
    status=$((128 + $(kill -l "$PENDING")))
    echo "job ${{SLURM_JOB_ID}}: SIG$PENDING before the run started; not started"
else
{launch} \\
    "${{TRAIN[@]}}" &
LAUNCHER=$!
[ -z "$PENDING" ] || kill -s "$PENDING" "$LAUNCHER" 2>/dev/null || true  # one in the instant of the start
# `wait` returns early (128 + the signal's number) whenever a trapped signal arrives: wait again
# until the launcher itself has exited, and keep its exit code.
while :; do
    got="$GOT"
    status=0
    wait "$LAUNCHER" || status=$?
    [ "$GOT" != "$got" ] || break
done
fi
{cleanup}# USR1 stopped the run and it has a checkpoint: requeue the job and exit 0, so that SLURM starts
# it again (resuming, above) instead of failing it. The launcher then exits 138 (mpiexec: 128 +
# SIGUSR1, rank 0's MPI_Abort code), 137 (srun: 128 + SIGKILL, for the ranks it kills after rank
# 0's abort) or 143 (128 + SIGTERM). Not after a TERM: SLURM would requeue even a job that scancel
# is ending.{job_comment}
if [[ "$GOT" == *USR1* && "$GOT" != *TERM* && ("$status" == 13[78] || "$status" == 143) \\
        && -f "$OUTPUT.ckpt/manifest.json" ]]; then
    if [ "${{HUSCF_REQUEUE:-1}}" = 0 ]; then
        echo "job ${{SLURM_JOB_ID}}: stopped (exit $status); not requeued (HUSCF_REQUEUE=0): continue it with" \\
            "huscf-mpi slurm --resume $OUTPUT.partial"
    elif scontrol requeue {job}; then
        echo "job ${{SLURM_JOB_ID}}: stopped (exit $status) and requeued; its next start resumes $OUTPUT.partial"
        exit 0
    else
        echo "job ${{SLURM_JOB_ID}}: scontrol requeue failed; continue it with" \\
            "huscf-mpi slurm --resume $OUTPUT.partial" >&2
    fi
fi
exit "$status"
"""

# srun (not a heterogeneous step), after a failed or stopped run, before any requeue.
_SRUN_CLEANUP = """\
# srun kills the ranks left when rank 0 aborts (as a stopped run's does), so they cannot remove
# MPICH's shared-memory files in /dev/shm, which are named from the PMI job id "<job id>.<step>".
# A requeued job keeps its job id and numbers its steps from 0 again, and a rank of its run that
# finds such a file hangs in MPI_Init: so remove them on every node (the run was step 0).
if [ "$status" -ne 0 ]; then
    shm=2166136261  # MPICH's name: the 32-bit FNV-1a hash of "<job id>.0", in hex
    key="${SLURM_JOB_ID}.0"
    for ((k = 0; k < ${#key}; k++)); do
        printf -v c %d "'${key:k:1}"
        shm=$(( ((shm ^ c) * 16777619) & 0xffffffff ))
    done
    printf -v shm %x "$shm"
    srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --mpi=none \\
        /bin/sh -c "rm -f /dev/shm/mpich_shm_${shm}_* /dev/shm/mpich_vci_${shm}_*" || true
fi
"""

_TEMPLATE = _HEAD + """\
#SBATCH --job-name={job_name}
#SBATCH --ntasks={ntasks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={log}
{extra_directives}
""" + _START + """{traps}
# One thread per rank: the ranks already fill the cores, more threads would oversubscribe them.
""" + _SETUP + """echo "job ${{SLURM_JOB_ID}}: ${{SLURM_NTASKS}} ranks on ${{SLURM_JOB_NODELIST}}, {doing} $OUTPUT"
TRAIN=({train})
{restart}{run}"""


# seeds: one array job over configs x seeds; {table} (from seed_table) sets i, CONFIG, NAME and SEED.
_TABLE_TEMPLATE = _HEAD.replace("# HuSCF-GAN training, ", "# huscf-mpi train, ") + """\
#SBATCH --job-name={job_name}
#SBATCH --ntasks={ntasks}
#SBATCH --cpus-per-task=1
#SBATCH --time={time}
#SBATCH --output={log}
{extra_directives}
""" + _START + """{traps}
{table}
# One thread per rank: the ranks already fill the cores, more threads would oversubscribe them.
""" + _SETUP + """echo "job ${{SLURM_JOB_ID}} (array task $i: $NAME, seed $SEED): ${{SLURM_NTASKS}} ranks on \\
${{SLURM_JOB_NODELIST}}, writing $OUTPUT"
TRAIN=({train})
{restart}{run}"""
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

""" + _START + """{traps}
# One thread per client rank. No cap on rank 0's body computations: `huscf-mpi train` sets
# rank 0's torch threads to server.threads itself, and torch.set_num_threads overrides these.
""" + _SETUP + """SERVER_CPUS={server_cpus}  # rank 0's task, hence its threads under server.threads: auto
echo "job ${{SLURM_JOB_ID}}: rank 0 on ${{SLURM_JOB_NODELIST_HET_GROUP_0}} with $SERVER_CPUS CPUs, \\
{n_clients} clients on ${{SLURM_JOB_NODELIST_HET_GROUP_1}}, {doing} $OUTPUT"
TRAIN=({train})
{restart}{run}"""

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


_SCRIPT_SETS = {"config_path": "--config", "output": "--output", "seed": "--seed", "resume": "--resume"}


def check_train_args(configs: Sequence[str | Path], train_args: Sequence[str], array: bool,
                     resumed: tuple[str, str] | None = None) -> None:
    """Parse ``train_args`` with ``huscf-mpi train``'s own parser and validate every config with them.

    Refuses what train would refuse (unknown options, bad values, a value out of range for the
    config) and the options the script sets itself: ``--config`` and ``--output`` always,
    ``--resume`` always (the script adds it on a restart; ``huscf-mpi slurm --resume`` renders
    one for a stopped run), ``--seed`` in an array job (``array``), where each task sets its own.

    Parameters
    ----------
    configs : sequence of str or Path
        The configs the script trains (none with ``resumed``).
    train_args : sequence of str
        The arguments after ``--``.
    array : bool
        Whether each array task sets its own ``--seed``.
    resumed : (str, str), optional
        For a ``--resume`` script: the ``--resume`` path as given and the stopped run's config
        YAML (from its manifest). The options must then leave that config as it is, as train
        requires of a resumed run.

    Raises
    ------
    ValueError
        One line starting with ``-- <option>`` (or ``--resume PATH`` for a config change).
    """
    import click
    from click.core import ParameterSource

    from .cli import train, train_overrides, usage_line
    from .config import ConfigError, load_config, resumed_config

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
        if param == "resume":
            raise ValueError(f"-- {given}: the script adds --resume itself when SLURM restarts the job; to continue "
                             "a stopped run, render its script with huscf-mpi slurm --resume PATH")
        if resumed is not None:
            if param == "seed":
                continue  # a seed equal to the stopped run's is harmless; resumed_config below checks it
            raise ValueError(f"-- {given}: a resumed run keeps the stopped run's config and result file "
                             f"(from its checkpoint); drop {option}")
        if array:
            raise ValueError(f"-- {given}: each array task sets its own --config, --seed and --output "
                             "(from --config and --array or --seeds); drop it")
        if param == "config_path":
            raise ValueError(f"-- {given}: the script sets --config itself; give the config as slurm --config")
        if param == "output":
            raise ValueError(f"-- {given}: the script sets --output itself (results/<job name>-<job id>.h5); "
                             "name the files with --job-name")
    overrides, options = train_overrides(ctx.params, prefix="-- ")
    if resumed is not None:
        try:
            resumed_config(resumed[1], f"--resume {resumed[0]}", None, overrides, options)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return
    for config in configs:
        try:
            load_config(config, overrides, options)
        except ConfigError as e:
            raise ValueError(str(e)) from None


def time_seconds(text: str) -> int:
    """Seconds of a checked SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM[:SS]``."""
    days, _, rest = text.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def check_signal_grace(grace, time: str) -> int:
    """``--signal-grace``: whole seconds, 0 (no signal, no requeue) up to SLURM's 65535, below ``time``.

    Raises
    ------
    ValueError
        One line naming ``--signal-grace`` and what to give instead.
    """
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= _MAX_GRACE:
        raise ValueError(f"--signal-grace {grace!r} is not valid; give the seconds between the warning signal and "
                         f"the time limit, e.g. {SIGNAL_GRACE} (at most {_MAX_GRACE}), or 0 for no signal and "
                         "no requeue")
    limit = time_seconds(time)
    if grace and limit and grace >= limit:
        raise ValueError(f"--signal-grace {grace}: the warning would come before the job starts (--time {time} is "
                         f"{limit} s); give fewer seconds than that, or 0 for no signal and no requeue")
    return grace


def _job_parts(grace: int, launch: str, array: bool, resume_dir: str | None = None,
               srun_step: bool = False) -> dict:
    """The pieces of a script that differ with ``grace`` (> 0: signals forwarded, requeue on USR1),
    for the template keys ``signal_directives``, ``traps``, ``restart`` and ``run``.

    ``array``: the requeue names the array task (``<array job id>_<task id>``; the array job id
    alone would requeue every task). ``resume_dir``: for a ``--resume`` script, which always
    resumes, the text naming the stopped run's directory in its error (" (/path)" or "").
    ``srun_step``: the run is one plain ``srun --mpi=pmi2`` step, whose leftovers in /dev/shm the
    script removes before a requeue (:data:`_SRUN_CLEANUP`)."""
    if resume_dir is not None:
        restart = _RESUMED.format(run_dir=resume_dir)
    else:
        restart = _RESTART.format(ids="array job and task ids" if array else "job id")
    if not grace:
        return dict(signal_directives=[], traps="", restart=restart, run=_RUN.format(launch=launch))
    job = '"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' if array else '"$SLURM_JOB_ID"'
    comment = "\n# The array task's own id: the array job id alone would requeue every task." if array else ""
    return dict(signal_directives=_SIGNAL_DIRECTIVES.format(grace=grace).splitlines(),
                traps=_TRAPS.format(grace=grace), restart=restart,
                run=_RUN_AND_REQUEUE.format(launch=launch, job=job, job_comment=comment,
                                            cleanup=_SRUN_CLEANUP if srun_step else ""))


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
                  script_path: str | Path | None = None, signal_grace: int = SIGNAL_GRACE) -> str:
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
    signal_grace : int, default 300
        Seconds before the time limit at which SLURM sends the batch shell USR1
        (``--signal=B:USR1@<grace>``, with ``--requeue``): the script passes it on to the run,
        which finishes its round and checkpoint and stops (so give more than a round takes),
        and requeues the job when the run left a checkpoint
        (unless ``HUSCF_REQUEUE=0`` in its environment). 0: no signal, no requeue, the launcher
        in the foreground. Either way a restarted job (same job id, same result path) resumes
        from its checkpoint. Must be below ``time``.

    Returns
    -------
    str
        The script.

    Raises
    ------
    ValueError
        Invalid config or argument (one line naming it), ``server_cpus`` without
        ``server_node``, ``server_node`` with ``array`` or ``seeds``, several configs without
        ``seeds``, configs of different rank counts in one array, or ``signal_grace`` not a
        whole number of seconds below ``time``.
    """
    configs = [config_path] if isinstance(config_path, (str, Path)) else list(config_path)
    time, signal_grace = _check_job(launcher, server_node, server_cpus, time, signal_grace)
    check_train_args(configs, train_args, array=array is not None or seeds is not None)
    if server_node and array is not None:
        raise ValueError(f"array {array!r}: SLURM cannot run a heterogeneous job (--server-node) as an array; "
                         f"submit one job per seed with -- --seed N")
    if not isinstance(config_path, (str, Path)):
        configs = list(config_path)
        if len(configs) == 1 and seeds is None:
            config_path = configs[0]  # the plain script, as for one path
        else:
            return _render_table(configs, seeds, ntasks, time, array, partition, job_name, launcher, nodes,
                                 overcommit, mem_per_cpu, server_node, train_args, command, script_path,
                                 signal_grace)
    if seeds is not None:
        return _render_table([config_path], seeds, ntasks, time, array, partition, job_name, launcher, nodes,
                             overcommit, mem_per_cpu, server_node, train_args, command, script_path, signal_grace)
    domains = clients_in(config_path)
    n_clients, k = sum(domains.values()), devices_in(config_path)
    if ntasks is None:
        ntasks = n_clients * k + 1
    if int(ntasks) != n_clients * k + 1:
        per = f" x {k} devices" if k > 1 else ""
        raise ValueError(f"--ntasks {ntasks}: {config_path} has {n_clients} clients{per}, so train needs "
                         f"{n_clients * k + 1} ranks (1 server + {n_clients}{per}); omit --ntasks to use that")
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
    common = dict(command=command or f"render_sbatch({str(config_path)!r}, ...)", submit_dir=_PROJECT_DIR,
                  script_hint=str(script_path) if script_path else "<this script>", job_name=name, time=time,
                  log=log, output=output, doing="writing",
                  train=f'huscf-mpi train --config {shlex.quote(str(config_path))} --output "$OUTPUT"'
                        + "".join(" " + a for a in train_args))
    if server_node:
        return _render_server_node(common, ranks_text, directives, partition, int(ntasks) - 1, ntasks, launcher,
                                   server_cpus, signal_grace)
    if array is not None:
        ranks_text += f", one run per seed {array}"
    return _render_plain(common, ranks_text, ntasks, directives, launcher, signal_grace, array=array is not None)


def _check_job(launcher: str, server_node: bool, server_cpus: int | None, time: str, signal_grace) -> tuple[str, int]:
    """The checks :func:`render_sbatch` and :func:`render_resume` share; returns the checked
    ``(time, signal_grace)``. Raises ``ValueError`` (one line naming the argument)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"launcher {launcher!r}: choose {' or '.join(LAUNCHERS)}")
    if server_cpus is not None:
        if not server_node:
            raise ValueError(f"server-cpus {server_cpus!r}: only with --server-node (rank 0 on its own node)")
        if isinstance(server_cpus, bool) or not isinstance(server_cpus, int) or server_cpus < 1:
            raise ValueError(f"server-cpus {server_cpus!r} is not valid; e.g. 64 (rank 0's CPUs on its node)")
    time = _check(time, _TIME, "time", "01:30:00 or 2-00:00:00")
    return time, check_signal_grace(signal_grace, time)


def _launch(launcher: str) -> str:
    """The launcher line of a one-step script (not a heterogeneous job's)."""
    return "srun --mpi=pmi2" if launcher == "srun" else 'mpiexec -n "$SLURM_NTASKS"'


def _render_plain(common: dict, ranks_text: str, ntasks: int, directives: list[str], launcher: str,
                  signal_grace: int, array: bool, resume_dir: str | None = None) -> str:
    """:data:`_TEMPLATE` (one job, one launcher step) for :func:`render_sbatch` and :func:`render_resume`."""
    parts = _job_parts(signal_grace, _launch(launcher), array=array, resume_dir=resume_dir,
                       srun_step=launcher == "srun")
    directives = directives + parts.pop("signal_directives")
    return _TEMPLATE.format(
        ranks_text=ranks_text, ntasks=ntasks,
        extra_directives="\n".join(directives) + ("\n" if directives else ""), **parts, **common)


def render_resume(resume: str | Path, ntasks: int | None = None, time: str = "24:00:00",
                  partition: str | None = None, job_name: str | None = None, launcher: str = "mpiexec",
                  nodes: int | str | None = None, overcommit: bool = False, mem_per_cpu: str | None = None,
                  server_node: bool = False, server_cpus: int | None = None, train_args: Sequence[str] = (),
                  command: str | None = None, script_path: str | Path | None = None,
                  signal_grace: int = SIGNAL_GRACE) -> str:
    """Text of a SLURM batch script that continues a stopped run: ``huscf-mpi train --resume``.

    The script asks for the stopped run's rank count, runs ``huscf-mpi train --resume
    <its .partial>`` (the config and result path are the stopped run's, from the checkpoint
    manifest) and, with ``signal_grace`` > 0, forwards the wall-time signal and requeues itself
    as :func:`render_sbatch`'s scripts do; each start resumes the same ``.partial``.

    Parameters
    ----------
    resume : str or Path
        The stopped run's ``<output>.partial``, its ``<output>.ckpt`` folder or that folder's
        ``manifest.json`` (:func:`huscf_mpi.checkpoint.files.find`). The result path recorded
        in the manifest is written into the script; when relative, it is relative to the
        directory the run was started in, which is where the script must be submitted from.
    ntasks : int, optional
        Must equal the manifest's rank count (the default).
    job_name : str, optional
        Default: the result file's stem (e.g. ``scenario6-1234``); names the job and its log.
    train_args : sequence of str
        Extra ``huscf-mpi train`` arguments; only those that keep the stopped run's config
        (e.g. ``--data-root``, ``--busy-wait``): a resumed run cannot change it.
    time, partition, launcher, nodes, overcommit, mem_per_cpu, server_node, server_cpus, \
    command, script_path, signal_grace
        As for :func:`render_sbatch`.

    Returns
    -------
    str
        The script.

    Raises
    ------
    ValueError
        No checkpoint at ``resume``, ``ntasks`` not the stopped run's rank count, or an invalid
        argument (one line naming it).
    """
    from .checkpoint.files import find

    time, signal_grace = _check_job(launcher, server_node, server_cpus, time, signal_grace)
    root, manifest = find(resume)
    if ntasks is not None and int(ntasks) != manifest.ranks:
        raise ValueError(f"--ntasks {ntasks}: the run at --resume {resume} was stopped with {manifest.ranks} MPI "
                         f"ranks and continues with as many; omit --ntasks")
    check_train_args([], train_args, array=False, resumed=(str(resume), manifest.config_yaml))
    partial = Path(manifest.result)
    output = partial.with_name(partial.name.removesuffix(".partial"))
    name = _NAME.sub("-", job_name or output.stem).strip("-") or "huscf"
    run_dir = _run_dir(root, partial)
    where = f" ({run_dir})" if run_dir else ""
    directives = _directives(None, partition, nodes, overcommit, mem_per_cpu)
    ranks_text = (f"{manifest.ranks} MPI ranks: continues the stopped run {manifest.result} from its "
                  f"checkpoint after round {manifest.round}")
    common = dict(command=command or f"render_resume({str(resume)!r}, ...)",
                  submit_dir=_PROJECT_DIR if partial.is_absolute() else f"the directory the stopped run was started "
                                                                        f"in{where}",
                  script_hint=str(script_path) if script_path else "<this script>", job_name=name, time=time,
                  log="results/%x-%j.out", output=_in_double_quotes(str(output)), doing="continuing",
                  train='huscf-mpi train --resume "$OUTPUT.partial"' + "".join(" " + shlex.quote(a)
                                                                               for a in train_args))
    if server_node:
        return _render_server_node(common, ranks_text, directives, partition, manifest.ranks - 1, manifest.ranks,
                                   launcher, server_cpus, signal_grace, resume_dir=where)
    return _render_plain(common, ranks_text, manifest.ranks, directives, launcher, signal_grace, array=False,
                         resume_dir=where)


def _in_double_quotes(text: str) -> str:
    """``text`` escaped for a bash double-quoted string (the scripts' ``OUTPUT="..."``)."""
    return re.sub(r'([\\"$`])', r"\\\1", text)


def _run_dir(root: Path, partial: Path) -> str:
    """The directory a stopped run was started in: where its relative result path ``partial``
    leads to the checkpoint folder ``root``; "" for an absolute path, or when that cannot be told."""
    where = Path(root).resolve().parent
    if partial.is_absolute():
        return ""
    for part in reversed(partial.parent.parts):
        if part != where.name:
            return ""
        where = where.parent
    return str(where)


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
                  command: str | None, script_path: str | Path | None, signal_grace: int) -> str:
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
    default = Path(configs[0]).stem if len(configs) == 1 else "compare"
    name = _NAME.sub("-", job_name or default).strip("-") or "huscf"
    n_tasks = len(configs) * len(seed_list)
    directives = _directives(f"0-{n_tasks - 1}", partition, nodes, overcommit, mem_per_cpu)
    plural = "s" if len(seed_list) > 1 else ""
    per = f" x {(n_ranks - 1) // n_clients} devices" if n_ranks - 1 != n_clients else ""
    ranks_text = (f"{ntasks} MPI ranks per run (1 server + {n_clients} clients{per}), {len(configs)} "
                  f"config{'s' if len(configs) > 1 else ''} x {len(seed_list)} seed{plural}: "
                  f"one array job of {n_tasks} runs")
    parts = _job_parts(signal_grace, _launch(launcher), array=True, srun_step=launcher == "srun")
    directives += parts.pop("signal_directives")
    return _TABLE_TEMPLATE.format(
        ranks_text=ranks_text, command=command or f"render_sbatch({[str(c) for c in configs]!r}, ...)",
        submit_dir=_PROJECT_DIR, script_hint=str(script_path) if script_path else "<this script>", job_name=name,
        ntasks=ntasks, time=time, log="results/%x-%A_%a.out", extra_directives="\n".join(directives) + "\n",
        table=seed_table(configs, names, seed_list, notes),
        output=f"results/{name}-${{SLURM_ARRAY_JOB_ID}}-${{NAME}}-s${{SEED}}.h5",
        train='huscf-mpi train --config "$CONFIG" --output "$OUTPUT" --seed "$SEED"'
              + "".join(" " + shlex.quote(a) for a in train_args), **parts)


def _render_server_node(common: dict, ranks_text: str, client_directives: list[str], partition: str | None,
                        n_clients: int, ntasks: int, launcher: str, server_cpus: int | None, signal_grace: int,
                        resume_dir: str | None = None) -> str:
    """The heterogeneous-job script of :func:`render_sbatch` and :func:`render_resume` (``server_node=True``).

    ``client_directives`` are the checked ``--partition``/``--nodes``/``--overcommit``/
    ``--mem-per-cpu`` lines, which go to component 1 (the clients); component 0 repeats the
    partition only, since SLURM does not carry it over from one component to the next. The
    signal and requeue lines go to component 0, whose options hold for the whole job.
    ``resume_dir``: for a ``--resume`` script, as :func:`_job_parts` takes it (None otherwise).
    """
    launch = (_HET_SRUN if launcher == "srun" else _HET_MPIEXEC).format(n_clients=n_clients, ntasks=ntasks)
    parts = _job_parts(signal_grace, launch, array=False, resume_dir=resume_dir)
    server = ([f"#SBATCH --partition={partition}"] if partition else []) + [
        "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --exclusive", "#SBATCH --mem=0"]
    if server_cpus is not None:
        server.append(f"#SBATCH --cpus-per-task={server_cpus}")
    server += parts.pop("signal_directives")
    clients = [f"#SBATCH --ntasks={n_clients}", "#SBATCH --cpus-per-task=1"]
    clients[:0] = [d for d in client_directives if d.startswith("#SBATCH --partition=")]
    clients += [d for d in client_directives if not d.startswith("#SBATCH --partition=")]
    return _HET_TEMPLATE.format(
        ranks_text=ranks_text + ", rank 0 on a node of its own", n_clients=n_clients,
        server_cpus=server_cpus if server_cpus is not None else '"${SLURM_CPUS_ON_NODE:-$(nproc)}"',
        server_cpus_text=f"{server_cpus}, from --server-cpus" if server_cpus is not None else "all CPUs of its node",
        server_directives="\n".join(server), client_directives="\n".join(clients), **parts, **common)
