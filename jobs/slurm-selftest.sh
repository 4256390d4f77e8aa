#!/usr/bin/env bash
# Real SLURM test: bring up a one-node SLURM (munged + slurmctld + slurmd) on this machine,
# submit a tiny `huscf-mpi train` job rendered by `huscf-mpi slurm` through sbatch, and check
# that its HDF5 result file appears, is complete and records the SLURM job id.
#
# Then cut and resume (issue 11): a longer job A, submitted with HUSCF_REQUEUE=0, is sent USR1
# (`scancel --signal=USR1 --batch`, what SLURM sends --signal-grace seconds before the time
# limit) after its first checkpoint; it must stop with its result at <output>.partial, status
# "interrupted". Job B, rendered by `huscf-mpi slurm --resume <that .partial>`, must finish it
# (complete, /resumes rows for A and B, checkpoint folder gone). Job C is cut the same way
# without HUSCF_REQUEUE=0 and must requeue itself and complete under its own job id (/resumes:
# SLURM_RESTART_COUNT 0, then 1).
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
#     HUSCF_SELFTEST_CUT         launchers for the cut-and-resume jobs (default "mpiexec"; "" skips them)
#     HUSCF_SELFTEST_TIMEOUT     give up after this many seconds in all (default 900)
#     HUSCF_SELFTEST_KEEP=1      keep the temporary directory (logs, result files)
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCHERS="${HUSCF_SELFTEST_LAUNCHERS:-mpiexec srun}"
CUT_LAUNCHERS="${HUSCF_SELFTEST_CUT-mpiexec}"
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
    # Then wait for them to end: slurmstepd kills what ignores TERM only after KillWait (ranks stuck
    # in MPI_Init do), and killing slurmd first would leave those running.
    if [ -n "${SLURM_CONF:-}" ] && [ "${#PIDS[@]}" -gt 0 ]; then
        if scancel --quiet --user=root 2>/dev/null; then
            for _ in $(seq 20); do
                [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
                sleep 1
            done
        fi
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
# Jobs may be requeued (the default, stated here because the cut-and-resume jobs rely on it);
# KillWait: seconds between TERM and KILL when a job ends or is requeued (default 30).
JobRequeue=1
KillWait=10
# Job ids start elsewhere in every run of this test: under srun --mpi=pmi2, MPICH names its
# shared-memory files in /dev/shm from the PMI job id "<job id>.<step>", ranks that srun SIGKILLs
# (the others, when rank 0 aborts) leave theirs, and a rank that finds one hangs in MPI_Init.
# The scripts remove them after a failed srun step, but a run of this test that was itself killed
# cannot, and with ids 1, 2, ... in every run the next run's jobs would meet them.
FirstJobId=$(( $(date +%s) % 1000000 * 50 + 1000 ))
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

job_field() {  # job_field JOB FIELD: a field of `scontrol show job` (JobState, Reason, ExitCode, Restarts)
    scontrol show job "$1" -o 2>/dev/null | grep -o "\b$2=[^ ]*" | head -n 1 | cut -d= -f2
}

# wait_job JOB LABEL: wait until JOB has ended, leaving its final state in $JSTATE. SLURM holds a
# requeued job for about 2 minutes (Reason=BeginTime) before starting it again, to let the old
# run's nodes clean up; here the one node is idle again within seconds, so the job is started
# then. Not at once: a restart in the second its old credential was revoked is killed ("Job
# credential revoked", seen here).
wait_job() {
    JSTATE=""
    local held=0
    while [ $SECONDS -lt $DEADLINE ]; do
        JSTATE="$(job_field "$1" JobState)"
        case "$JSTATE" in PENDING|CONFIGURING|RUNNING|COMPLETING|REQUEUED|"") ;; *) return 0 ;; esac
        if [ "$JSTATE" = PENDING ] && [ "$(job_field "$1" Reason)" = BeginTime ]; then
            held=$((held + 1))
            if [ "$held" -ge 3 ] && [ "$(sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n 1)" = idle ]; then
                scontrol update JobId="$1" StartTime=now 2>/dev/null
            fi
        fi
        sleep 2
    done
    scancel "$1" 2>/dev/null
    fail "job $1 ($2) still ${JSTATE:-unknown} when the ${TIMEOUT}s budget ran out"
}

