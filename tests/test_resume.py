"""A stopped run continues where it stopped (issue 11, points 3-5): checkpoint, signal, resume.

Each test trains a tiny run twice through ``mpiexec huscf-mpi train``: once uninterrupted, once
stopped by SIGUSR1 to mpiexec (what ``scancel --signal=USR1`` and SLURM's ``--signal`` send)
and continued with ``--resume``. In synchronous mode every per-round array but the timings and
memory figures, the sample grids, the ledger and the final metrics must be equal, bit for bit.
"""
import json
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from huscf_mpi.results import ResultFile

from .conftest import DATA, ROOT, checkout_env, huscf_cli, mpiexec, needs_data

BASE = {
    "seed": 3,
    "data": {"domains": {"mnist": 2}, "max_samples_per_client": 128},
    "model": {"width": 0.125},
    "federation": {"warmup_rounds": 1},
    "training": {"batch_size": 16, "local_epochs": 1, "rounds": 4, "iterations_per_epoch": 30},
    "evaluation": {"generation_samples": 100, "synthetic_samples": 100, "synthetic_epochs": 1,
                   "classifier_epochs": 1, "batch_size": 50, "sample_grid": True, "grid_per_class": 2},
}
HUSCF = {**BASE, "name": "huscf", "cuts": {1: [2, 4, 1, 5], 2: [1, 5, 2, 4]}}
# Measured every run, so never equal: wall-clock seconds, memory, and the start-up records.
UNEQUAL = ("seconds", "max_rss_bytes", "private_dirty_bytes")
SKIPPED_GROUPS = ("preflight", "preflight_ranks", "resumes", "checkpoint")


def _train(tmp_path: Path, cfg: dict, out: Path, ranks: int = 3, extra=()) -> subprocess.Popen:
    path = tmp_path / f"{out.stem}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = open(tmp_path / f"{out.stem}.log", "a")
    env = dict(checkout_env(), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    args = [mpiexec(), "-n", str(ranks), huscf_cli(), "train", "--data-root", str(DATA), *extra]
    args += ["--config", str(path), "--output", str(out)] if not extra else []
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log, env=env)


def _log(tmp_path: Path, out: Path) -> str:
    return (tmp_path / f"{out.stem}.log").read_text(errors="replace").replace("\r", "\n")


def _stop_after(tmp_path, out, proc, text: str, timeout=300, sig=signal.SIGUSR1) -> int:
    """``sig`` to mpiexec once ``text`` is in the log; returns mpiexec's exit code."""
    t0 = time.monotonic()
    while text not in _log(tmp_path, out):
        assert proc.poll() is None, f"ended before {text!r}:\n{_log(tmp_path, out)[-3000:]}"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.05)
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def _datasets(f: h5py.File) -> dict:
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and not name.startswith(SKIPPED_GROUPS) and not any(
                u in name for u in UNEQUAL):
            out[name] = obj[()]

    f.visititems(visit)
    return out


def _assert_same_run(a: Path, b: Path) -> None:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        da, db = _datasets(fa), _datasets(fb)
        assert sorted(da) == sorted(db)
        for name in da:
            x, y = da[name], db[name]
            same = np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
            assert same, f"{name} differs:\n{x}\n{y}"
        for group in [g for g in fa["final"]]:
            assert dict(fa[f"final/{group}"].attrs) == dict(fb[f"final/{group}"].attrs), group
        assert "rounds/loss_d" in da and "samples/mnist" in da and "ledger/bytes" in da


