"""End-to-end `huscf-mpi train` runs through mpiexec: result file, ledger, reproducibility, bad input."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from huscf_mpi import launch
from huscf_mpi.comm import exposure_set
from huscf_mpi.config import Config
from huscf_mpi.comm.kinds import REGISTRY
from huscf_mpi.strategies.huscf import STRATEGY as HUSCF
from huscf_mpi.models import get_architecture
from huscf_mpi.results import ResultFile
from huscf_mpi.roles.reports import ROUND_STATS, SCALARS

from .conftest import DATA, checkout_env, huscf_cli, needs_data, run_mpi

pytestmark = pytest.mark.mpi

TINY = {
    "name": "tiny", "seed": 5,
    "data": {"domains": {"mnist": 2}, "max_samples_per_client": 256},
    "model": {"width": 0.125},
    "training": {"batch_size": 16, "local_epochs": 1, "rounds": 3, "iterations_per_epoch": 4},
    "federation": {"warmup_rounds": 1},
    "cuts": {1: [2, 4, 1, 5], 2: [1, 5, 2, 4]},
    "evaluation": {"generation_samples": 100, "synthetic_samples": 200, "synthetic_epochs": 1,
                   "classifier_epochs": 1, "batch_size": 50, "sample_grid": False, "grid_per_class": 2},
}


def _write(tmp_path: Path, cfg: dict, name="cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(tmp_path, cfg, out, n=3, extra=()):
    return run_mpi(n, [huscf_cli(), "train", "--config", str(_write(tmp_path, cfg)), "--data-root", str(DATA),
                       "--output", str(out), *extra], timeout=900)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    outs = []
    for i in range(2):
        out = tmp / f"run{i}.h5"
        proc = _train(tmp, TINY, out)
        assert proc.returncode == 0, proc.stderr[-4000:]
        outs.append(out)
    return outs


@needs_data
def test_result_file_is_complete_and_self_describing(two_runs):
    r = ResultFile(two_runs[0])
    assert r.status == "complete"
    p = r.provenance
    for key in ("config_yaml", "seed", "command", "git_commit", "versions", "mpi_library", "n_ranks", "hosts"):
        assert key in p, key
    assert p["n_ranks"] == 3 and len(p["hosts"]) == 3 and "MPICH" in p["mpi_library"]
    assert r.config["seed"] == 5
    rounds = r.rounds()
    assert list(rounds["round"]) == [1, 2, 3]
    assert np.isfinite(rounds["generation_score/mnist"]).all()
    assert r.array("cuts/cut_vectors").tolist() == [[2, 4, 1, 5], [1, 5, 2, 4]]
    assert r.array("rounds/compute_seconds").shape == (3, 3)
    assert (r.array("rounds/bytes_received")[:, 0] > 0).all()
    final = r.final()["mnist"]
    for key in ("accuracy", "precision", "recall", "f1", "fpr", "fid", "generation_score", "classifier_test_accuracy"):
        assert np.isfinite(final[key]), key
    part = r.table("partition")
    assert list(part["size"]) == [256, 256]


@needs_data
def test_same_seed_gives_identical_numbers(two_runs):
    a, b = (ResultFile(p) for p in two_runs)
    for name in ("loss_d", "loss_g", "generation_score", "cluster_labels", "weights", "kld"):
        np.testing.assert_array_equal(a.array(f"rounds/{name}"), b.array(f"rounds/{name}"), err_msg=name)
    assert a.final() == b.final()


@needs_data
def test_ledger_shows_only_smashed_data_gradients_and_parameters(two_runs):
    """Nothing image-, label- or loss-shaped reached the server on the protocol plane."""
    r = ResultFile(two_runs[0])
    ledger = r.table("ledger")
    ledger = ledger[ledger["receiver"] == 0]
    assert set(ledger["source"]) == {1, 2}
    kinds_by_name = {k.name: k for k in REGISTRY.values()}
    arch, width, B = get_architecture("cgan28"), TINY["model"]["width"], TINY["training"]["batch_size"]
    image = tuple(arch.image_shape)
    allowed = {(B, *s) for net in "gd" for s in arch.output_shapes(net, width)[:-1]}
    allowed |= {(TINY["evaluation"]["batch_size"], *s) for s in arch.output_shapes("g", width)[:-1]}
    kinds = set()
    for row in ledger.itertuples():
        shape = tuple(int(v) for v in row.shape.split("x"))
        kinds.add(row.kind)
        assert (row.plane, row.payload) == (kinds_by_name[row.kind].plane, kinds_by_name[row.kind].payload)
        if row.plane == "report":
            iters = TINY["training"]["iterations_per_epoch"] * TINY["training"]["local_epochs"]
            assert row.dtype == "float64" and shape in {(len(ROUND_STATS),), (len(SCALARS),), (iters,)}, row
            continue
        assert row.dtype == "float32", row
        assert shape[-3:] != image and shape != (B,) and shape != (B, 1), row
        if row.kind == "params_up":
            assert len(shape) == 1 and shape[0] > 1000
        else:
            assert shape in allowed, row
    assert {"g_smashed", "d_real_smashed", "g_body_grad", "params_up", "eval_smashed"} <= kinds
    assert "sample_grid" not in kinds  # evaluation.sample_grid is off in TINY
    # The result file's who-saw-what (all ranks' ledgers) is exactly what HuSCF-GAN documents.
    assert exposure_set(r.table("exposure").to_dict("list")) == HUSCF.exposure(Config.model_validate(r.config))
    assert r.provenance["strategy"] == "huscf" and r.provenance["fake_labels"] == "real"


def _one_error_line(proc) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("huscf-mpi: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def _run_single(args) -> subprocess.CompletedProcess:
    return subprocess.run([huscf_cli(), *args], capture_output=True, text=True, timeout=300, env=checkout_env())


@pytest.mark.parametrize("cfg, words", [
    ({"training": {"batch_sze": 3}}, ["training.batch_sze", "unknown key"]),
    ({"training": {"batch_size": "many"}}, ["training.batch_size", "integer"]),
    ({"data": {"domains": {"mnist": 0}}}, ["data.domains", "0 clients"]),
    ({"data": {"scenario": 3, "domains": {"mnist": 2}}}, ["data: domains", "no clients for fashion_mnist"]),
    ({"cuts": [3, 5, 1, 5]}, ["cuts", "pinned"]),
    ({"data": {"domains": {"mnist": 1, "cifar10": 1}}}, ["data: domains mix image shapes", "cifar10 3x32x32"]),
    ({"data": {"domains": {"bloodmnist": 1}}}, ["bloodmnist", "not available"]),
    ({"data": {"domains": {"cifar10": 1}}}, ["cgan28 takes 28x28 images", "model.architecture: cgan32"]),
])
def test_bad_config_gets_one_line(tmp_path, cfg, words):
    proc = run_mpi(2, [huscf_cli(), "train", "--config", str(_write(tmp_path, {**cfg, "data": {
        **{"domains": {"mnist": 1}}, **cfg.get("data", {})}}))], timeout=300)
    line = _one_error_line(proc)
    for w in words:
        assert w in line, line


def test_rank_count_mismatch(tmp_path):
    line = _one_error_line(_run_single(["train", "--config", str(_write(tmp_path, {"data": {"domains": {"mnist": 4}}}))]))
    assert "mpiexec -n 5" in line


def test_missing_dataset_file(tmp_path):
    root = tmp_path / "data"
    (root / "mnist").mkdir(parents=True)
    proc = run_mpi(2, [huscf_cli(), "train", "--config", str(_write(tmp_path, {"data": {"domains": {"mnist": 1}}})),
                       "--data-root", str(root), "--output", str(tmp_path / "x.h5")], timeout=300)
    line = _one_error_line(proc)
    assert "train-images-idx3-ubyte.gz" in line and "HUSCF_DATA_ROOT" in line
    assert not (tmp_path / "x.h5").exists()


def test_missing_config_file(tmp_path):
    line = _one_error_line(_run_single(["train", "--config", str(tmp_path / "nope.yaml")]))
    assert "nope.yaml" in line


@needs_data
def test_emulated_ga_run_records_profiles_cuts_and_latency(tmp_path):
    cfg = {**TINY, "cuts": "ga", "training": {**TINY["training"], "rounds": 1},
           "cut_selection": {"devices": str(Path(__file__).resolve().parents[1] / "jobs/devices/paper.yaml"),
                             "population": 50, "generations": 20, "profile_repeats": 1, "profile_warmup": 1}}
    out = tmp_path / "ga.h5"
    proc = _train(tmp_path, cfg, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = ResultFile(out)
    cuts = r.attrs("cuts")
    assert cuts["mode"] == "ga" and cuts["emulated"]
    assert cuts["predicted_seconds_per_iteration"] > 0
    assert cuts["predicted_seconds_per_iteration"] <= cuts["best_uniform_seconds_per_iteration"] + 1e-12
    profiles = r.table("cuts/profiles")
    assert list(profiles["client"]) == [1, 2] and all(p.startswith("device") for p in profiles["profile"])
    assert r.array("cuts/measured_g_forward_seconds").shape == (3, 5)
    assert len(r.array("cuts/ga_best_fitness")) >= 2
    assert r.array("rounds/iteration_seconds").shape == (1, 4)
    assert r.array("rounds/emulation_overrun_seconds").shape == (1, 2)


@needs_data
def test_fslgan_run_with_helper_devices_records_placement_and_every_rank(tmp_path):
    """Issue 9: 2 clients x 3 devices = 7 ranks; helpers hold no data, report like clients."""
    # No devices file: measured profiles. A budget no device meets: A stays on its owner (the data
    # is there), B and C go where most capacity is left, a helper, whatever the measured speeds.
    cfg = {**TINY, "strategy": "fslgan", "training": {**TINY["training"], "rounds": 1, "fake_labels": "uniform"},
           "cut_selection": {"profile_repeats": 1, "profile_warmup": 0},
           "fslgan": {"devices_per_client": 3, "budget_seconds": 1e-9}}
    line = _one_error_line(_run_single(["train", "--config", str(_write(tmp_path, cfg))]))
    assert "mpiexec -n 7" in line and "3 devices" in line, line
    out = tmp_path / "fsl.h5"
    proc = _train(tmp_path, cfg, out, n=7)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = ResultFile(out)
    assert r.provenance["strategy"] == "fslgan"
    placement, devices = r.table("strategy/placement"), r.table("strategy/devices")
    assert list(placement["part"]) == ["A", "B", "C"] * 2 and list(placement["rank"][::3]) == [1, 2]
    assert sorted(devices["rank"]) == list(range(1, 7)) and not set(placement["rank"][1::3]) & {1, 2}
    assert list(placement["over_budget"]) == [1, 1, 1] * 2
    assert [p.startswith("rank") for p in r.table("cuts/profiles")["profile"]] == [True] * 6  # measured
    assert r.array("rounds/loss_d").shape == (1, 2) and r.array("rounds/bytes_sent").shape == (1, 7)
    assert (r.array("rounds/bytes_sent")[0, 3:] > 0).any()  # helper devices report their traffic
    assert ("smashed_data", "client", "client") in exposure_set(r.table("exposure").to_dict("list"))
    assert list(r.table("partition")["client"]) == [1, 2]


@needs_data
def test_a_crash_on_one_rank_aborts_the_job_and_leaves_no_complete_file(tmp_path):
    out = tmp_path / "crash.h5"
    proc = run_mpi(3, [sys.executable, str(Path(__file__).parent / "mpi" / "crash_client.py"),
                       str(_write(tmp_path, TINY)), str(out), str(DATA)], timeout=300)
    assert proc.returncode != 0
    assert "rank 2 crashed: injected failure on client 2" in proc.stderr
    assert not out.exists()
    assert ResultFile(out, allow_incomplete=True).status != "complete"


@needs_data
def test_preflight_stops_a_run_that_cannot_fit_before_training(tmp_path):
    cfg = {**TINY, "preflight": {"memory_fraction": 1e-6}}
    out = tmp_path / "big.h5"
    proc = _train(tmp_path, cfg, out)
    line = _one_error_line(proc)
    assert line.startswith("huscf-mpi: error: host ") and "available" in line and "model.width" in line, line
    assert "round 1/" not in proc.stderr  # stopped before training
    assert not out.exists()
    assert ResultFile(out, allow_incomplete=True).status != "complete"


@needs_data
def test_preflight_warn_runs_anyway_and_records_the_plan(tmp_path):
    cfg = {**TINY, "training": {**TINY["training"], "rounds": 1},
           "preflight": {"memory": "warn", "memory_fraction": 1e-6}}
    out = tmp_path / "warn.h5"
    proc = _train(tmp_path, cfg, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING host " in proc.stderr and "more for 3 ranks" in proc.stderr
    plan = ResultFile(out).table("preflight")
    assert list(plan["ranks"]) == [3] and not plan["fits"][0] and plan["growth_bytes"][0] > 0
    private = ResultFile(out).array("rounds/private_dirty_bytes")
    assert private.shape == (1, 3) and (private > 50 * 2**20).all()


@needs_data
def test_plain_clients_do_not_import_io_analysis_or_ga_libraries(tmp_path):
    import json

    out, report = tmp_path / "mods.h5", tmp_path / "report"
    report.mkdir()
    cfg = {**TINY, "training": {**TINY["training"], "rounds": 1}}
    proc = run_mpi(3, [sys.executable, str(Path(__file__).parent / "mpi" / "client_modules.py"), str(report),
                       "--config", str(_write(tmp_path, cfg)), "--output", str(out), "--data-root", str(DATA)],
                   timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    plain, evaluator = (json.loads((report / f"rank{c}.json").read_text()) for c in (2, 1))
    assert not plain["evaluator"] and plain["modules"] == [], plain
    assert evaluator["evaluator"] and "sklearn" in evaluator["modules"]  # the check can see an import


@needs_data
def test_a_toy_strategy_runs_through_the_unchanged_engine(tmp_path):
    """The seam's contract: a method defined outside the package gets the whole engine."""
    out = tmp_path / "toy.h5"
    proc = run_mpi(3, [sys.executable, str(Path(__file__).parent / "mpi" / "toy_strategy.py"),
                       str(_write(tmp_path, TINY)), str(out), str(DATA)], timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = ResultFile(out)
    iters, rounds = TINY["training"]["iterations_per_epoch"], TINY["training"]["rounds"]
    assert r.provenance["strategy"] == "toy" and "cuts/cut_vectors" not in r
    # client_values: each client's own per-round value, (R, N)
    np.testing.assert_array_equal(r.array("rounds/toy_iterations"), [[iters * k] * 2 for k in range(1, rounds + 1)])
    assert r.array("rounds/toy_total").shape == (rounds,) and np.all(np.diff(r.array("rounds/toy_total")) > 0)
    np.testing.assert_array_equal(r.array("rounds/loss_d"), np.full((rounds, 2), 0.5))
    assert r.array("rounds/iteration_seconds").shape == (rounds, iters)
    exposure = r.table("exposure")
    assert exposure_set(exposure.to_dict("list")) == {("losses", "client", "server"), ("losses", "server", "client")}
    up = exposure[(exposure.plane == "protocol") & (exposure.sender == "client")]
    assert int(up.messages.iloc[0]) == 2 * iters * rounds and int(up.bytes.iloc[0]) == 4 * 2 * iters * rounds


@pytest.mark.parametrize("options, status, line", [
    (["--seed", "abc"], 2, "huscf-mpi: error: --seed: 'abc' is not a valid integer"),
    (["--rounds", "0"], 2, "huscf-mpi: error: "),
    (["--help"], 0, "Usage: huscf-mpi train [OPTIONS]"),
])
def test_client_ranks_end_with_rank_0s_decision_on_the_command_line(tmp_path, options, status, line):
    """Client ranks do not parse the command line (launch.py): rank 0 hands them its exit status,
    so a refused option or config still ends every rank, said once, and --help prints once."""
    proc = run_mpi(3, [huscf_cli(), "train", "--output", str(tmp_path / "x.h5"), *options], timeout=300)
    assert proc.returncode == status, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert text.count(line) == 1, text[-2000:]
    if status:
        assert proc.stderr.count("huscf-mpi: error:") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "x.h5.partial").exists()


