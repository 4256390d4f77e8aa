"""Asynchronous modes (issue 10): the round schedule by hand, and real runs through mpiexec.

MPI runs: buffered with K = N equals sync bit for bit; with K = N and a deadline, one slow
emulated client is left out of buffers (fast clients train on) and the run completes; replaying
that run from its result file gives identical numbers; a frozen client is lost and the run goes
on without it, or fails when fewer than ``training.min_clients`` remain.
"""
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from huscf_mpi.analysis.stats import time_to_quality
from huscf_mpi.comm import exposure_set
from huscf_mpi.config import Config
from huscf_mpi.results import ResultFile
from huscf_mpi.results.replay import replay_round
from huscf_mpi.strategies.asynchronous import FEDERATE, PHASE_BITS, TRAIN_ON, RoundSchedule, buffer_size
from huscf_mpi.strategies.huscf import STRATEGY as HUSCF

from .conftest import DATA, checkout_env, huscf_cli, mpiexec, needs_data, run_mpi


def test_schedule_grants_a_rounds_work_and_records_staleness():
    s = RoundSchedule([1, 2, 3], iterations=2)  # budget 6; the first iteration of each is granted
    assert (s.budget, s.granted, s.waiting) == (6, 3, {1, 2, 3})
    assert s.serve([2, 1]) == {1: TRAIN_ON, 2: TRAIN_ON}            # granted 5
    assert s.serve([3]) == {3: TRAIN_ON}                            # granted 6: the round's work is out
    assert s.serve([1]) == {1: FEDERATE}
    assert not s.done
    assert s.serve([3, 2]) == {2: FEDERATE, 3: FEDERATE}
    assert s.done and s.waiting == set()
    # buffers 0:[1,2] 1:[3] 2:[1] 3:[2,3]; staleness = buffers after a client's last one
    assert s.iterations_done().tolist() == [2, 2, 2]
    assert s.staleness().tolist() == [1, 0, 0]
    assert s.buffer_histogram().tolist() == [2, 2, 0]  # two buffers of 1 client, two of 2
    client, buffer = s.record()
    assert client.tolist() == [1, 2, 3, 1, 2, 3] and buffer.tolist() == [0, 0, 1, 2, 3, 3]
    replay = replay_round(client, buffer, [0, 1, -1])
    assert replay.members == [[1, 2], [3], [1], [2, 3]] and replay.events == [0, 1]
    with pytest.raises(ValueError, match=r"clients \[1\] were served without an outstanding grant"):
        s.serve([1])


def test_buffers_in_flight_complete_out_of_order():
    s = RoundSchedule([1, 2, 3], iterations=1)
    a, b = s.open([2, 1]), s.open([3])          # two buffers in flight, ids in opening order
    s.ran(a, 0), s.ran(b, 0), s.ran(b, 5), s.ran(a, 5)
    assert s.serve([3], b) == {3: FEDERATE}      # budget 3 = the three first iterations
    assert s.serve([1, 2], a) == {1: FEDERATE, 2: FEDERATE} and s.done
    assert s.completed == [b, a] and s.members == [[1, 2], [3]]
    assert s.staleness().tolist() == [0, 0, 1]   # client 3's buffer completed before 1 and 2's
    assert s.events == [a * PHASE_BITS, b * PHASE_BITS, b * PHASE_BITS + 5, a * PHASE_BITS + 5]
    assert replay_round(*s.record(), s.events).members == [[1, 2], [3]]
    s.lose(1)  # not waiting any more: nothing to return
    assert s.granted == 3


def test_buffer_size_by_mode():
    assert buffer_size("sync", None, 8) == 8
    assert buffer_size("sequential", None, 8) == 1
    assert buffer_size("buffered", None, 7) == 4
    assert buffer_size("buffered", 3, 8) == 3


def test_time_to_quality_by_hand():
    wall, gs = [10.0, 20.0, 30.0], [np.nan, 2.5, 3.1]
    assert time_to_quality(wall, gs, 3.0) == 60.0
    assert time_to_quality(wall, gs, 2.0) == 30.0
    assert np.isnan(time_to_quality(wall, gs, 5.0))
    with pytest.raises(ValueError):
        time_to_quality(wall, gs[:2], 1.0)


