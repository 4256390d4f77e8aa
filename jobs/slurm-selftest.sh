#!/usr/bin/env bash
# Real SLURM test: bring up a one-node SLURM (munged + slurmctld + slurmd) on this machine,
# submit a tiny `huscf-mpi train` job rendered by `huscf-mpi slurm` through sbatch, and check
# that its HDF5 result file appears, is complete and records the SLURM job id.
#
# Usage (from anywhere; the project is this script's parent directory):
#     sudo jobs/slurm-selftest.sh                 # both launchers: mpiexec, then srun --mpi=pmi2
#     sudo HUSCF_SELFTEST_LAUNCHERS=mpiexec jobs/slurm-selftest.sh
#
# Needs root (apt-get install slurm-wlm munge when missing, daemons running as root); as
# another user it prints "SKIP: ..." and exits 0. Needs the project's .venv (run `make`) and
# the data at ./data (or $HUSCF_DATA_ROOT). Everything else lives in a temporary directory
# that is removed afterwards; daemons use private ports and a private munge socket and key,
# so a SLURM or munge already running on the machine is left alone. Prints
# "SLURM selftest: PASS" (exit 0) or "SLURM selftest: FAIL: <why>" (exit 1).
#
# Environment:
#     HUSCF_SELFTEST_LAUNCHERS   launchers to test, in order (default "mpiexec srun")
#     HUSCF_SELFTEST_TIMEOUT     give up after this many seconds in all (default 900)
#     HUSCF_SELFTEST_KEEP=1      keep the temporary directory (logs, result files)
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCHERS="${HUSCF_SELFTEST_LAUNCHERS:-mpiexec srun}"
TIMEOUT="${HUSCF_SELFTEST_TIMEOUT:-900}"
T0=$SECONDS
DEADLINE=$((T0 + TIMEOUT))

