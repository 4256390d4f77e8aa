"""Wall-time signals, requeue and resume in the rendered SLURM scripts (issue 11, point 5).

Two kinds of test: the rendered text (directives, trap, forward, requeue, the resume line, bad
input), and the scripts' bash logic run for real under stand-ins for mpiexec, srun and scontrol
(no SLURM needed): a signal sent to the batch shell reaches the launcher, a run stopped after a
checkpoint requeues the job (not with HUSCF_REQUEUE=0, not after a TERM), the exit codes, and a
restart adds --resume. jobs/slurm-selftest.sh checks the same against a real SLURM.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from huscf_mpi.checkpoint.files import Manifest, write_manifest
from huscf_mpi.cli import main
from huscf_mpi.slurm import check_signal_grace, render_resume, render_sbatch, time_seconds

from .conftest import header_argv, rendered_by

needs_bash = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")

SIGNAL_LINES = ["#SBATCH --signal=B:USR1@300", "#SBATCH --requeue", "#SBATCH --open-mode=append"]
RESTART = 'TRAIN+=(--resume "$OUTPUT.partial")'


def _cfg(tmp_path: Path, clients: int = 2, name: str = "scen") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"data": {"domains": {"mnist": clients}}, "seed": 3}))
    return path


def _stopped_run(tmp_path: Path, name: str = "run-7", ranks: int = 3, rounds_done: int = 2) -> Path:
    """A stopped run's files under tmp_path/results: the .partial and a checkpoint manifest (no rank files:
    rendering and the scripts read the manifest only). Returns the .partial path, relative to tmp_path."""
    config = yaml.safe_dump({"name": "run", "data": {"domains": {"mnist": ranks - 1}}, "seed": 3,
                             "training": {"rounds": 4}})
    partial = Path("results") / f"{name}.h5.partial"
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / partial).write_bytes(b"")
    write_manifest(tmp_path / "results" / f"{name}.h5.ckpt", Manifest(
        round=rounds_done, ranks=ranks, result=str(partial), config_yaml=config, config_hash="", schema_version=1,
        bytes=[0] * ranks, seconds=0.0, written="2025-01-01T00:00:00Z"))
    return partial


def _directives(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]


def _bash_ok(tmp_path: Path, text: str) -> None:
    script = tmp_path / "check.sbatch"
    script.write_text(text)
    res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------ rendered text

@needs_bash
@pytest.mark.parametrize("kind", ["plain", "array", "table", "server-node-mpiexec", "server-node-srun", "srun"])
def test_every_template_forwards_and_requeues(tmp_path, kind):
    cfg = _cfg(tmp_path)
    text = {"plain": lambda: render_sbatch(cfg),
            "srun": lambda: render_sbatch(cfg, launcher="srun"),
            "array": lambda: render_sbatch(cfg, array="0-4"),
            "table": lambda: render_sbatch([cfg, _cfg(tmp_path, name="other")], seeds="0-1"),
            "server-node-mpiexec": lambda: render_sbatch(cfg, server_node=True),
            "server-node-srun": lambda: render_sbatch(cfg, server_node=True, launcher="srun")}[kind]()
    lines = text.splitlines()
    directives = _directives(text)
    for line in SIGNAL_LINES:
        assert line in directives, line
    if kind.startswith("server-node"):  # component 0's options hold for the whole job
        assert directives.index(SIGNAL_LINES[-1]) < directives.index("#SBATCH hetjob")
    for line in ("trap 'forward USR1' USR1", "trap 'forward TERM' TERM",
                 '    if [ -n "$LAUNCHER" ]; then kill -s "$1" "$LAUNCHER" 2>/dev/null || true; '
                 'else PENDING="$1"; fi',
                 '    "${TRAIN[@]}" &', "LAUNCHER=$!", '    wait "$LAUNCHER" || status=$?',
                 '    if [ "${HUSCF_REQUEUE:-1}" = 0 ]; then', "        exit 0", 'exit "$status"',
                 'if [ -f "$OUTPUT.ckpt/manifest.json" ] && [ -f "$OUTPUT.partial" ]; then', "    " + RESTART):
        assert line in lines, line
    # the traps come before anything that takes time (venv, the table), so no signal is lost
    assert lines.index("trap 'forward USR1' USR1") < lines.index('VENV="${HUSCF_VENV:-.venv}"')
    array = kind in ("array", "table")
    job = '"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' if array else '"$SLURM_JOB_ID"'
    assert f"    elif scontrol requeue {job}; then" in lines
    assert ("array job and task ids" in text) == array
    assert ("rm -f /dev/shm/mpich_shm_" in text) == (kind == "srun")  # a plain srun step's leftovers
    assert text.count("TRAIN=(huscf-mpi train --config") == 1  # a fresh run: --resume only on a restart
    assert "--resume" not in text.split("TRAIN=(")[1].split(")")[0]
    _bash_ok(tmp_path, text)


@needs_bash
def test_signal_grace_zero_is_the_plain_foreground_script(tmp_path):
    text = render_sbatch(_cfg(tmp_path), array="0-1", signal_grace=0)
    assert not any(line in text for line in SIGNAL_LINES)
    for gone in ("trap", "scontrol", "LAUNCHER", "HUSCF_REQUEUE", " &\n"):
        assert gone not in text, gone
    assert 'mpiexec -n "$SLURM_NTASKS" \\\n    "${TRAIN[@]}"\n' in text
    assert RESTART in text  # SLURM may still requeue it (node failure): the restart resumes
    _bash_ok(tmp_path, text)
    text = render_sbatch(_cfg(tmp_path), signal_grace=120, time="00:30:00")
    assert "#SBATCH --signal=B:USR1@120" in text and "USR1 from SLURM 120 s before the time limit" in text


@pytest.mark.parametrize("text, seconds", [
    ("30", 1800), ("30:15", 1815), ("01:00:00", 3600), ("24:00:00", 86400), ("1-00", 86400),
    ("1-02:03", 93780), ("1-02:03:04", 93784), ("0", 0),
])
def test_time_seconds(text, seconds):
    assert time_seconds(text) == seconds


@pytest.mark.parametrize("grace, time_limit, match", [
    (-1, "01:00:00", "--signal-grace -1 is not valid"),
    (70000, "5-00:00:00", "--signal-grace 70000 is not valid.*at most 65535"),
    (True, "01:00:00", "--signal-grace True is not valid"),
    (1.5, "01:00:00", "--signal-grace 1.5 is not valid"),
    (300, "5", r"--signal-grace 300: the warning would come before the job starts \(--time 5 is 300 s\)"),
    (3600, "01:00:00", "give fewer seconds than that, or 0 for no signal"),
])
def test_signal_grace_refused(grace, time_limit, match):
    with pytest.raises(ValueError, match=match):
        check_signal_grace(grace, time_limit)


def test_signal_grace_accepted():
    assert check_signal_grace(299, "5") == 299
    assert check_signal_grace(0, "1") == 0  # no signal: any limit
    assert check_signal_grace(300, "0") == 300  # --time 0: no limit in SLURM, nothing to compare


def test_render_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    partial = _stopped_run(tmp_path)
    text = render_resume(partial, time="02:00:00", nodes=1, overcommit=True, train_args=["--data-root", "/d"])
    lines = text.splitlines()
    assert lines[1] == ("# HuSCF-GAN training, 3 MPI ranks: continues the stopped run results/run-7.h5.partial "
                        "from its checkpoint after round 2.")
    assert f"# Submit from the directory the stopped run was started in ({tmp_path.resolve()}):" in lines
    assert _directives(text) == ["#SBATCH --job-name=run-7", "#SBATCH --ntasks=3", "#SBATCH --cpus-per-task=1",
                                 "#SBATCH --time=02:00:00", "#SBATCH --output=results/%x-%j.out",
                                 "#SBATCH --nodes=1", "#SBATCH --overcommit", *SIGNAL_LINES]
    for line in ('OUTPUT="results/run-7.h5"', 'TRAIN=(huscf-mpi train --resume "$OUTPUT.partial" --data-root /d)',
                 'if [ ! -f "$OUTPUT.ckpt/manifest.json" ]; then', '    elif scontrol requeue "$SLURM_JOB_ID"; then'):
        assert line in lines, line
    assert "--config" not in text.split("TRAIN=(")[1] and "--output" not in text.split("TRAIN=(")[1]
    assert RESTART not in text  # every start resumes already
    if shutil.which("bash"):
        _bash_ok(tmp_path, text)
    # the ckpt folder or its manifest name the same run
    for other in ("results/run-7.h5.ckpt", "results/run-7.h5.ckpt/manifest.json"):
        assert render_resume(other, time="02:00:00", nodes=1, overcommit=True,
                             train_args=["--data-root", "/d"]).replace(other, str(partial)) == text
    # rank 0 on its own node: 1 + 2 clients
    het = render_resume(partial, server_node=True)
    assert "#SBATCH hetjob" in het and "#SBATCH --ntasks=2" in het and '-hosts "$HOSTS" -n 3 \\' in het
    assert 'TRAIN=(huscf-mpi train --resume "$OUTPUT.partial")' in het


def test_render_resume_quotes_the_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    partial = _stopped_run(tmp_path, name='odd "$x`')
    text = render_resume(partial)
    assert 'OUTPUT="results/odd \\"\\$x\\`.h5"' in text.splitlines()
    if shutil.which("bash"):
        line = next(ln for ln in text.splitlines() if ln.startswith("OUTPUT="))
        res = subprocess.run(["bash", "-c", line + '; printf %s "$OUTPUT"'], capture_output=True, text=True)
        assert res.stdout == 'results/odd "$x`.h5'


@pytest.mark.parametrize("args, words", [
    (["--config", "{cfg}"], ["--config: --resume continues one stopped run", "drop --config"]),
    (["--array", "0-2"], ["--array: --resume continues one stopped run", "drop --array"]),
    (["--seeds", "0-2"], ["--seeds: --resume continues one stopped run", "drop --seeds"]),
    (["--ntasks", "5"], ["--ntasks 5: the run at --resume", "was stopped with 3 MPI ranks", "omit --ntasks"]),
    (["--signal-grace", "-5"], ["--signal-grace -5 is not valid", "or 0 for no signal"]),
    (["--", "--resume", "x.partial"], ["-- --resume: the script adds --resume itself", "huscf-mpi slurm --resume"]),
    (["--", "--output", "x.h5"], ["-- --output: a resumed run keeps the stopped run's config", "drop --output"]),
    (["--", "--config", "{cfg}"], ["-- --config: a resumed run keeps", "drop --config"]),
    (["--", "--rounds", "9"], ["--resume results/run-7.h5.partial: the stopped run has training.rounds = 4, "
                               "this one 9"]),
])
def test_cli_resume_refuses(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    partial = _stopped_run(tmp_path)
    cfg = _cfg(tmp_path)
    res = CliRunner().invoke(main, ["slurm", "--resume", str(partial), *[a.replace("{cfg}", str(cfg)) for a in args]])
    _one_line(res, words)


def _one_line(res, words) -> None:
    assert res.exit_code == 2, res.output
    assert isinstance(res.exception, SystemExit) and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("huscf-mpi: error: "), res.output
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("args, words", [
    (["--resume", "results/none.h5.partial"], ["--resume results/none.h5.partial: no checkpoint at "
                                               "results/none.h5.ckpt/manifest.json"]),
    ([], ["--config: give the run's config", "or --resume PATH"]),
    (["--config", "{cfg}", "--signal-grace", "abc"], ["--signal-grace: 'abc' is not a valid integer"]),
    (["--config", "{cfg}", "--signal-grace", "-1"], ["--signal-grace -1 is not valid"]),
    (["--config", "{cfg}", "--time", "00:04:00"], ["--signal-grace 300: the warning would come before the job"]),
    (["--config", "{cfg}", "--", "--resume", "r.h5.partial"], ["-- --resume: the script adds --resume itself"]),
    (["--config", "{cfg}", "--array", "0-1", "--", "--resume=r.h5.partial"], ["-- --resume=r.h5.partial: the script"]),
])
def test_cli_slurm_refuses(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path)
    res = CliRunner().invoke(main, ["slurm", *[a.replace("{cfg}", str(cfg)) for a in args]])
    _one_line(res, words)


def test_cli_slurm_resume_header_rerenders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    partial = _stopped_run(tmp_path)
    res = CliRunner().invoke(main, ["slurm", "--resume", str(partial), "--signal-grace", "60", "--time", "30",
                                    "--out", "r.sbatch", "--", "--busy-wait"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "r.sbatch").read_text()
    header = rendered_by(text)
    assert header == ("# Rendered by: huscf-mpi slurm --resume results/run-7.h5.partial --time 30 --signal-grace 60 "
                      "--launcher mpiexec --out r.sbatch -- --busy-wait")
    assert "#SBATCH --signal=B:USR1@60" in text and "--busy-wait)" in text
    res = CliRunner().invoke(main, header_argv(text)[1:])
    assert res.exit_code == 0 and (tmp_path / "r.sbatch").read_text() == text


# ------------------------------------------------------------------------------ the bash logic

# The launcher stand-in (mpiexec or srun): records its command line, and in FAKE_MODE=cut writes a
# checkpoint as a run would and waits for a signal, exiting 128 + its number as the real ones do.
_LAUNCHER = r"""#!/bin/bash
if [[ "$1" == --nodes=* ]]; then  # srun's clean-up step after a failed run: record it only
    echo "$*" >>"$FAKE_LOG/cleanup.args"
    exit 0