# wait_log JOB LOG TEXT: wait until the job's log shows TEXT (fails if the job ends first).
wait_log() {
    while [ $SECONDS -lt $DEADLINE ]; do
        [ -f "$2" ] && grep -q "$3" "$2" && return 0
        case "$(job_field "$1" JobState)" in
            PENDING|CONFIGURING|RUNNING|"") sleep 1 ;;
            *) fail "job $1 ended ($(job_field "$1" JobState)) before its log showed '$3'" ;;
        esac
    done
    scancel "$1" 2>/dev/null
    fail "job $1: its log did not show '$3' within the ${TIMEOUT}s budget"
}

submit() {  # submit SCRIPT LABEL [ENV ARGS...]: `env ENV ARGS sbatch SCRIPT` in $WORK; the job id in $JOB
    local script="$1" label="$2"
    shift 2
    JOB="$(cd "$WORK" && env "$@" sbatch --parsable "$script" 2>"$WORK/sbatch.err")" \
        || fail "sbatch refused the $label job: $(cat "$WORK/sbatch.err")"
    JOB="${JOB%%;*}"
    say "submitted $script as job $JOB${*:+ ($*)}"
}

for launcher in $LAUNCHERS; do
    name="selftest-$launcher"
    (cd "$WORK" && "$REPO/.venv/bin/huscf-mpi" slurm --config selftest.yaml --ntasks 3 --time 00:15:00 \
        --nodes 1 --overcommit --launcher "$launcher" --job-name "$name" --out "$name.sbatch") \
        || fail "huscf-mpi slurm could not render the $launcher job"
    submit "$name.sbatch" "$launcher"
    job="$JOB"
    wait_job "$job" "$launcher"
    [ "$JSTATE" = COMPLETED ] || fail "job $job ($launcher) ended $JSTATE"
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

# ---------------------------------------------------------------------------- cut and resume
# check_run RESULT STATUS JOBS RESTARTS: the result file (or its .partial) has STATUS and one
# /resumes row per start: job ids JOBS and SLURM_RESTART_COUNTs RESTARTS (comma-separated),
# round 0 first and >= 1 after; a complete one has all 4 rounds, once each, and final metrics.
check_run() {
    "$REPO/.venv/bin/python" - "$@" <<'EOF'
import sys
from huscf_mpi.results import ResultFile

path, status, jobs, restarts = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
with ResultFile(path, allow_incomplete=True) as rf:
    assert rf.status == status, f"{rf.path}: status {rf.status}, expected {status}"
    starts = rf.table("resumes")
    ids = [j.decode() if isinstance(j, bytes) else str(j) for j in starts["slurm_job_id"]]
    assert ids == jobs, f"{rf.path}: /resumes slurm_job_id {ids}, expected {jobs}"
    counts = [str(int(c)) for c in starts["slurm_restart_count"]]
    assert counts == restarts, f"{rf.path}: /resumes slurm_restart_count {counts}, expected {restarts}"
    rounds = [int(r) for r in starts["round"]]
    assert rounds[0] == 0 and all(r >= 1 for r in rounds[1:]), f"{rf.path}: /resumes round {rounds}"
    assert all(int(r) == 3 for r in starts["ranks"]), f"{rf.path}: /resumes ranks {list(starts['ranks'])}"
    if status == "complete":
        done = list(rf.rounds()["round"]) if "round" in rf.rounds() else list(range(len(rf.rounds())))
        assert len(done) == 4 and len(set(done)) == 4 and rf.final(), f"{rf.path}: rounds {done}, or no final metrics"
    print(f"  {rf.path}: {rf.status}; starts at rounds {rounds}, job ids {ids}, restart counts {counts}")
EOF
}

# cut_job JOB LOG: once JOB's log shows its first checkpoint, send its batch shell USR1 (what SLURM sends
# --signal-grace seconds before the time limit) and wait for the job to end ($JSTATE).
cut_job() {
    wait_log "$1" "$2" "checkpoint after round 1"
    scancel --signal=USR1 --batch "$1" || fail "scancel --signal=USR1 --batch $1 failed"
    say "job $1: checkpoint after round 1 logged; sent USR1 to its batch shell"
    wait_job "$1" "$launcher cut"
}