def _refused(tmp_path, args, ranks) -> str:
    """The one line ``train`` prints for bad ``args`` (exit 2 asserted)."""
    env = dict(checkout_env(), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([mpiexec(), "-n", str(ranks), huscf_cli(), "train", "--data-root", str(DATA), *args],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def _uninterrupted(tmp_path, cfg, ranks=3) -> Path:
    ref = tmp_path / "ref.h5"
    assert _train(tmp_path, cfg, ref, ranks).wait(timeout=600) == 0, _log(tmp_path, ref)[-3000:]
    assert not Path(f"{ref}.ckpt").exists()  # a complete run leaves no checkpoints behind
    return ref


@pytest.mark.mpi
@needs_data
def test_a_sync_run_stopped_after_round_2_of_4_resumes_bit_for_bit(tmp_path):
    ref = _uninterrupted(tmp_path, HUSCF)
    out = tmp_path / "stopped.h5"
    code = _stop_after(tmp_path, out, _train(tmp_path, HUSCF, out), "INFO round 2/4")
    assert code == 128 + signal.SIGUSR1, _log(tmp_path, out)[-3000:]
    # SIGUSR1 (SLURM's wall-time warning) lets the round in progress finish and be checkpointed.
    with ResultFile(out, allow_incomplete=True) as stopped:  # closed: HDF5 would reuse this handle below
        assert stopped.status == "interrupted" and stopped.stop["stop_phase"] == "checkpoint"
        done = stopped.stop["rounds_done"]
        assert stopped.error == f"interrupted by SIGUSR1 during checkpoint after {done} round(s)"
    manifest = json.loads(Path(f"{out}.ckpt/manifest.json").read_text())
    assert manifest["round"] == done >= 2 and manifest["ranks"] == 3
    assert f"continue it with `huscf-mpi train --resume {out}.partial` (from round {manifest['round']})" in \
        _log(tmp_path, out)

    # Bad resumes: one line each, exit 2, nothing touched.
    partial = f"{out}.partial"
    assert _refused(tmp_path, ["--resume", partial, "--rounds", "6"], 3) == (
        f"huscf-mpi: error: --resume {partial}: the stopped run has training.rounds = 4, this one 6; a resumed run "
        "keeps its config (omit --config and the options that change it)")
    assert _refused(tmp_path, ["--resume", partial], 2) == (
        "huscf-mpi: error: --resume: the checkpoint was written by 3 MPI ranks, this run has 2; run `mpiexec -n 3`")
    assert _refused(tmp_path, ["--resume", str(tmp_path / "nothing.h5")], 3).startswith(
        f"huscf-mpi: error: --resume {tmp_path / 'nothing.h5'}: no checkpoint at {tmp_path / 'nothing.h5.ckpt'}")

    resumed = _train(tmp_path, HUSCF, out, extra=["--resume", partial])
    assert resumed.wait(timeout=600) == 0, _log(tmp_path, out)[-3000:]
    log = _log(tmp_path, out)
    assert f"(resumed after round {manifest['round']})" in log and "Traceback" not in log
    with ResultFile(out) as rf:
        assert rf.status == "complete" and list(rf.rounds()["round"]) == [1, 2, 3, 4]
    with h5py.File(out) as f:
        assert list(f["resumes/round"][()]) == [0, manifest["round"]]
        assert f["checkpoint"].attrs["round"] == 4
    assert not Path(f"{out}.ckpt").exists()
    _assert_same_run(ref, out)


BASELINES = {
    "fedgan": ({**BASE, "name": "fedgan", "strategy": "fedgan"}, 3),
    "mdgan": ({**BASE, "name": "mdgan", "strategy": "mdgan"}, 3),
    "centralized": ({**BASE, "name": "centralized", "strategy": "centralized"}, 3),
    # Placed by assigned device profiles: measured ones differ from run to run, and so would the placement.
    "fslgan": ({**BASE, "name": "fslgan", "strategy": "fslgan",
                "cut_selection": {"devices": str(ROOT / "jobs" / "devices" / "paper.yaml"), "emulate": False},
                "training": {**BASE["training"], "fake_labels": "uniform"}}, 7),
}


@pytest.mark.mpi
@needs_data
@pytest.mark.parametrize("strategy", list(BASELINES))
def test_every_baseline_resumes_bit_for_bit(tmp_path, strategy):
    """The checkpoint captures each strategy side attribute by attribute (checkpoint/state.py):
    no baseline needs code of its own, and none loses state on the way."""
    cfg, ranks = BASELINES[strategy]
    cfg = {**cfg, "training": {**cfg["training"], "rounds": 3, "iterations_per_epoch": 12}}
    ref = _uninterrupted(tmp_path, cfg, ranks)
    out = tmp_path / "stopped.h5"
    # SIGTERM stops at once: the round in progress is dropped and trained again after the resume.
    assert _stop_after(tmp_path, out, _train(tmp_path, cfg, out, ranks), "checkpoint after round 1",
                       sig=signal.SIGTERM) == 143
    resumed = _train(tmp_path, cfg, out, ranks, extra=["--resume", str(Path(f"{out}.ckpt"))])
    assert resumed.wait(timeout=600) == 0, _log(tmp_path, out)[-3000:]
    _assert_same_run(ref, out)


@pytest.mark.mpi
@needs_data
def test_a_replayed_buffered_run_resumes_bit_for_bit(tmp_path):
    """An asynchronous run serves buffers in arrival order, which no resume can repeat; its replay
    (``training.replay``) serves the recorded order, so a replay stopped and resumed must equal
    the recorded run, bit for bit: the server's scheduling state survives the checkpoint."""
    cfg = {**HUSCF, "training": {**HUSCF["training"], "rounds": 3, "iterations_per_epoch": 12, "mode": "buffered",
                                 "buffer": 1}}
    ref = _uninterrupted(tmp_path, cfg)
    replay = {**cfg, "training": {**cfg["training"], "replay": str(ref)}}
    out = tmp_path / "stopped.h5"
    assert _stop_after(tmp_path, out, _train(tmp_path, replay, out), "checkpoint after round 1") == 138
    resumed = _train(tmp_path, replay, out, extra=["--resume", f"{out}.partial"])
    assert resumed.wait(timeout=600) == 0, _log(tmp_path, out)[-3000:]
    _assert_same_run(ref, out)
