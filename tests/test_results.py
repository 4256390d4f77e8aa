"""Result file round trip: ResultWriter -> HDF5 -> ResultFile / summary."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from huscf_mpi.results import SCHEMA_VERSION, ResultFile, ResultWriter, summary
from huscf_mpi.results import schema
from huscf_mpi.results.schema import partial_path

N_CLIENTS = 4
N_RANKS = N_CLIENTS + 1
DOMAINS = ["mnist", "fmnist"]
R = 3
CONFIG_YAML = "seed: 7\nrounds: 3\nclients:\n  n: 4\n"
CUTS = np.array([[1, 4, 2, 5], [2, 5, 1, 4], [1, 4, 2, 5], [1, 4, 2, 5]])
LOSS_D = np.arange(R * N_CLIENTS, dtype=np.float32).reshape(R, N_CLIENTS) / 10
LOSS_G = LOSS_D + 1
GEN = np.array([[0.5, 0.25], [0.6, 0.3], [0.7, 0.35]])
CLUSTERS = np.array([[0, 0, 1, 1], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.int32)
WALL = np.array([1.5, 2.0, 2.5])
ARI = np.array([0.1, 0.5, 1.0])
BYTES_SENT = np.arange(R * N_RANKS, dtype=np.int64).reshape(R, N_RANKS) * 1000
SAMPLES = {d: (np.arange(R * 6 * 8).reshape(R, 6, 8) * (i + 1) % 256).astype(np.uint8) for i, d in enumerate(DOMAINS)}
LEDGER = {
    "receiver": [0, 0, 0, 0],
    "kind": ["smashed", "smashed", "grad", "weights"],
    "plane": ["protocol"] * 4,
    "payload": ["smashed_data", "smashed_data", "smashed_data", "parameters"],
    "source": [1, 2, 1, 3],
    "shape": [(64, 128, 7, 7), (64, 128, 7, 7), "64x1", "1024"],
    "dtype": ["float32"] * 4,
    "bytes": [3000, 3000, 512, 4096],
    "count": [3, 3, 2, 1],
}
FINAL = {"mnist": dict(accuracy=97.5, f1=96.25, fpr=0.5, fid=12.0), "fmnist": dict(accuracy=88.0, f1=87.5, fpr=1.25)}


def write_run(path, **kwargs):
    w = ResultWriter(path, **kwargs)
    w.write_provenance(config_yaml=CONFIG_YAML, seed=7, command="huscf-mpi train cfg.yaml", git_commit="abc1234",
                       git_dirty=True, versions={"python": "3.12.1", "numpy": np.__version__}, mpi_library="MPICH Version: 4.2.0",
                       n_ranks=N_RANKS, hosts=["node01", "node02"], slurm_job_id="", started="2025-01-01T00:00:00Z")
    w.write_array("domains", DOMAINS)
    w.write_table("partition", {"client": [1, 2, 3, 4], "domain": ["mnist", "mnist", "fmnist", "fmnist"],
                                "size": [600, 500, 400, 300], "excluded_labels": [[2, 5], [], "", [7]]})
    w.write_array("cuts/cut_vectors", CUTS)
    w.set_attrs("cuts", mode="ga")
    for r in range(R):
        w.append("rounds/round", r)
        w.append("rounds/loss_d", LOSS_D[r])
        w.append("rounds/loss_g", LOSS_G[r])
        w.append("rounds/generation_score", GEN[r])
        w.append("rounds/cluster_labels", CLUSTERS[r])
        w.append("rounds/adjusted_rand_index", ARI[r])
        w.append("rounds/wall_seconds", WALL[r])
        w.append("rounds/bytes_sent", BYTES_SENT[r])
        for d in DOMAINS:
            w.append(f"samples/{d}", SAMPLES[d][r])
        w.flush()
    w.write_table("ledger", LEDGER)
    for d, metrics in FINAL.items():
        w.set_attrs(f"final/{d}", **metrics)
    w.write_provenance(ended="2025-01-01T01:00:00Z")
    return w


@pytest.fixture
def run_file(tmp_path):
    path = tmp_path / "sub" / "run.h5"
    w = write_run(path)
    assert not path.exists() and partial_path(path).exists()  # nothing at the final path until complete
    assert w.close() == path
    return path


def test_round_trip(run_file):
    assert not partial_path(run_file).exists()
    with ResultFile(run_file) as rf:
        assert rf.schema_version == SCHEMA_VERSION
        assert rf.status == "complete" and rf.error == ""
        assert rf.created.endswith("Z") and rf.finished.endswith("Z")
        prov = rf.provenance
        assert prov["seed"] == 7 and prov["n_ranks"] == N_RANKS
        assert prov["git_dirty"] is True and prov["git_commit"] == "abc1234"
        assert prov["hosts"] == ["node01", "node02"]
        assert prov["versions"] == {"python": "3.12.1", "numpy": np.__version__}
        assert prov["slurm_job_id"] == "" and prov["ended"] == "2025-01-01T01:00:00Z"
        assert prov["config_yaml"] == CONFIG_YAML
        assert rf.config == {"seed": 7, "rounds": 3, "clients": {"n": 4}}
        assert rf.domains == DOMAINS

        part = rf.table("partition")
        assert list(part.columns) == ["client", "domain", "size", "excluded_labels"]
        assert part["client"].tolist() == [1, 2, 3, 4] and part["client"].dtype == np.int32
        assert part["size"].dtype == np.int64 and part["size"].tolist() == [600, 500, 400, 300]
        assert part["domain"].tolist() == ["mnist", "mnist", "fmnist", "fmnist"]
        assert part["excluded_labels"].tolist() == ["2,5", "", "", "7"]

        cuts = rf.array("cuts/cut_vectors")
        assert cuts.dtype == np.int32 and np.array_equal(cuts, CUTS)
        assert rf.attrs("cuts") == {"mode": "ga"}

        np.testing.assert_array_equal(rf.array("rounds/round"), np.arange(R))
        np.testing.assert_array_equal(rf.array("rounds/loss_d"), LOSS_D)
        assert rf.array("rounds/loss_d").dtype == np.float32
        np.testing.assert_array_equal(rf.array("rounds/cluster_labels"), CLUSTERS)
        np.testing.assert_array_equal(rf.array("rounds/bytes_sent"), BYTES_SENT)
        np.testing.assert_array_equal(rf.array("rounds/wall_seconds"), WALL)
        for d in DOMAINS:
            s = rf.samples(d)
            assert s.dtype == np.uint8 and s.shape == (R, 6, 8)
            np.testing.assert_array_equal(s, SAMPLES[d])

        ledger = rf.table("ledger")
        assert ledger["shape"].tolist() == ["64x128x7x7", "64x128x7x7", "64x1", "1024"]
        assert ledger["bytes"].dtype == np.int64 and ledger["bytes"].tolist() == LEDGER["bytes"]
        assert ledger["source"].dtype == np.int32 and ledger["kind"].tolist() == LEDGER["kind"]
        assert rf.final() == {d: {k: float(v) for k, v in m.items()} for d, m in FINAL.items()}


def test_rounds_dataframe(run_file):
    with ResultFile(run_file) as rf:
        df = rf.rounds()
    expected = (["round"] + [f"loss_d[{i}]" for i in range(N_CLIENTS)] + [f"loss_g[{i}]" for i in range(N_CLIENTS)]
                + ["generation_score/mnist", "generation_score/fmnist"] + [f"cluster_labels[{i}]" for i in range(N_CLIENTS)]
                + ["adjusted_rand_index", "wall_seconds"] + [f"bytes_sent[{i}]" for i in range(N_RANKS)])
    assert list(df.columns) == expected
    assert df.shape == (R, len(expected))
    assert df["round"].tolist() == [0, 1, 2]
    np.testing.assert_allclose(df["generation_score/fmnist"], GEN[:, 1])
    np.testing.assert_allclose(df["loss_d[2]"], LOSS_D[:, 2])


def test_failed_run_stays_partial(tmp_path):
    path = tmp_path / "run.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with write_run(path):
            raise RuntimeError("boom\nsecond line")
    assert not path.exists()
    partial = partial_path(path)
    assert partial.exists()
    with h5py.File(partial, "r") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["error"] == "RuntimeError('boom\\nsecond line')"  # repr keeps it on one line
    with pytest.raises(ValueError, match="incomplete"):
        ResultFile(path)
    with pytest.raises(ValueError, match="status failed"):
        ResultFile(partial)
    with ResultFile(path, allow_incomplete=True) as rf:
        assert rf.status == "failed" and "boom" in rf.error
        assert rf.rounds().shape[0] == R  # data written before the failure is still readable
    text = summary(path)
    assert "INCOMPLETE (failed)" in text and "boom" in text


def test_killed_run_reads_as_running(tmp_path):
    path = tmp_path / "run.h5"
    w = write_run(path)
    w.flush()  # a crash now leaves the file as is: status still running, at .partial
    with ResultFile(path, allow_incomplete=True) as rf:
        assert rf.status == "running" and rf.finished == ""
    assert "INCOMPLETE (running)" in summary(path)
    w.close(status="failed", error="killed")


def test_killed_process_leaves_readable_partial(tmp_path):
    path = tmp_path / "run.h5"
    # os._exit skips every cleanup, as SIGKILL from a scheduler would.
    code = ("import os, sys; sys.path.insert(0, sys.argv[2]); from test_results import write_run; "
            "w = write_run(sys.argv[1]); w.flush(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path), str(Path(__file__).parent)], check=True, timeout=60)
    assert not path.exists()
    with ResultFile(path, allow_incomplete=True) as rf:  # no h5clear needed
        assert rf.status == "running"
        np.testing.assert_array_equal(rf.array("rounds/loss_d"), LOSS_D)


def test_existing_final_path_refused(run_file):
    with pytest.raises(FileExistsError, match="already exists"):
        ResultWriter(run_file)
    before = run_file.read_bytes()
    w = ResultWriter(run_file, overwrite=True)
    w.append("rounds/round", 0)
    assert run_file.read_bytes() == before  # old result kept until the new run completes
    w.close()
    with ResultFile(run_file) as rf:
        assert rf.array("rounds/round").tolist() == [0] and rf.rounds().shape == (1, 1)


def test_newer_schema_refused(run_file):
    with h5py.File(run_file, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="schema version"):
        ResultFile(run_file, allow_incomplete=True)


def test_writer_rejects_bad_input(tmp_path):
    w = ResultWriter(tmp_path / "run.h5")
    w.append("rounds/loss_d", np.zeros(N_CLIENTS))
    with pytest.raises(ValueError, match="row shape"):
        w.append("rounds/loss_d", np.zeros(N_CLIENTS + 1))
    w.append("rounds/round", 0)
    with pytest.raises(TypeError):
        w.append("rounds/round", 0.5)  # a float would be silently truncated in an int dataset
    with pytest.raises(TypeError):
        w.append("samples/mnist", np.zeros((2, 2)))  # image grids must be integer 0..255
    with pytest.raises(ValueError, match="differ in length"):
        w.write_table("preflight_ranks", {"rank": [1, 2], "host": ["a"]})
    # The layout (schema.LAYOUT) declares every name: anything else is a programming error.
    with pytest.raises(ValueError, match="'rounds/loss_x' is not in the result layout"):
        w.append("rounds/loss_x", 1.0)
    with pytest.raises(ValueError, match="'t' is not in the result layout"):
        w.write_table("t", {"a": [1]})
    with pytest.raises(ValueError, match=r"columns \['colour'\] are not in the result layout"):
        w.write_table("preflight_ranks", {"rank": [1], "colour": ["red"]})
    with pytest.raises(ValueError, match="'cuts/notes' is not in the result layout"):
        w.write_array("cuts/notes", ["x"])
    with pytest.raises(ValueError, match="'finals/mnist' is not in the result layout"):
        w.set_attrs("finals/mnist", accuracy=1.0)
    with pytest.raises(TypeError, match="declared float"):
        w.append("rounds/wall_seconds", 3)  # an int would make the dataset int for good
    with pytest.raises(ValueError, match=r"expected shape \(R, N\)"):
        w.append("rounds/loss_g", 0.5)
    w.declare(schema.Dataset("rounds/loss_x", "(R,)", "float", "", "a strategy's own"))
    w.append("rounds/loss_x", 1.0)
    with pytest.raises(ValueError, match="missing required columns"):
        w.write_table("partition", {"client": [1]})
    with pytest.raises(ValueError, match="shape"):
        w.write_array("cuts/cut_vectors", np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="managed by the writer"):
        w.set_attrs("/", status="complete")
    with pytest.raises(ValueError):
        w.close(status="running")
    w.close(status="failed", error="test")
    with pytest.raises(RuntimeError, match="closed"):
        w.append("rounds/round", 1)


def test_large_config_attr(tmp_path):
    big = "\n".join(f"key{i}: {'x' * 60}" for i in range(2000))  # > 64 KiB, the classic attr limit
    with ResultWriter(tmp_path / "run.h5") as w:
        w.write_provenance(config_yaml=big, extra=None, where=tmp_path)
    with ResultFile(tmp_path / "run.h5") as rf:
        assert rf.provenance["config_yaml"] == big and len(rf.config) == 2000
        assert rf.provenance["extra"] is None and rf.provenance["where"] == str(tmp_path)


def test_summary_contains_key_figures(run_file):
    text = summary(run_file)
    assert "status: complete" in text and "INCOMPLETE" not in text
    for figure in ("huscf-mpi train cfg.yaml", "node01, node02", "abc1234 (dirty)", "MPICH Version: 4.2.0",
                   "seed: 7", "domains: mnist, fmnist", "clients: 4", "mode ga"):
        assert figure in text, figure
    assert "(1, 4, 2, 5) x 3" in text and "(2, 5, 1, 4) x 1" in text
    assert "rounds: 3" in text and "GS/fmnist" in text and "ARI" in text
    # mean D loss of round 2 = mean(LOSS_D[2]) = 0.95
    assert f"{LOSS_D[2].mean():.4g}" in text
    assert "smashed (smashed_data): 6 messages, 5.9 KiB (6000 B)" in text and "grad (smashed_data): 2 messages" in text
    assert "total: 9 messages, 10.4 KiB" in text
    assert f"bytes sent {BYTES_SENT.sum() / 1024:.1f} KiB ({BYTES_SENT.sum()} B)" in text
    assert "wall 6.000 s" in text
    assert "97.5" in text and "fid" in text