def test_a_client_rank_is_handed_a_config_view_equal_to_rank_0s_config():
    """What client ranks get instead of the pydantic model: every field and derived property, the
    same YAML, nothing of pydantic inside (so unpickling it needs no pydantic), and frozen."""
    import pickle

    from huscf_mpi.config import load_config, view
    from huscf_mpi.config_view import ConfigView

    cfg = load_config(None, {"cuts": {1: [2, 4, 1, 5], 2: [1, 5, 2, 4], 3: [1, 5, 1, 5], 4: [2, 4, 2, 4]},
                             "training.staleness": "hinge(2, 1)"})
    got = pickle.loads(pickle.dumps(view(cfg)))
    assert b"pydantic" not in pickle.dumps(got)

    def same(model, v):
        for name in type(model).model_fields:
            a, b = getattr(model, name), getattr(v, name)
            if isinstance(b, ConfigView):
                same(a, b)
            else:
                assert a == b and type(a) is type(b), (name, a, b)
    same(cfg, got)
    assert (got.data.n_clients, got.output_path, got.to_yaml()) == (cfg.data.n_clients, cfg.output_path, cfg.to_yaml())
    with pytest.raises(AttributeError, match="frozen"):
        got.seed = 1
    with pytest.raises(AttributeError, match="no field 'sed'"):
        got.sed


def test_client_ranks_end_the_job_when_rank_0_never_hands_over():
    t0 = time.monotonic()
    proc = run_mpi(3, [sys.executable, str(Path(__file__).parent / "mpi" / "handover_timeout.py")], timeout=120)
    assert proc.returncode == launch.EXIT_TIMEOUT, proc.stderr[-2000:]
    assert "rank 0's hand-over of the run did not arrive within 2 s; ending the job" in proc.stderr
    assert time.monotonic() - t0 < 50  # not the 60 s rank 0 sleeps
