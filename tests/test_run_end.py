"""Every way a training run can end, and what its result file then says (issue 11, point 1).

The MPI runs use the toy method of tests/mpi/toy_strategy.py, ended on purpose by
tests/mpi/ending_strategy.py (a crash on a client or on rank 0, or a slow run to signal or to
break the output path of), except Ctrl-C, which goes through the real ``huscf-mpi train``.
After each, the result file must say what happened and nothing more, and ``show``, ``tables``
and ``plot`` must treat anything but "complete" as incomplete.
"""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml
from click.testing import CliRunner

from huscf_mpi.cli import main
from huscf_mpi.results import ResultFile, ResultNotPlaced, ResultWriter, summary

from .conftest import DATA, checkout_env, huscf_cli, mpiexec, needs_data

SCRIPT = Path(__file__).parent / "mpi" / "ending_strategy.py"
TOY = {
    "name": "ending", "seed": 3,
    "data": {"domains": {"mnist": 2}, "max_samples_per_client": 128},
    "model": {"width": 0.125},
    "training": {"batch_size": 16, "local_epochs": 1, "rounds": 3, "iterations_per_epoch": 4},
    "evaluation": {"generation_samples": 100, "synthetic_samples": 100, "synthetic_epochs": 1,
                   "classifier_epochs": 1, "batch_size": 50, "sample_grid": False, "grid_per_class": 2},
}
# A slow toy run: 4 rounds of 5 iterations of 0.2 s on rank 0, time to act while it trains.
SLOW = {**TOY, "training": {**TOY["training"], "rounds": 4, "iterations_per_epoch": 5}}
# The real method, for Ctrl-C through the CLI: rounds long enough to land in one.
HUSCF = {**TOY, "name": "huscf", "cuts": {1: [2, 4, 1, 5], 2: [1, 5, 2, 4]}, "federation": {"warmup_rounds": 1},
         "training": {**TOY["training"], "rounds": 6, "iterations_per_epoch": 8}}