TINY = {
    "name": "tiny", "seed": 3,
    "data": {"domains": {"mnist": 3}, "max_samples_per_client": 128},
    "model": {"width": 0.125},
    "training": {"batch_size": 16, "local_epochs": 1, "rounds": 2, "iterations_per_epoch": 3},
    "federation": {"warmup_rounds": 1},
    "cuts": [2, 4, 1, 5],
    "evaluation": {"generation_samples": 100, "synthetic_samples": 100, "synthetic_epochs": 1,
                   "classifier_epochs": 1, "batch_size": 50, "sample_grid": False},
}
SAME = ("loss_d", "loss_g", "generation_score", "weights", "kld", "cluster_labels")


def _train(tmp_path, cfg: dict, name: str, extra=()):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / f"{name}.h5"
    proc = run_mpi(4, [huscf_cli(), "train", "--config", str(path), "--data-root", str(DATA), "--output", str(out),
                       *extra], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return ResultFile(out)


def _assert_same(a: ResultFile, b: ResultFile, names=SAME):
    for name in names:
        np.testing.assert_array_equal(a.array(f"rounds/{name}"), b.array(f"rounds/{name}"), err_msg=name)
    assert a.final() == b.final()


@pytest.mark.mpi
@needs_data
def test_buffered_with_every_client_per_buffer_equals_sync(tmp_path):
    sync = _train(tmp_path, TINY, "sync")
    buffered = _train(tmp_path, TINY, "buffered", ["--mode", "buffered", "--buffer", "3"])
    _assert_same(sync, buffered)
    assert buffered.array("rounds/buffer_sizes").tolist() == [[0, 0, 3]] * 2  # 3 buffers of all 3 clients
    assert buffered.array("rounds/staleness").tolist() == [[0, 0, 0]] * 2
    assert buffered.array("rounds/iterations").tolist() == [[3, 3, 3]] * 2
    assert "rounds/staleness" not in sync  # a synchronous file is unchanged
    # Who saw what: the synchronous flows, plus the server's iteration grants (payload "control").
    exposure = exposure_set(buffered.table("exposure").to_dict("list"))
    assert exposure == HUSCF.exposure(Config.model_validate(buffered.config))
    assert exposure - exposure_set(sync.table("exposure").to_dict("list")) == {("control", "server", "client")}

    from huscf_mpi.analysis.tables import make_table  # time to quality: GS >= 0 holds at round 1

    text, notes = make_table([sync.path, buffered.path], by=["training.mode"], metrics="time_to_gs",
                             gs_threshold=0.0)
    assert "mnist s to GS" in text and any("first reached 0" in n for n in notes)
    for f in (sync, buffered):
        assert f"{f.array('rounds/wall_seconds')[0]:.1f}" in text


@pytest.mark.mpi
@needs_data
def test_a_deadline_leaves_a_slow_client_out_and_a_replay_repeats_the_run(tmp_path):
    # Three profiles for three clients: each gets one (cuts.devices.assign_profiles); "slow" at
    # 20 MFLOP/s makes its iteration last far longer than the 30 ms deadline.
    devices = tmp_path / "devices.yaml"
    devices.write_text(yaml.safe_dump({
        "server": {"mhz": 100000, "flops_per_cycle": 16, "link_bytes_per_s": 10**10},
        "clients": {"fast1": {"mhz": 100000, "flops_per_cycle": 16, "link_bytes_per_s": 10**10},
                    "fast2": {"mhz": 100000, "flops_per_cycle": 16, "link_bytes_per_s": 10**10},
                    "slow": {"mhz": 20, "flops_per_cycle": 1, "link_bytes_per_s": 10**10}}}))
    cfg = {**TINY, "training": {**TINY["training"], "mode": "buffered", "buffer": 3, "deadline_ms": 30,
                                "staleness": "polynomial(0.5)"},
           "cut_selection": {"devices": str(devices), "emulate": True}}
    live = _train(tmp_path, cfg, "live")
    iterations = live.array("rounds/iterations")            # (rounds, clients)
    sizes = live.array("rounds/buffer_sizes")               # (rounds, K): buffers of 1..K clients
    assert (sizes @ np.arange(1, 4) == 9).all()             # every round serves N x I = 9 client iterations
    assert sizes[:, :2].sum() > 0                           # some buffers closed at the deadline, short of K = 3
    slow = int(np.argmin(iterations.sum(axis=0)))
    assert iterations[:, slow].sum() < iterations.sum(axis=0).min(initial=99, where=np.arange(3) != slow)
    assert (live.array("rounds/staleness_factor") <= 1).all()
    assert live.status == "complete" and np.isfinite(live.final()["mnist"]["generation_score"])

    replayed = _train(tmp_path, {**cfg, "name": "again"}, "replayed", ["--replay", str(live.path)])
    _assert_same(live, replayed, SAME + ("iterations", "staleness", "served_client", "served_buffer"))


@pytest.mark.mpi
@needs_data
def test_sequential_mode_trains_with_a_per_sample_body_norm(tmp_path):
    # model.body_norm (issue 10): the blocks the server can run normalise each sample on its
    # own, so sequential mode's one-client passes compute what sync's all-client ones would.
    run = _train(tmp_path, TINY, "group", ["--mode", "sequential", "--body-norm", "group"])
    assert run.config["model"]["body_norm"] == "group" and run.status == "complete"
    assert run.array("rounds/buffer_sizes").tolist() == [[9, 0, 0]] * 2  # 9 buffers of 1 client per round
    assert np.isfinite(run.array("rounds/loss_d")).all() and np.isfinite(run.final()["mnist"]["generation_score"])


def _rank_pid(out, rank: int) -> int | None:
    """The pid of MPI rank ``rank`` of the run writing ``out`` (Hydra gives each rank PMI_RANK)."""
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and str(out).encode() in (d / "cmdline").read_bytes():
                if f"PMI_RANK={rank}".encode() in (d / "environ").read_bytes().split(b"\0"):
                    return int(d.name)
        except OSError:
            pass
    return None


@pytest.mark.mpi
@needs_data
@pytest.mark.parametrize("min_clients", [2, 3])
def test_a_frozen_client_is_lost_and_the_buffered_run_goes_on_while_enough_are_live(tmp_path, min_clients):
    """SIGSTOP on client 3 after round 1 (issue 10, point 3): with ``training.min_clients: 2`` the
    server declares it lost after ``client_timeout_s``, the others finish every round and the
    file is complete with the loss recorded; with 3 the run ends as failed, within the timeout + 60 s."""
    from .test_run_end import _alive, _finish, _log, _wait_for

    cfg = {**TINY, "training": {**TINY["training"], "rounds": 4, "iterations_per_epoch": 6, "mode": "buffered",
                                "buffer": 2, "client_timeout_s": 3.0, "min_clients": min_clients}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out, err = tmp_path / "run.h5", tmp_path / "stderr.txt"
    env = dict(checkout_env(), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    with open(err, "w") as f:
        proc = subprocess.Popen([mpiexec(), "-n", "4", huscf_cli(), "train", "--config", str(tmp_path / "cfg.yaml"),
                                 "--data-root", str(DATA), "--output", str(out)],
                                stdout=subprocess.DEVNULL, stderr=f, env=env)
    frozen = None
    try:
        _wait_for(proc, err, "INFO round 1/")
        frozen = _rank_pid(out, 3)
        assert frozen is not None
        t0 = time.monotonic()
        os.kill(frozen, signal.SIGSTOP)
        code = _finish(proc, timeout=180)
        seconds = time.monotonic() - t0
    finally:
        if frozen is not None and _alive(frozen):
            os.kill(frozen, signal.SIGKILL)
    log = _log(err)
    assert "Traceback" not in log, log[-3000:]
    assert "client(s) [3] lost" in log
    if min_clients == 3:
        assert code == 1 and seconds < 3.0 + 60, (code, seconds)
        rf = ResultFile(out, allow_incomplete=True)
        assert rf.status == "failed" and "fewer than training.min_clients (3)" in rf.error
        return
    assert code == 0, log[-3000:]
    rf = ResultFile(out)
    assert rf.status == "complete" and rf.attrs("run")["lost_clients"] == [3]
    live, lost_s = rf.array("rounds/live"), rf.array("rounds/lost_seconds")
    assert live[0].tolist() == [1, 1, 1] and live[-1].tolist() == [1, 1, 0]
    lost_round = int(np.argmax(live[:, 2] == 0))
    assert np.isfinite(lost_s[lost_round, 2]) and np.isnan(np.delete(lost_s[:, 2], lost_round)).all()
    assert (rf.array("rounds/iterations")[lost_round + 1:, 2] == 0).all()
    assert (rf.array("rounds/iterations").sum(axis=1)[lost_round + 1:] == 2 * 6).all()  # live clients x I
    assert np.isnan(rf.array("rounds/loss_d")[lost_round + 1:, 2]).all()
    assert np.isfinite(rf.array("rounds/generation_score")).all() and "mnist" in rf.final()