for launcher in $CUT_LAUNCHERS; do
    # 4 rounds of ~5 s on 2 cores: still training when the first checkpoint is logged and cut.
    name="selftest-cut-$launcher"
    (cd "$WORK" && "$REPO/.venv/bin/huscf-mpi" slurm --config selftest.yaml --ntasks 3 --time 00:15:00 \
        --nodes 1 --overcommit --launcher "$launcher" --job-name "$name" --out "$name.sbatch" \
        -- --rounds 4 --iterations-per-epoch 25) || fail "huscf-mpi slurm could not render the $launcher cut job"

    # A: cut after its first checkpoint, not requeued (HUSCF_REQUEUE=0): stopped, resumable.
    submit "$name.sbatch" "$launcher cut A" HUSCF_REQUEUE=0
    a="$JOB"
    cut_job "$a" "$WORK/results/$name-$a.out"
    # The launcher's code: mpiexec 138 (rank 0's MPI_Abort after USR1), srun 137 (the ranks it killed).
    [ "$JSTATE" = FAILED ] && [[ "$(job_field "$a" ExitCode)" == 13[78]:0 ]] \
        || fail "job $a ($launcher) ended $JSTATE, exit $(job_field "$a" ExitCode); expected FAILED, 138 or 137"
    grep -q "not requeued (HUSCF_REQUEUE=0)" "$WORK/results/$name-$a.out" || fail "job $a: no 'not requeued' line"
    [ -f "$WORK/results/$name-$a.h5.ckpt/manifest.json" ] || fail "job $a left no checkpoint manifest"
    check_run "$WORK/results/$name-$a.h5.partial" interrupted "$a" 0 || fail "job $a: stopped result check failed"
    say "job $a ($launcher): stopped by USR1 (exit $(job_field "$a" ExitCode)), result interrupted with a checkpoint," \
        "not requeued"

    # B: huscf-mpi slurm --resume renders the continuation; it completes A's file.
    (cd "$WORK" && "$REPO/.venv/bin/huscf-mpi" slurm --resume "results/$name-$a.h5.partial" --time 00:15:00 \
        --nodes 1 --overcommit --launcher "$launcher" --out "$name-resume.sbatch") \
        || fail "huscf-mpi slurm --resume could not render the continuation of job $a"
    submit "$name-resume.sbatch" "$launcher resume B"
    b="$JOB"
    wait_job "$b" "$launcher resume B"
    [ "$JSTATE" = COMPLETED ] || fail "job $b ($launcher, resuming job $a) ended $JSTATE"
    check_run "$WORK/results/$name-$a.h5" complete "$a,$b" 0,0 || fail "job $b: resumed result check failed"
    [ ! -e "$WORK/results/$name-$a.h5.ckpt" ] && [ ! -e "$WORK/results/$name-$a.h5.partial" ] \
        || fail "job $b completed but left $name-$a.h5.ckpt or .partial"
    say "job $b ($launcher): continued job $a's run to a complete file; checkpoint folder removed"

    # C: cut the same way, but requeued by its own script; its restart resumes and completes.
    submit "$name.sbatch" "$launcher cut C" -u HUSCF_REQUEUE
    c="$JOB"
    cut_job "$c" "$WORK/results/$name-$c.out"
    [ "$JSTATE" = COMPLETED ] && [ "$(job_field "$c" Restarts)" = 1 ] \
        || fail "job $c ($launcher) ended $JSTATE after $(job_field "$c" Restarts) restarts; expected COMPLETED after 1"
    grep -q "and requeued; its next start resumes" "$WORK/results/$name-$c.out" \
        && grep -q "restart 1, resuming results/$name-$c.h5.partial" "$WORK/results/$name-$c.out" \
        || fail "job $c: its log (both starts, --open-mode=append) lacks the requeue or the resume line"
    check_run "$WORK/results/$name-$c.h5" complete "$c,$c" 0,1 || fail "job $c: requeued result check failed"
    [ ! -e "$WORK/results/$name-$c.h5.ckpt" ] || fail "job $c completed but left $name-$c.h5.ckpt"
    say "job $c ($launcher): requeued itself after USR1 and completed on its restart under the same job id"
done

echo "SLURM selftest: PASS ($LAUNCHERS${CUT_LAUNCHERS:+; cut and resume: $CUT_LAUNCHERS}, $((SECONDS - T0)) s)"