fi
while [[ "$1" == -n || "$1" == --mpi=* ]]; do [ "$1" = -n ] && shift; shift; done  # mpiexec -n N / srun --mpi=
echo "$*" >>"$FAKE_LOG/launcher.args"
out=""
prev=""
for a in "$@"; do
    [ "$prev" = --output ] && out="$a"
    [ "$prev" = --resume ] && out="${a%.partial}"
    prev="$a"
done
stop() {  # $1: the signal; FAKE_STOP_S: how long the run takes to stop, FAKE_STOP_EXIT: its exit code
    echo "$1" >>"$FAKE_LOG/launcher.signals"
    sleep "${FAKE_STOP_S:-0}"
    touch "$FAKE_LOG/exited"
    exit "${FAKE_STOP_EXIT:-$2}"
}
trap 'stop USR1 138' USR1
trap 'stop TERM 143' TERM
case "${FAKE_MODE:-done}" in
    cut)
        mkdir -p "$out.ckpt"
        echo '{}' >"$out.ckpt/manifest.json"
        : >"$out.partial"
        touch "$FAKE_LOG/ready"
        while :; do sleep 0.05; done ;;
    nockpt)
        touch "$FAKE_LOG/ready"
        while :; do sleep 0.05; done ;;
esac
exit "${FAKE_EXIT:-0}"
"""
_SCONTROL = '#!/bin/bash\necho "$*" >>"$FAKE_LOG/scontrol.args"\nexit "${FAKE_SCONTROL_RC:-0}"\n'


def _venv(tmp_path: Path, activate_extra: str = "") -> Path:
    """A stand-in venv whose activate puts the fake mpiexec, srun and scontrol first on PATH."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("mpiexec", _LAUNCHER), ("srun", _LAUNCHER), ("scontrol", _SCONTROL),
                       ("huscf-mpi", "#!/bin/bash\nexit 99\n")):  # huscf-mpi: only checked to exist
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "activate").write_text(f'export PATH="{bin_dir}:$PATH"\n{activate_extra}')
    return bin_dir.parent