def _launch(tmp_path, cfg, out, mode=None):
    """Start ``mpiexec -n 3`` (the ending script in ``mode``, or ``huscf-mpi train``); stderr to a file."""
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    if mode is None:
        args = [huscf_cli(), "train", "--config", str(tmp_path / "cfg.yaml"), "--data-root", str(DATA), "--output", str(out)]
    else:
        args = [sys.executable, str(SCRIPT), str(tmp_path / "cfg.yaml"), str(out), str(DATA), mode]
    err = tmp_path / "stderr.txt"
    env = dict(checkout_env(), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    with open(err, "w") as f:
        proc = subprocess.Popen([mpiexec(), "-n", "3", *args], stdout=subprocess.DEVNULL, stderr=f, env=env)
    return proc, err


def _finish(proc, timeout=300) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def _wait_for(proc, err: Path, text: str, timeout=300) -> None:
    t0 = time.monotonic()
    while text not in err.read_text(errors="replace"):
        assert proc.poll() is None, f"the run ended before {text!r}:\n{err.read_text()[-3000:]}"
        assert time.monotonic() - t0 < timeout, f"no {text!r} within {timeout} s"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _no_rank_left(out: Path, timeout=10) -> None:
    pids = [int(p.read_text()) for p in sorted(out.parent.glob(out.name + ".pid.*"))]
    assert len(pids) == 3, pids
    t0 = time.monotonic()
    while any(_alive(p) for p in pids):
        assert time.monotonic() - t0 < timeout, f"ranks still alive: {[p for p in pids if _alive(p)]}"
        time.sleep(0.1)


def _processes_of(out: Path) -> list[int]:
    """Processes whose command line names ``out``: mpiexec and the ranks."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if str(out).encode() in (d / "cmdline").read_bytes():
                    found.append(int(d.name))
            except OSError:
                pass
    return found


def _log(err: Path) -> str:
    """stderr without the progress bar's redraws (another rank's line may follow one directly)."""
    text = re.sub(r"training:[^\]\n]*\]", "", err.read_text(errors="replace")).replace("\r", "\n")
    return "\n".join(line for line in text.splitlines() if line.strip())


def _incomplete_everywhere(path: Path, status: str, tmp_path: Path) -> None:
    """``show``, ``tables``, ``plot`` and the reader treat the file as incomplete, by its status alone."""
    with pytest.raises(ValueError, match=f"incomplete \\(status {status}"):
        ResultFile(path)
    assert ResultFile(path, allow_incomplete=True).status == status
    res = CliRunner().invoke(main, ["show", str(path)])
    assert res.exit_code == 0 and res.output.splitlines()[1].startswith(f"status: INCOMPLETE ({status})"), res.output
    res = CliRunner().invoke(main, ["tables", str(path)])
    assert res.exit_code == 2 and f"incomplete run (status {status}" in res.output, res.output
    res = CliRunner().invoke(main, ["tables", str(path), "--allow-incomplete"])
    assert res.exit_code == 0 and "(incomplete: 1 of 1)" in res.output, res.output
    res = CliRunner().invoke(main, ["plot", str(path), "--out", str(tmp_path / "fig")])
    assert res.exit_code == 2 and f"incomplete run (status {status}" in res.output, res.output


# ------------------------------------------------------------------ without MPI
def test_sigusr1_is_held_while_training_with_checkpoints_and_anything_else_stops_at_once():
    from huscf_mpi import stopping

    stopping.reset()
    try:
        stopping.defer(True)  # training with checkpoints
        stopping._record(signal.SIGUSR1, None)
        stopping.check()  # held until the round's checkpoint
        assert stopping.held() == signal.SIGUSR1
        stopping._record(signal.SIGTERM, None)  # then scancel or the time limit: now
        with pytest.raises(stopping.Interrupted) as e:
            stopping.check()
        assert e.value.signal_name == "SIGTERM" and stopping.held() is None
        for signals, deferring in (([signal.SIGUSR1, signal.SIGUSR1], True), ([signal.SIGINT], True),
                                   ([signal.SIGUSR1], False)):  # twice; Ctrl-C; set-up or final evaluation
            stopping.reset()
            stopping.defer(deferring)
            for s in signals:
                stopping._record(s, None)
            with pytest.raises(stopping.Interrupted):
                stopping.check()
    finally:
        stopping.reset()


def _writer(path) -> ResultWriter:
    w = ResultWriter(path)
    w.write_provenance(config_yaml=yaml.safe_dump(TOY), seed=3, strategy="toy")
    w.write_array("domains", ["mnist"])
    w.append("rounds/round", 1)
    w.append("rounds/wall_seconds", 1.5)
    w.set_attrs("final/mnist", accuracy=90.0, generation_score=5.0)
    return w


def test_complete_is_written_after_the_file_is_in_place(tmp_path):
    out = tmp_path / "run.h5"
    assert _writer(out).close() == out
    assert not (tmp_path / "run.h5.partial").exists() and ResultFile(out).status == "complete"
    assert ResultFile(out).stop == {}


def test_a_final_path_taken_by_a_folder_leaves_a_failed_partial(tmp_path):
    out = tmp_path / "run.h5"
    w = _writer(out)
    out.mkdir()  # what `--output <folder> --overwrite` did before set-up refused it
    with pytest.raises(ResultNotPlaced, match="could not be moved to .*run.h5: Is a directory") as e:
        w.close()
    assert e.value.where == tmp_path / "run.h5.partial" and w.status == "failed" and out.is_dir()
    rf = ResultFile(e.value.where, allow_incomplete=True)
    assert rf.status == "failed" and "could not be moved" in rf.error and rf.finished
    _incomplete_everywhere(e.value.where, "failed", tmp_path)


def test_readers_trust_the_status_not_the_name(tmp_path):
    """A run killed between the rename and "complete" is at the final path, saying "running"."""
    out = tmp_path / "run.h5"
    _writer(out).close()
    with h5py.File(out, "r+") as f:
        f.attrs["status"] = "running"
    _incomplete_everywhere(out, "running", tmp_path)


def test_interrupted_records_where_it_stopped(tmp_path):
    w = _writer(tmp_path / "run.h5")
    where = w.close("interrupted", "interrupted by SIGTERM in round 2 of 4, after 3 of 5 iteration(s)",
                    stop_signal="SIGTERM", stop_phase="training", rounds_done=1, iterations_done=3)
    assert where == tmp_path / "run.h5.partial"
    rf = ResultFile(where, allow_incomplete=True)
    assert rf.stop == {"stop_phase": "training", "rounds_done": 1, "iterations_done": 3, "stop_signal": "SIGTERM"}
    text = summary(where).splitlines()
    assert text[1].startswith("status: INCOMPLETE (interrupted) -- interrupted by SIGTERM in round 2 of 4")
    assert text[3] == "stopped: during training, by SIGTERM, 1 round(s) written, 3 iteration(s) of the next done"
    with pytest.raises(ValueError, match="only allowed when the run did not complete"):
        _writer(tmp_path / "other.h5").close("complete", "no")
    with pytest.raises(ValueError, match="root attributes"):
        _writer(tmp_path / "third.h5").set_attrs("/", rounds_done=2)


# ------------------------------------------------------------------ through mpiexec
@pytest.mark.mpi
@needs_data
def test_a_normal_end_is_complete_at_the_final_path(tmp_path):
    out = tmp_path / "run.h5"
    proc, err = _launch(tmp_path, TOY, out, "complete")
    assert _finish(proc) == 0, _log(err)[-3000:]
    rf = ResultFile(out)
    assert rf.status == "complete" and rf.error == "" and rf.stop == {} and rf.finished
    assert not (tmp_path / "run.h5.partial").exists()
    assert list(rf.rounds()["round"]) == [1, 2, 3] and rf.final()
    assert f"wrote {out}" in _log(err)
    _no_rank_left(out)


@pytest.mark.mpi
@needs_data
def test_an_exception_on_a_client_fails_the_run_naming_the_rank(tmp_path):
    out = tmp_path / "run.h5"
    proc, err = _launch(tmp_path, TOY, out, "client-crash")
    assert _finish(proc) == 1
    log = _log(err)
    assert "rank 2 crashed: injected failure on client 2" in log  # the client's own traceback follows
    assert ("run failed: rank 2: RuntimeError('injected failure on client 2'); result file left at "
            f"{out}.partial (status failed)") in log
    assert not out.exists()
    rf = ResultFile(out, allow_incomplete=True)
    assert rf.error == "rank 2: RuntimeError('injected failure on client 2')"
    assert rf.stop["stop_phase"] == "training" and rf.stop["rounds_done"] in (1, 2) and "stop_signal" not in rf.stop
    _no_rank_left(out)
    _incomplete_everywhere(rf.path, "failed", tmp_path)


@pytest.mark.mpi
@needs_data
def test_an_exception_on_rank_0_fails_the_run(tmp_path):
    out = tmp_path / "run.h5"
    proc, err = _launch(tmp_path, TOY, out, "server-crash")
    assert _finish(proc) == 1
    log = _log(err)
    assert "rank 0 crashed: Traceback" in log and "ValueError: injected failure on the server" in log
    assert f"run failed: rank 0: ValueError('injected failure on the server'); result file left at {out}.partial" in log
    rf = ResultFile(out, allow_incomplete=True)
    assert rf.status == "failed" and rf.error == "rank 0: ValueError('injected failure on the server')"
    assert rf.stop == {"stop_phase": "training", "rounds_done": 1, "iterations_done": 0}
    assert list(rf.rounds()["round"]) == [1]
    _no_rank_left(out)


@pytest.mark.mpi
@needs_data
def test_an_output_path_taken_while_training_fails_the_finished_run(tmp_path):
    """The whole run trains, then the final rename meets a folder made at the output path."""
    out = tmp_path / "run.h5"
    proc, err = _launch(tmp_path, SLOW, out, "slow")
    _wait_for(proc, err, "INFO round 1/")
    out.mkdir()
    assert _finish(proc) == 1
    log = _log(err)
    assert "Traceback" not in log
    assert (f"run failed: the finished run's file could not be moved to {out}: Is a directory; "
            f"result file left at {out}.partial (status failed)") in log
    assert out.is_dir()
    rf = ResultFile(out, allow_incomplete=True)
    assert rf.status == "failed" and "could not be moved" in rf.error
    assert list(rf.rounds()["round"]) == [1, 2, 3, 4] and rf.final()  # everything is there but the status
    _no_rank_left(out)
    _incomplete_everywhere(rf.path, "failed", tmp_path)


def _interrupt(tmp_path, sig, cli: bool):
    out = tmp_path / "run.h5"
    proc, err = _launch(tmp_path, HUSCF if cli else SLOW, out, None if cli else "slow")
    _wait_for(proc, err, "INFO round 1/")
    running = _processes_of(out)
    assert len(running) >= 4, running  # mpiexec and 3 ranks
    shm = _shared_memory_files(running)
    t0 = time.monotonic()
    proc.send_signal(sig)
    code = _finish(proc, timeout=60)
    seconds = time.monotonic() - t0
    while any(_alive(p) for p in running):
        assert time.monotonic() - t0 < 60, f"processes left: {[p for p in running if _alive(p)]}"
        time.sleep(0.1)
    assert not [f for f in shm if Path(f).exists()], shm  # MPI_Abort leaves no tmpfs behind (process.py)
    return out, err, code, seconds


def _shared_memory_files(pids) -> set[str]:
    """The MPI shared-memory files the processes ``pids`` have mapped (names, deleted or not)."""
    found = set()
    for pid in pids:
        try:
            found |= {line.split(maxsplit=5)[5].strip().removesuffix(" (deleted)")
                      for line in Path(f"/proc/{pid}/maps").read_text().splitlines() if "/dev/shm/mpich_shm_" in line}
        except OSError:
            pass
    return found


@pytest.mark.mpi
@needs_data
@pytest.mark.parametrize("sig, cli", [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGUSR1, False)],
                         ids=["SIGINT-cli", "SIGTERM", "SIGUSR1"])
def test_a_signal_to_mpiexec_interrupts_the_run(tmp_path, sig, cli):
    out, err, code, seconds = _interrupt(tmp_path, sig, cli)
    assert code == 128 + sig, _log(err)[-3000:]
    assert seconds < 30, seconds
    log = _log(err)
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if f"interrupted by {sig.name}" in line]
    assert len(lines) == 1 and f"result file left at {out}.partial (status interrupted); continue it with " \
        f"`huscf-mpi train --resume {out}.partial` (from round " in lines[0], log[-3000:]  # a round is checkpointed
    assert not out.exists()
    rf = ResultFile(out, allow_incomplete=True)
    graceful = sig == signal.SIGUSR1  # finishes the round and its checkpoint first (huscf_mpi/stopping.py)
    where = "during checkpoint after " if graceful else "in round "
    assert rf.status == "interrupted" and rf.error.startswith(f"interrupted by {sig.name} {where}")
    assert rf.stop["stop_signal"] == sig.name and rf.stop["stop_phase"] == ("checkpoint" if graceful else "training")
    assert rf.stop["rounds_done"] >= 1 and len(rf.rounds()) == rf.stop["rounds_done"]
    _incomplete_everywhere(rf.path, "interrupted", tmp_path)


@pytest.mark.mpi
@needs_data
def test_a_frozen_client_ends_a_sync_run_within_client_timeout(tmp_path):
    """SIGSTOP on client 2 mid-training (issue 10, point 3 for the synchronous mode): rank 0's next
    wait for its message passes ``training.client_timeout_s`` and the run ends as failed, no hang."""
    out = tmp_path / "run.h5"
    cfg = {**SLOW, "training": {**SLOW["training"], "rounds": 40, "client_timeout_s": 3.0}}
    proc, err = _launch(tmp_path, cfg, out, "slow")
    _wait_for(proc, err, "INFO round 1/")
    running = _processes_of(out)
    frozen = int(Path(f"{out}.pid.2").read_text())
    t0 = time.monotonic()
    os.kill(frozen, signal.SIGSTOP)
    try:
        code = _finish(proc, timeout=90)
        seconds = time.monotonic() - t0
    finally:
        if _alive(frozen):
            os.kill(frozen, signal.SIGKILL)
    assert code == 1, _log(err)[-3000:]
    assert seconds < 3.0 + 60, seconds
    log = _log(err)
    assert "Traceback" not in log, log[-3000:]
    rf = ResultFile(out, allow_incomplete=True)
    assert rf.status == "failed"
    # Which wait notices depends on where client 2 stopped: a training message or its round report.
    assert re.search(r"no (toy_up|round_stats|iteration_seconds) message from peer\(s\) \[2\] within 3 s "
                     r"\(training.client_timeout_s\)", rf.error), rf.error
    assert rf.stop["stop_phase"] == "training" and rf.stop["rounds_done"] >= 1
    t1 = time.monotonic()
    while any(_alive(p) for p in running if p != frozen):
        assert time.monotonic() - t1 < 30, f"processes left: {[p for p in running if _alive(p)]}"
        time.sleep(0.1)