say() { echo "[slurm-selftest $((SECONDS - T0))s] $*"; }
fail() {
    echo "SLURM selftest: FAIL: $*"
    for log in "${WORK:-/nonexistent}"/*.log "${WORK:-/nonexistent}"/results/*.out; do
        # Progress bars end lines with \r: split them so the tail shows the last messages.
        [ -f "$log" ] && { echo "---- tail of $log"; tr '\r' '\n' <"$log" | grep -v '^ *$' | tail -n 25; }
    done
    exit 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: the SLURM selftest needs root (it installs slurm-wlm and munge and runs their daemons as root)"
    exit 0
fi
[ -x "$REPO/.venv/bin/huscf-mpi" ] || fail "no $REPO/.venv/bin/huscf-mpi; run make first"
DATA="${HUSCF_DATA_ROOT:-$REPO/data}"
[ -d "$DATA/mnist" ] || fail "no MNIST under $DATA; put the data at ./data or set HUSCF_DATA_ROOT"
DATA="$(cd "$DATA" && pwd)"

# ---------------------------------------------------------------------------- install
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    install() { timeout 240 apt-get install -y -qq --no-install-recommends slurm-wlm munge >"$1" 2>&1; }
    # Try from the current package lists first; refresh them only if that fails (saves ~20 s).
    if ! install /tmp/huscf-selftest-apt.log; then
        timeout 90 apt-get update -qq >/dev/null 2>&1
        install /tmp/huscf-selftest-apt.log || { tail -n 20 /tmp/huscf-selftest-apt.log; fail "apt-get install slurm-wlm munge failed"; }
    fi
fi
say "$(slurmctld -V 2>&1), $(munged -V 2>&1 | head -n 1)"

# ---------------------------------------------------------------------------- daemons
WORK="$(mktemp -d /tmp/huscf-slurm-selftest.XXXXXX)"
chmod 700 "$WORK"
PIDS=()
cleanup() {
    local pid
    # Jobs of this private cluster first (SLURM_CONF is ours), so no slurmstepd outlives slurmd.
    if [ -n "${SLURM_CONF:-}" ] && [ "${#PIDS[@]}" -gt 0 ]; then
        scancel --quiet --user=root 2>/dev/null && sleep 1
    fi
    for pid in "${PIDS[@]}"; do  # only the daemons this script started, newest first
        kill "$pid" 2>/dev/null
    done
    sleep 1
    for pid in "${PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    done
    if [ "${HUSCF_SELFTEST_KEEP:-0}" = 1 ]; then
        echo "[slurm-selftest] kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() {
    "$REPO/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}
HOST="$(hostname -s)"
CTLD_PORT="$(free_port)"
SLURMD_PORT="$(free_port)"
while [ "$SLURMD_PORT" = "$CTLD_PORT" ]; do SLURMD_PORT="$(free_port)"; done
mkdir -p "$WORK/state" "$WORK/spool" "$WORK/results"

# A private munge key and socket, so a munged the machine already runs is not disturbed.
dd if=/dev/urandom of="$WORK/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge.key"
munged --foreground --force --socket="$WORK/munge.sock" --key-file="$WORK/munge.key" \
    --log-file="$WORK/munged.log" --pid-file="$WORK/munged.pid" --seed-file="$WORK/munged.seed" \
    >"$WORK/munged.out" 2>&1 &
PIDS=("$!" "${PIDS[@]}")

cat >"$WORK/slurm.conf" <<EOF
# One-node SLURM for jobs/slurm-selftest.sh
ClusterName=huscfselftest
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$WORK/munge.sock
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=selftest Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$WORK/slurm.conf"

for _ in $(seq 50); do [ -S "$WORK/munge.sock" ] && break; sleep 0.2; done
[ -S "$WORK/munge.sock" ] || fail "munged did not start"
slurmctld -D -f "$SLURM_CONF" >"$WORK/slurmctld.out" 2>&1 &
PIDS=("$!" "${PIDS[@]}")
slurmd -D -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 &
PIDS=("$!" "${PIDS[@]}")

state=""
for _ in $(seq 60); do
    state="$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n 1)"
    case "$state" in idle*|mix*|alloc*) break ;; esac
    sleep 1
done
case "$state" in idle*|mix*|alloc*) ;; *) fail "node $HOST not ready (state '${state:-none}')" ;; esac
say "slurmctld (port $CTLD_PORT) and slurmd (port $SLURMD_PORT) up, node $HOST: $state, $(nproc) CPUs"

# ---------------------------------------------------------------------------- the job
# Submitted from $WORK (results land there, not in the checkout); the venv and data come
# from the project through HUSCF_VENV and a data link, as a user's own job would.
ln -s "$DATA" "$WORK/data"
cat >"$WORK/selftest.yaml" <<EOF
name: selftest
data: {domains: {mnist: 2}, max_samples_per_client: 256}
model: {width: 0.25}
training: {rounds: 1, local_epochs: 1, iterations_per_epoch: 3}
cuts: [2, 4, 1, 5]
evaluation: {generation_samples: 100, synthetic_samples: 200, synthetic_epochs: 1, classifier_epochs: 1}
EOF
export HUSCF_VENV="$REPO/.venv"

for launcher in $LAUNCHERS; do
    name="selftest-$launcher"
    (cd "$WORK" && "$REPO/.venv/bin/huscf-mpi" slurm --config selftest.yaml --ntasks 3 --time 00:15:00 \
        --nodes 1 --overcommit --launcher "$launcher" --job-name "$name" --out "$name.sbatch") \
        || fail "huscf-mpi slurm could not render the $launcher job"
    job="$(cd "$WORK" && sbatch --parsable "$name.sbatch" 2>"$WORK/sbatch.err")" \
        || fail "sbatch refused the $launcher job: $(cat "$WORK/sbatch.err")"
    job="${job%%;*}"
    say "submitted $name.sbatch as job $job"
    jstate=""
    while [ $SECONDS -lt $DEADLINE ]; do
        jstate="$(scontrol show job "$job" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)"
        case "$jstate" in PENDING|CONFIGURING|RUNNING|COMPLETING|"") sleep 2 ;; *) break ;; esac
    done
    case "$jstate" in
        COMPLETED) ;;
        PENDING|CONFIGURING|RUNNING|COMPLETING|"")
            scancel "$job" 2>/dev/null
            fail "job $job ($launcher) still ${jstate:-unknown} when the ${TIMEOUT}s budget ran out" ;;
        *) fail "job $job ($launcher) ended $jstate" ;;
    esac
    result="$WORK/results/$name-$job.h5"
    "$REPO/.venv/bin/python" - "$result" "$job" <<'EOF' || fail "result check failed for job $job ($launcher)"
import sys
from huscf_mpi.results import ResultFile

path, job = sys.argv[1], sys.argv[2]
with ResultFile(path) as rf:  # raises unless the file exists and the run completed
    prov = rf.provenance
    assert rf.complete, f"{path}: status {rf.status}"
    assert str(prov.get("slurm_job_id")) == job, f"provenance slurm_job_id {prov.get('slurm_job_id')!r} != {job}"
    assert prov.get("n_ranks") == 3, f"n_ranks {prov.get('n_ranks')} != 3"
    assert len(rf.rounds()) == 1 and rf.final(), "no rounds or final metrics"
    print(f"  {path}: complete, slurm_job_id {prov['slurm_job_id']}, {prov['n_ranks']} ranks on "
          f"{sorted(set(prov['hosts']))}, {prov['mpi_library']}")
EOF
    say "job $job ($launcher): result file complete and carries the job id"
done

echo "SLURM selftest: PASS ($LAUNCHERS, $((SECONDS - T0)) s)"