def _fnv1a(text: str) -> str:
    """MPICH's world id: the 32-bit FNV-1a hash of the PMI job id, in hex (its /dev/shm/mpich_shm_<id>_<node>)."""
    value = 2166136261
    for byte in text.encode():
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    return f"{value:x}"


def test_fnv1a_matches_mpich():
    assert _fnv1a("3405602.0") == "e1f91189"  # the file a killed srun step of job 3405602 left here


class Job:
    """A rendered script started the way slurmstepd starts a batch job (in the submit directory)."""

    def __init__(self, tmp_path: Path, text: str, venv: Path, **env: str):
        self.log = tmp_path / "log"
        self.log.mkdir(exist_ok=True)
        script = tmp_path / "job.sbatch"
        script.write_text(text)
        full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "FAKE_LOG": str(self.log),
                "SLURM_SUBMIT_DIR": str(tmp_path), "HUSCF_VENV": str(venv), "SLURM_JOB_ID": "7",
                "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "n1", "SLURM_JOB_NUM_NODES": "1", **env}
        self.proc = subprocess.Popen(["bash", str(script)], env=full, cwd=tmp_path, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def when_ready(self) -> "Job":
        deadline = time.monotonic() + 30
        while not (self.log / "ready").exists():
            assert self.proc.poll() is None, self.proc.stdout.read()
            assert time.monotonic() < deadline, "the launcher stand-in never started"
            time.sleep(0.02)
        time.sleep(0.1)  # its traps are set before it says ready; this is for the shell's `wait`
        return self

    def signal(self, sig: int) -> "Job":
        self.proc.send_signal(sig)  # to the batch shell alone, as --signal=B: and scancel --batch do
        return self

    def end(self) -> tuple[int, str]:
        out, _ = self.proc.communicate(timeout=60)
        return self.proc.returncode, out

    def read(self, name: str) -> list[str]:
        path = self.log / name
        return path.read_text().splitlines() if path.exists() else []


@needs_bash
@pytest.mark.parametrize("launcher, stop_exit", [("mpiexec", "138"), ("srun", "137"), ("mpiexec", "143")])
def test_usr1_is_forwarded_and_the_job_requeued(tmp_path, launcher, stop_exit):
    """mpiexec exits 138 when rank 0 aborts with it; srun 137, for the ranks it kills after rank 0's abort
    (both seen under the real SLURM of jobs/slurm-selftest.sh)."""
    text = render_sbatch(_cfg(tmp_path), launcher=launcher, train_args=["--rounds", "4"])
    job = Job(tmp_path, text, _venv(tmp_path), FAKE_MODE="cut", FAKE_STOP_EXIT=stop_exit).when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 0, out  # requeued: not a failed job
    assert job.read("launcher.signals") == ["USR1"]
    assert job.read("scontrol.args") == ["requeue 7"]
    assert job.read("launcher.args") == ["huscf-mpi train --config scen.yaml --output results/scen-7.h5 --rounds 4"
                                         .replace("scen.yaml", str(tmp_path / "scen.yaml"))]
    # srun: the MPICH files of step "7.0" that the killed ranks left are removed on each node
    want = [f"--nodes=1 --ntasks=1 --ntasks-per-node=1 --mpi=none /bin/sh -c rm -f /dev/shm/mpich_shm_{_fnv1a('7.0')}_* "
            f"/dev/shm/mpich_vci_{_fnv1a('7.0')}_*"]
    assert job.read("cleanup.args") == (want if launcher == "srun" else [])
    assert "job 7: SIGUSR1 received, passed on to the launcher" in out
    assert f"job 7: stopped (exit {stop_exit}) and requeued; its next start resumes results/scen-7.h5.partial" in out


@needs_bash
def test_no_requeue_with_huscf_requeue_0(tmp_path):
    text = render_sbatch(_cfg(tmp_path))
    job = Job(tmp_path, text, _venv(tmp_path), FAKE_MODE="cut", HUSCF_REQUEUE="0").when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 138, out
    assert job.read("launcher.signals") == ["USR1"] and job.read("scontrol.args") == []
    assert "not requeued (HUSCF_REQUEUE=0): continue it with huscf-mpi slurm --resume results/scen-7.h5.partial" in out


@needs_bash
def test_term_is_forwarded_but_never_requeues(tmp_path):
    """scancel sends TERM; SLURM would requeue even a job it is cancelling, so the script must not."""
    job = Job(tmp_path, render_sbatch(_cfg(tmp_path)), _venv(tmp_path), FAKE_MODE="cut").when_ready()
    code, out = job.signal(signal.SIGTERM).end()
    assert code == 143, out
    assert job.read("launcher.signals") == ["TERM"] and job.read("scontrol.args") == []


@needs_bash
@pytest.mark.parametrize("mode, scontrol_rc, words", [
    ("nockpt", "0", []),  # stopped before its first checkpoint: nothing to resume, so no requeue
    ("cut", "1", ["scontrol requeue failed; continue it with", "huscf-mpi slurm --resume results/scen-7.h5.partial"]),
])
def test_no_requeue_without_checkpoint_or_when_scontrol_fails(tmp_path, mode, scontrol_rc, words):
    job = Job(tmp_path, render_sbatch(_cfg(tmp_path)), _venv(tmp_path), FAKE_MODE=mode,
              FAKE_SCONTROL_RC=scontrol_rc).when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 138, out
    assert job.read("scontrol.args") == (["requeue 7"] if mode == "cut" else [])
    for word in words:
        assert word in out


@needs_bash
@pytest.mark.parametrize("exit_code", [0, 1, 2])
def test_launcher_exit_code_is_the_jobs(tmp_path, exit_code):
    job = Job(tmp_path, render_sbatch(_cfg(tmp_path)), _venv(tmp_path), FAKE_EXIT=str(exit_code))
    code, out = job.end()
    assert code == exit_code, out
    assert job.read("scontrol.args") == []


@needs_bash
def test_script_waits_for_the_launcher_to_exit(tmp_path):
    """`wait` returns as soon as the trapped USR1 arrives; the script must wait on for the launcher's own end
    and code (here 1, a run that failed while stopping: no requeue, the job fails)."""
    job = Job(tmp_path, render_sbatch(_cfg(tmp_path)), _venv(tmp_path), FAKE_MODE="cut", FAKE_STOP_S="1",
              FAKE_STOP_EXIT="1").when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 1, out
    assert (tmp_path / "log" / "exited").exists() and job.read("scontrol.args") == []


@needs_bash
def test_restart_adds_resume(tmp_path):
    """A requeued job starts again under the same job id: it resumes its own checkpoint."""
    (tmp_path / "results" / "scen-7.h5.ckpt").mkdir(parents=True)
    (tmp_path / "results" / "scen-7.h5.ckpt" / "manifest.json").write_text("{}")
    (tmp_path / "results" / "scen-7.h5.partial").write_bytes(b"")
    job = Job(tmp_path, render_sbatch(_cfg(tmp_path)), _venv(tmp_path), SLURM_RESTART_COUNT="1")
    code, out = job.end()
    assert code == 0, out
    assert job.read("launcher.args") == [f"huscf-mpi train --config {tmp_path / 'scen.yaml'} "
                                         "--output results/scen-7.h5 --resume results/scen-7.h5.partial"]
    assert "job 7: restart 1, resuming results/scen-7.h5.partial from its last checkpoint" in out
    # another job id: another result path, a fresh start
    (tmp_path / "log" / "launcher.args").unlink()
    code, out = Job(tmp_path, render_sbatch(_cfg(tmp_path)), tmp_path / "venv", SLURM_JOB_ID="8").end()
    assert code == 0 and "--resume" not in (tmp_path / "log" / "launcher.args").read_text()


@needs_bash
def test_array_task_requeues_itself_only_and_resumes_its_own_file(tmp_path):
    text = render_sbatch(_cfg(tmp_path), array="0-4")
    env = {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3", "SLURM_JOB_ID": "80"}
    job = Job(tmp_path, text, _venv(tmp_path), FAKE_MODE="cut", **env).when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 0, out
    assert job.read("scontrol.args") == ["requeue 77_3"]  # not 77: that would requeue every task
    assert (tmp_path / "results" / "scen-77-3.h5.ckpt" / "manifest.json").exists()
    (tmp_path / "log" / "launcher.args").unlink()
    code, out = Job(tmp_path, text, tmp_path / "venv", SLURM_RESTART_COUNT="1", **env).end()
    assert code == 0, out
    assert (tmp_path / "log" / "launcher.args").read_text().split() == [
        "huscf-mpi", "train", "--config", str(tmp_path / "scen.yaml"), "--output", "results/scen-77-3.h5",
        "--seed", "3", "--resume", "results/scen-77-3.h5.partial"]


@needs_bash
def test_signal_before_the_launcher_starts_is_passed_on(tmp_path):
    """USR1 while the venv activates: the run is not started (a launcher starting then could miss
    the signal), and the job is requeued as after a stopped run."""
    (tmp_path / "results" / "scen-7.h5.ckpt").mkdir(parents=True)
    (tmp_path / "results" / "scen-7.h5.ckpt" / "manifest.json").write_text("{}")
    (tmp_path / "results" / "scen-7.h5.partial").write_bytes(b"")
    venv = _venv(tmp_path, activate_extra="kill -USR1 $$\n")  # $$: the batch shell sourcing it
    code, out = Job(tmp_path, render_sbatch(_cfg(tmp_path)), venv, FAKE_MODE="cut").end()
    assert code == 0, out
    assert (tmp_path / "log" / "scontrol.args").read_text() == "requeue 7\n"
    assert "job 7: SIGUSR1 received\n" in out and "SIGUSR1 before the run started; not started" in out
    assert not (tmp_path / "log" / "launcher.args").exists()


@needs_bash
def test_resume_script_resumes_on_every_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    partial = _stopped_run(tmp_path)
    text = render_resume(partial)
    job = Job(tmp_path, text, _venv(tmp_path), SLURM_JOB_ID="9", FAKE_MODE="cut").when_ready()
    code, out = job.signal(signal.SIGUSR1).end()
    assert code == 0, out
    assert job.read("launcher.args") == ["huscf-mpi train --resume results/run-7.h5.partial"]
    assert job.read("scontrol.args") == ["requeue 9"]
    # the requeued start resumes the same file
    code, out = Job(tmp_path, text, tmp_path / "venv", SLURM_JOB_ID="9", SLURM_RESTART_COUNT="1").end()
    assert code == 0, out
    assert job.read("launcher.args")[-1] == "huscf-mpi train --resume results/run-7.h5.partial"
    # submitted from elsewhere, or after the run completed: one clear line, exit 2
    shutil.rmtree(tmp_path / "results" / "run-7.h5.ckpt")
    code, out = Job(tmp_path, text, tmp_path / "venv", SLURM_JOB_ID="10").end()
    assert code == 2 and "huscf-mpi: no checkpoint results/run-7.h5.ckpt/manifest.json in" in out
    assert f"started in ({tmp_path.resolve()})" in out
