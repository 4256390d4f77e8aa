"""Benchmark tables, plots and SLURM scripts on synthetic result files with known numbers."""
from __future__ import annotations

import csv
import io
import math
import re
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from huscf_mpi.analysis import exposure_summary, make_table
from huscf_mpi.analysis.grouping import group_runs
from huscf_mpi.analysis.plots import FIGURES
from huscf_mpi.analysis.runs import load_runs
from huscf_mpi.cli import main
from huscf_mpi.results import ResultWriter, summary
from huscf_mpi.slurm import render_sbatch

DOMAINS = ["mnist", "fashion_mnist"]
N_CLIENTS, R, ITERS = 4, 3, 10
CUTS = {"fixed": [2, 4, 1, 5], "umax": "uniform-max"}
# Final accuracy (%) per (configuration, seed) and domain; chosen so mean and std are easy.
ACC = {("fixed", 0): (90.0, 80.0), ("fixed", 1): (92.0, 84.0),
       ("umax", 0): (80.0, 70.0), ("umax", 1): (86.0, 76.0)}
FPR = {("fixed", 0): (1.0, 2.0), ("fixed", 1): (3.0, 2.0), ("umax", 0): (0.5, 1.0), ("umax", 1): (0.5, 3.0)}
GS = {("fixed", 0): (8.0, 6.0), ("fixed", 1): (9.0, 7.0), ("umax", 0): (7.0, 5.5), ("umax", 1): (7.5, 6.5)}
WALL = {("fixed", 0): [1.0, 2.0, 3.0], ("fixed", 1): [2.0, 2.0, 2.0],  # sums 6 and 6
        ("umax", 0): [3.0, 3.0, 3.0], ("umax", 1): [4.0, 4.0, 4.0]}   # sums 9 and 12
BYTES_PER_RANK_ROUND = {"fixed": 2**20, "umax": 2 * 2**20}  # -> MiB moved = R * ranks * this / 2**20


def config(kind: str, seed: int, scenario: int = 3, width: float = 0.25, name: str | None = None) -> dict:
    return {"name": name or kind, "seed": seed, "output": f"results/{kind}-s{seed}.h5",
            "data": {"root": None, "domains": {"mnist": 2, "fashion_mnist": 2}, "scenario": scenario,
                     "max_samples_per_client": 640},
            "model": {"architecture": "cgan28", "width": width},
            "training": {"batch_size": 64, "lr": 0.0002, "betas": [0.5, 0.999], "local_epochs": 1, "rounds": R,
                         "iterations_per_epoch": ITERS},
            "cuts": CUTS[kind]}


# /exposure of a HuSCF-GAN-like run: (payload, plane, sender, receiver, messages, bytes).
EXPOSURE = [
    ("smashed_data", "protocol", "client", "server", 256, 256 * 2**14),
    ("smashed_data", "protocol", "server", "client", 256, 256 * 2**14),
    ("image_gradients", "protocol", "server", "client", 0, 0),  # a zero row: nothing moved
    ("parameters", "protocol", "client", "server", 12, 3 * 2**20),
    ("parameters", "protocol", "server", "client", 12, 3 * 2**20),
    ("synthetic_images", "evaluation", "client", "server", 2, 2048),
    ("losses", "report", "client", "server", 12, 96),  # report plane: harness traffic, not counted
    ("probe", "setup", "server", "client", 4, 4096),
]


def exposure_table(rows=EXPOSURE) -> dict:
    cols = ("payload", "plane", "sender", "receiver", "messages", "bytes")
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


def write_run(path, kind: str, seed: int, fail: bool = False, profiles: bool = False, strategy: str | None = "huscf",
              exposure=None, **cfg):
    w = ResultWriter(path)
    extra = {"strategy": strategy} if strategy else {}  # None: a file from before strategies were recorded
    w.write_provenance(config_yaml=yaml.safe_dump(config(kind, seed, **cfg), sort_keys=False), seed=seed,
                       n_ranks=N_CLIENTS + 1, hosts=["node"] * (N_CLIENTS + 1), slurm_job_id="", **extra)
    w.write_array("domains", DOMAINS)
    w.write_table("partition", {"client": [1, 2, 3, 4], "domain": ["mnist", "mnist", "fashion_mnist", "fashion_mnist"],
                                "size": [640] * 4, "excluded_labels": [""] * 4})
    cuts = np.array([[2, 4, 1, 5]] * N_CLIENTS) if kind == "fixed" else np.array([[2, 3, 2, 4]] * N_CLIENTS)
    w.write_array("cuts/cut_vectors", cuts)
    if profiles:
        w.write_table("cuts/profiles", {"client": [1, 2, 3, 4], "profile": ["device1", "device3", "device1", "device3"],
                                        "flops_per_s": [4.8e8, 1.248e11, 4.8e8, 1.248e11],
                                        "link_bytes_per_s": [5e7, 1e9, 5e7, 1e9]})  # as `cuts: ga` writes it
    w.set_attrs("run", iterations_per_round=ITERS)
    rng = np.random.default_rng(seed)
    key = (kind, seed % 2)  # seeds beyond 0 and 1 reuse their numbers
    for r in range(R):
        w.append("rounds/round", r + 1)
        w.append("rounds/wall_seconds", WALL[key][r])
        w.append("rounds/loss_d", rng.uniform(0.5, 1.0, N_CLIENTS))
        w.append("rounds/loss_g", rng.uniform(1.0, 2.0, N_CLIENTS))
        w.append("rounds/generation_score", np.array(GS[key]) * (r + 1) / R)
        w.append("rounds/cluster_labels", np.array([0, 0, 1, 1]) if r else np.zeros(N_CLIENTS, int))
        wall = WALL[key][r]
        w.append("rounds/compute_seconds", np.full(N_CLIENTS + 1, 0.5 * wall))
        w.append("rounds/comm_seconds", np.full(N_CLIENTS + 1, 0.3 * wall))
        w.append("rounds/bytes_sent", np.full(N_CLIENTS + 1, BYTES_PER_RANK_ROUND[kind], dtype=np.int64))
        w.append("rounds/bytes_received", np.full(N_CLIENTS + 1, BYTES_PER_RANK_ROUND[kind], dtype=np.int64))
        for j, d in enumerate(DOMAINS):
            w.append(f"samples/{d}", np.full((20, 16), 40 * (r + 1) + j, np.uint8))
    if exposure is not None:
        w.write_table("exposure", exposure_table(exposure))
    for j, d in enumerate(DOMAINS):
        w.set_attrs(f"final/{d}", accuracy=ACC[key][j], precision=ACC[key][j] - 1,
                    recall=ACC[key][j] - 2, f1=ACC[key][j] - 3, fpr=FPR[key][j],
                    generation_score=GS[key][j], classifier_test_accuracy=99.0)
    return w.close("failed", error="killed") if fail else w.close()


@pytest.fixture
def files(tmp_path):
    return [write_run(tmp_path / f"{k}-s{s}.h5", k, s) for k in ("fixed", "umax") for s in (0, 1)]


def mean_std(a, b):
    return (a + b) / 2, abs(a - b) / math.sqrt(2)  # sample std (ddof=1) of two values


def md_rows(text: str) -> list[dict]:
    lines = [ln for ln in text.strip().splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def test_md_mean_std(files):
    text, notes = make_table(files)
    rows = md_rows(text)
    assert [r["configuration"] for r in rows] == ["cuts=[2,4,1,5]", "cuts=uniform-max"]
    assert notes == []
    fixed, umax = rows
    assert fixed["n"] == "2"
    m, s = mean_std(90, 92)
    assert fixed["mnist acc %"] == f"**{m:.2f} ± {s:.2f}**"  # higher accuracy: best, bold
    m, s = mean_std(80, 86)
    assert umax["mnist acc %"] == f"{m:.2f} ± {s:.2f}"
    m, s = mean_std(70, 76)
    assert umax["fashion_mnist acc %"] == f"{m:.2f} ± {s:.2f}"
    assert umax["mnist FPR %"] == "**0.50 ± 0.00**"  # lower FPR is better
    assert fixed["mnist GS"] == "**8.500 ± 0.707**"
    assert fixed["train s"] == "**6.0 ± 0.0**" and umax["train s"] == "10.5 ± 2.1"
    assert fixed["meas s/it"] == f"**{6 / (R * ITERS):.4f} ± 0.0000**"
    assert fixed["MiB moved"] == f"**{R * (N_CLIENTS + 1):.2f} ± 0.00**"
    assert "mnist FID (clf)" not in fixed and "pred s/it" not in fixed  # absent from every file


def test_csv_numbers(files):
    text, _ = make_table(files, fmt="csv")
    rows = {r["configuration"]: r for r in csv.DictReader(io.StringIO(text))}
    fixed, umax = rows["cuts=[2,4,1,5]"], rows["cuts=uniform-max"]
    assert fixed["n"] == "2" and fixed["seeds"] == "0 1" and fixed["incomplete"] == "0"
    for row, kind in ((fixed, "fixed"), (umax, "umax")):
        for j, d in enumerate(DOMAINS):
            m, s = mean_std(ACC[(kind, 0)][j], ACC[(kind, 1)][j])
            assert float(row[f"{d}/accuracy_mean"]) == pytest.approx(m)
            assert float(row[f"{d}/accuracy_std"]) == pytest.approx(s)
            m, s = mean_std(ACC[(kind, 0)][j] - 3, ACC[(kind, 1)][j] - 3)
            assert float(row[f"{d}/f1_mean"]) == pytest.approx(m)
        train = [sum(WALL[(kind, s)]) for s in (0, 1)]
        assert float(row["train_s_mean"]) == pytest.approx(np.mean(train))
        assert float(row["train_s_std"]) == pytest.approx(np.std(train, ddof=1))
        assert float(row["mib_moved_mean"]) == pytest.approx(R * (N_CLIENTS + 1) * BYTES_PER_RANK_ROUND[kind] / 2**20)
    assert "mnist/accuracy" in fixed["best"].split(";") and "mnist/fpr" in umax["best"].split(";")
    assert "mnist/accuracy" not in umax["best"].split(";")


def test_latex(files):
    text, _ = make_table(files, fmt="latex")
    assert text.startswith(r"\begin{tabular}") and text.rstrip().endswith(r"\end{tabular}")
    assert r"\multicolumn{6}{c}{fashion\_mnist}" in text
    m, s = mean_std(90, 92)
    line = next(ln for ln in text.splitlines() if ln.startswith("cuts=[2,4,1,5]"))
    assert rf"\textbf{{{m:.2f} $\pm$ {s:.2f}}}" in line
    m, s = mean_std(80, 86)
    line = next(ln for ln in text.splitlines() if ln.startswith("cuts=uniform-max"))
    assert f"{m:.2f} $\\pm$ {s:.2f}" in line and r"acc \%" in text
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", text).group(1))
    body = [ln for ln in text.splitlines() if ln.endswith(r"\\") and "multicolumn" not in ln]
    assert len(body) == 3 and all(ln.count("&") == n_cols - 1 for ln in body)


def test_by_metrics_and_single_runs(tmp_path, files):
    extra = write_run(tmp_path / "wide.h5", "fixed", 0, width=0.5)
    text, _ = make_table(files + [extra], by=["model.width", "cuts"], metrics="accuracy,train_s")
    rows = md_rows(text)
    assert [r["configuration"] for r in rows] == ["model.width=0.25, cuts=[2,4,1,5]",
                                                  "model.width=0.25, cuts=uniform-max",
                                                  "model.width=0.5, cuts=[2,4,1,5]"]
    assert list(rows[0]) == ["configuration", "n", "mnist acc %", "fashion_mnist acc %", "train s"]
    assert rows[2]["n"] == "1" and rows[2]["mnist acc %"] == "90.00"  # one run: no std
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        make_table(files, metrics="acc")
    with pytest.raises(ValueError, match="--by model.depth: no run has"):
        make_table(files, by=["model.depth"])


def test_reference_paper(files):
    text, _ = make_table(files, reference="paper")
    ref = md_rows(text)[-1]
    assert ref["configuration"] == "paper (HuSCF-GAN, original code), scenario 3"
    assert ref["mnist acc %"] == "96.83" and ref["fashion_mnist acc %"] == "82.93"
    assert ref["mnist F1 %"] == "–"
    assert md_rows(text)[0]["mnist acc %"].startswith("**")  # the paper row does not compete for best
    _, notes = make_table(files[:1], reference="paper", metrics="accuracy")
    assert notes == []


def test_incomplete_refused_or_flagged(tmp_path, files):
    bad = write_run(tmp_path / "dead.h5", "fixed", 2, fail=True)
    assert bad.name.endswith(".partial")
    with pytest.raises(ValueError, match=r"incomplete run \(status failed: killed\).*--allow-incomplete"):
        make_table(files + [bad])
    with pytest.raises(ValueError, match="incomplete"):  # the final path, when only .partial exists
        make_table(files + [tmp_path / "dead.h5"])
    text, _ = make_table(files + [bad], allow_incomplete=True)
    labels = [r["configuration"] for r in md_rows(text)]
    assert labels[0] == "cuts=[2,4,1,5] (incomplete: 1 of 3)"


def test_schema_mismatch_refused(tmp_path, files):
    old = tmp_path / "old.h5"
    shutil.copy(files[0], old)
    with h5py.File(old, "r+") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(ValueError, match="different schema versions.*v0.*v1"):
        make_table(files + [old])
    with h5py.File(old, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ValueError, match="schema version 99"):
        make_table(files + [old])


def test_cli_tables_and_errors(tmp_path, files):
    runner = CliRunner()
    res = runner.invoke(main, ["tables", *map(str, files), "--format", "csv", "--reference", "paper"])
    assert res.exit_code == 0, res.output
    assert "paper (HuSCF-GAN, original code), scenario 3" in res.output
    res = runner.invoke(main, ["tables", str(tmp_path / "missing.h5")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"huscf-mpi: error: {tmp_path / 'missing.h5'}: no such result file"]
    out = tmp_path / "t.tex"
    res = runner.invoke(main, ["tables", *map(str, files), "--format", "latex", "-o", str(out)])
    assert res.exit_code == 0 and out.read_text().startswith(r"\begin{tabular}")


def test_predicted_latency_column(tmp_path):
    paths = []
    for s in (0, 1):
        p = write_run(tmp_path / f"p{s}.h5", "fixed", s)
        with h5py.File(p, "r+") as f:
            f["cuts"].attrs["predicted_seconds_per_iteration"] = 0.5 + s
        paths.append(p)
    rows = md_rows(make_table(paths, metrics="predicted_s_per_it")[0])
    assert rows[0]["pred s/it"] == f"1.0000 ± {math.sqrt(0.5):.4f}"


def test_plots(tmp_path, files):
    files = files + [write_run(tmp_path / "prof.h5", "fixed", 0, profiles=True, width=0.5)]
    res = CliRunner().invoke(main, ["plot", *map(str, files), "--out", str(tmp_path / "fig")])
    assert res.exit_code == 0, res.output
    # spectrograms.png only for audio domains, which these MNIST files lack
    written = [tmp_path / "fig" / name for name in FIGURES if name != "spectrograms.png"]
    assert res.output.split() == [str(p) for p in written]
    for p in written:
        assert p.stat().st_size > 3000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ strategies and who saw what
def test_exposure_summary_hand_built():
    assert exposure_summary(pd.DataFrame(exposure_table())) == "synth c→s; smashed c↔s; params c↔s"
    rows = [("parameters", "protocol", "client", "server", 3, 30),  # one way only, twice (summed)
            ("parameters", "evaluation", "client", "server", 1, 10),
            ("image_gradients", "protocol", "server", "client", 5, 50),
            ("real_labels", "protocol", "client", "client", 1, 8),
            ("mystery", "protocol", "server", "client", 1, 1),  # unknown classes come last
            ("raw_images", "report", "client", "server", 1, 784)]  # report plane: not counted
    assert exposure_summary(pd.DataFrame(exposure_table(rows))) == \
        "labels c→c; grads s→c; params c→s; mystery s→c"
    assert exposure_summary(pd.DataFrame(exposure_table(EXPOSURE[-2:]))) == "none"  # report and setup only
    assert exposure_summary(pd.DataFrame(exposure_table([]))) == "none"


def test_show_who_saw_what(tmp_path):
    path = tmp_path / "run.h5"
    w = ResultWriter(path)
    w.write_provenance(config_yaml=yaml.safe_dump(config("fixed", 0)), seed=0, strategy="huscf")
    w.write_table("ledger", {"receiver": [0, 0, 1, 2], "kind": ["g_smashed", "params_up", "params_down", "params_down"],
                             "plane": ["protocol"] * 4,
                             "payload": ["smashed_data", "parameters", "parameters", "parameters"],
                             "source": [1, 1, 0, 0], "shape": ["64x128x7x7", "1024", "1024", "1024"],
                             "dtype": ["float32"] * 4, "count": [3, 1, 1, 1], "bytes": [6000, 4096, 4096, 4096]})
    w.write_table("exposure", exposure_table())
    w.close()
    res = CliRunner().invoke(main, ["show", str(path)])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    start = lines.index("who saw what (protocol and evaluation planes, from /exposure):")
    assert lines[start + 1:start + 9] == [
        "  raw_images: none left its owner",
        "  real_labels: none left its owner",
        "  synthetic_images: client → server 2 msgs 2.0 KiB [evaluation]",
        "  sampled_labels: none left its owner",
        "  smashed_data: client → server 256 msgs 4.0 MiB; server → client 256 msgs 4.0 MiB",
        "  image_gradients: none left its owner",
        "  parameters: client → server 12 msgs 3.0 MiB; server → client 12 msgs 3.0 MiB",
        "  losses: none left its owner",
    ]
    assert not any(ln.startswith(("  metrics:", "  probe:")) for ln in lines[start:])
    # the ledger, split by receiver, kinds tagged with their payload class
    assert "messages received by the server, by kind:" in lines
    assert "  g_smashed (smashed_data): 3 messages, 5.9 KiB (6000 B)" in lines
    assert "messages received by the clients (2 ranks), by kind:" in lines
    assert "  params_down (parameters): 2 messages, 8.0 KiB (8192 B)" in lines


def test_file_without_exposure_still_works(tmp_path, files):
    text = summary(files[0])
    assert "who saw what" not in text and "status: complete" in text
    plain, notes = make_table(files)
    with_flag, notes = make_table(files, exposure=True)
    assert with_flag == plain  # no file has /exposure: the column is left out, with a note
    assert notes == ["who saw what: no file has an /exposure table; column left out"]
    res = CliRunner().invoke(main, ["tables", *map(str, files), "--exposure"])
    assert res.exit_code == 0 and "no file has an /exposure table" in res.output


def test_tables_exposure_column(tmp_path, files):
    files = [write_run(tmp_path / f"x{s}.h5", "fixed", s, exposure=EXPOSURE) for s in (0, 1)] + files[2:]
    text, notes = make_table(files, exposure=True, metrics="accuracy")
    rows = md_rows(text)
    assert list(rows[0])[-1] == "who saw what"
    assert rows[0]["who saw what"] == "synth c→s; smashed c↔s; params c↔s"
    assert rows[1]["who saw what"] == "–"  # runs without /exposure
    assert notes == ["who saw what: 2 run(s) have no /exposure table (written before it existed)"]
    csv_rows = list(csv.DictReader(io.StringIO(make_table(files, exposure=True, fmt="csv")[0])))
    assert csv_rows[0]["exposure"] == "synth c→s; smashed c↔s; params c↔s" and csv_rows[1]["exposure"] == ""
    latex = make_table(files, exposure=True, fmt="latex")[0]
    assert r"smashed c$\leftrightarrow$s" in latex and r"synth c$\to$s" in latex
    assert "who saw what" not in make_table(files)[0]  # opt-in
    res = CliRunner().invoke(main, ["tables", *map(str, files), "--exposure", "--metrics", "accuracy"])
    assert res.exit_code == 0 and "| synth c→s; smashed c↔s; params c↔s |" in res.output


def test_tables_label_by_strategy(tmp_path, files):
    runs = [write_run(tmp_path / f"h{s}.h5", "fixed", s, name="huscf") for s in (0, 1)]
    runs.append(write_run(tmp_path / "noclust.h5", "umax", 0, name="huscf-noclust"))
    runs += [write_run(tmp_path / f"f{s}.h5", "fixed", s, name="fedgan", strategy="fedgan") for s in (0, 1)]
    runs.append(write_run(tmp_path / "md.h5", "fixed", 0, name="mdgan", strategy="mdgan"))
    runs.append(write_run(tmp_path / "central.h5", "fixed", 0, name="central", strategy="centralized"))
    text, _ = make_table(runs, metrics="accuracy")
    assert [r["configuration"] for r in md_rows(text)] == [
        "HuSCF-GAN (huscf)", "HuSCF-GAN (huscf-noclust)", "FedGAN", "MD-GAN", "Centralized"]
    assert [r["n"] for r in md_rows(text)] == ["2", "1", "2", "1", "1"]
    rows = list(csv.DictReader(io.StringIO(make_table(runs, fmt="csv", reference="paper")[0])))
    assert [r["strategy"] for r in rows] == ["huscf", "huscf", "fedgan", "mdgan", "centralized", "huscf"]
    # runs of one strategy that differ by config but not by name: the differing field follows the name
    wide = write_run(tmp_path / "fw.h5", "fixed", 0, name="fedgan", strategy="fedgan", width=0.5)
    labels = [r["configuration"] for r in md_rows(make_table(runs[:2] + runs[3:5] + [wide])[0])]
    assert labels == ["HuSCF-GAN, model.width=0.25", "FedGAN, model.width=0.25", "FedGAN, model.width=0.5"]
    # --by strategy,name; and one strategy only: labels as before strategies existed
    labels = [r["configuration"] for r in md_rows(make_table(files, by=["strategy", "name", "cuts"])[0])]
    assert labels == ["HuSCF-GAN (fixed), cuts=[2,4,1,5]", "HuSCF-GAN (umax), cuts=uniform-max"]
    assert [r["configuration"] for r in md_rows(make_table(runs[:3])[0])] == ["cuts=[2,4,1,5]", "cuts=uniform-max"]


def test_old_files_without_strategy_are_huscf(tmp_path):
    old = write_run(tmp_path / "old.h5", "fixed", 0, strategy=None)
    new = write_run(tmp_path / "new.h5", "fixed", 1)
    fed = write_run(tmp_path / "fed.h5", "fixed", 0, strategy="fedgan")
    rows = md_rows(make_table([old, new, fed], metrics="accuracy")[0])
    assert [(r["configuration"], r["n"]) for r in rows] == [("HuSCF-GAN", "2"), ("FedGAN", "1")]


def test_plot_legends_by_strategy(tmp_path, files, monkeypatch):
    from huscf_mpi.analysis import plots

    runs = files[:2] + [write_run(tmp_path / "fed.h5", "fixed", 0, strategy="fedgan")]
    labels = []
    monkeypatch.setattr(plots, "_line_band", lambda ax, i, label, *a: labels.append(label))
    monkeypatch.setattr(plots, "FIGURES", {"losses.png": plots._losses})
    written, _ = plots.plot_all(runs, tmp_path / "fig")
    assert [p.name for p in written] == ["losses.png"]
    assert sorted(set(labels)) == ["FedGAN", "HuSCF-GAN"]


def _cfg(tmp_path, clients: int = 2):
    path = tmp_path / "scen.yaml"
    path.write_text(yaml.safe_dump({"data": {"domains": {"mnist": clients}}, "seed": 3}))
    return path


def test_render_sbatch_single(tmp_path):
    cfg = _cfg(tmp_path)
    text = render_sbatch(cfg, time="00:30:00", launcher="srun", partition="cpu", nodes=1, overcommit=True,
                         train_args=["--rounds", "2"])
    assert text.startswith("#!/bin/bash\n")
    for line in ("#SBATCH --ntasks=3", "#SBATCH --time=00:30:00", "#SBATCH --partition=cpu", "#SBATCH --nodes=1",
                 "#SBATCH --overcommit", "#SBATCH --job-name=scen", "#SBATCH --cpus-per-task=1",
                 "export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1",
                 'VENV="${HUSCF_VENV:-.venv}"', 'OUTPUT="results/scen-${SLURM_JOB_ID}.h5"'):
        assert line in text.splitlines(), line
    assert 'srun --mpi=pmi2 \\\n    "${TRAIN[@]}" &' in text
    assert f'TRAIN=(huscf-mpi train --config {cfg} --output "$OUTPUT" --rounds 2)' in text
    assert "--array" not in text and "--seed" not in text


def test_render_sbatch_array(tmp_path):
    text = render_sbatch(_cfg(tmp_path, 4), array="0-4", job_name="seeds", mem_per_cpu="2G")
    assert "#SBATCH --ntasks=5" in text and "#SBATCH --array=0-4" in text and "#SBATCH --mem-per-cpu=2G" in text
    assert "5 MPI ranks (1 server + 4 clients: mnist 4), one run per seed 0-4" in text
    assert 'OUTPUT="results/seeds-${SLURM_ARRAY_JOB_ID}-${SLURM_ARRAY_TASK_ID}.h5"' in text
    assert '--seed "${SLURM_ARRAY_TASK_ID}"' in text and "results/%x-%A_%a.out" in text
    assert 'mpiexec -n "$SLURM_NTASKS"' in text


@pytest.mark.parametrize("kwargs, match", [
    ({"ntasks": 4}, "has 2 clients, so train needs 3 ranks"),
    ({"time": "tomorrow"}, "time 'tomorrow' is not valid"),
    ({"array": "0-4; rm -rf"}, "array .* is not valid"),
    ({"launcher": "ssh"}, "launcher 'ssh'"),
    ({"nodes": "many"}, "nodes 'many' is not valid"),
    ({"mem_per_cpu": "lots"}, "mem-per-cpu 'lots' is not valid"),
])
def test_render_sbatch_refuses(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_sbatch(_cfg(tmp_path), **kwargs)


def test_cli_slurm(tmp_path):
    out = tmp_path / "job.sbatch"
    res = CliRunner().invoke(main, ["slurm", "--config", str(_cfg(tmp_path)), "--array", "0-1", "--out", str(out),
                                    "--", "--rounds", "1"])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "#SBATCH --array=0-1" in text and '--seed "${SLURM_ARRAY_TASK_ID}" --rounds 1' in text
    assert f"sbatch {out}" in text
    res = CliRunner().invoke(main, ["slurm", "--config", str(tmp_path / "none.yaml")])
    assert res.exit_code == 2 and res.output.startswith("huscf-mpi: error: config file")


# --server-node: a heterogeneous job with rank 0 alone on a node (imports here keep these tests together).
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def _het_parts(text: str) -> tuple[list[str], list[str]]:
    """#SBATCH lines of component 0 (the server) and component 1 (the clients)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("#SBATCH")]
    cut = lines.index("#SBATCH hetjob")
    return lines[:cut], lines[cut + 1:]


def test_render_sbatch_server_node_srun(tmp_path):
    cfg = _cfg(tmp_path, 4)
    text = render_sbatch(cfg, launcher="srun", server_node=True, partition="cpu", nodes=2, overcommit=True,
                         mem_per_cpu="2G", train_args=["--rounds", "2"])
    server, clients = _het_parts(text)
    assert server == ["#SBATCH --job-name=scen", "#SBATCH --time=24:00:00", "#SBATCH --output=results/%x-%j.out",
                      "#SBATCH --partition=cpu", "#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --exclusive",
                      "#SBATCH --mem=0", "#SBATCH --signal=B:USR1@300", "#SBATCH --requeue",
                      "#SBATCH --open-mode=append"]  # signal and requeue: component 0's options hold for the job
    assert clients == ["#SBATCH --partition=cpu", "#SBATCH --ntasks=4", "#SBATCH --cpus-per-task=1",
                       "#SBATCH --nodes=2", "#SBATCH --overcommit", "#SBATCH --mem-per-cpu=2G"]
    assert "5 MPI ranks (1 server + 4 clients: mnist 4), rank 0 on a node of its own" in text
    # rank 0 = component 0's one task, with all the CPUs of its node unless --server-cpus says otherwise
    assert 'SERVER_CPUS="${SLURM_CPUS_ON_NODE:-$(nproc)}"' in text
    assert ('srun --mpi=pmi2 --ntasks=1 --cpus-per-task="$SERVER_CPUS" : \\\n'
            '    --mpi=pmi2 --ntasks=4 --cpus-per-task=1 \\\n'
            '    "${TRAIN[@]}" &\n') in text
    assert f'TRAIN=(huscf-mpi train --config {cfg} --output "$OUTPUT" --rounds 2)' in text
    # clients keep one thread; nothing sets a thread count for rank 0 (train does, from server.threads)
    assert "export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1" in text.splitlines()
    assert "server.threads: auto" in text and "mpiexec -" not in text  # no mpiexec line (comments may name it)
    assert text.startswith("#!/bin/bash\n") and "$SLURM_NTASKS" not in text


def test_render_sbatch_server_node_mpiexec(tmp_path):
    cfg = _cfg(tmp_path, 4)
    text = render_sbatch(cfg, server_node=True, server_cpus=16)
    server, clients = _het_parts(text)
    assert server[-8:-3] == ["#SBATCH --nodes=1", "#SBATCH --ntasks=1", "#SBATCH --exclusive", "#SBATCH --mem=0",
                             "#SBATCH --cpus-per-task=16"]
    assert clients == ["#SBATCH --ntasks=4", "#SBATCH --cpus-per-task=1"]
    assert "SERVER_CPUS=16  #" in text
    # Hydra: explicit layout from the components, rank 0 first and alone, proxies as srun --het-group steps
    for line in ('SERVER_NODE="$(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_0")"',
                 'mapfile -t CLIENT_NODES < <(scontrol show hostnames "$SLURM_JOB_NODELIST_HET_GROUP_1")',
                 'HOSTS="$SERVER_NODE:1"',
                 'HYDRA_LAUNCHER_AUTOFORK=0 mpiexec -launcher rsh -launcher-exec "$PROXY_LAUNCHER" -rmk user \\',
                 '    -hosts "$HOSTS" -n 5 \\',
                 '    "${TRAIN[@]}" &', f'TRAIN=(huscf-mpi train --config {cfg} --output "$OUTPUT")'):
        assert line in text.splitlines(), line
    assert '--het-group=0 --nodelist="$node" --nodes=1 --ntasks=1 --cpus-per-task="$HUSCF_SERVER_CPUS"' in text
    assert 'exec srun --het-group=1 --nodelist="$node" --nodes=1 --ntasks=1 --mpi=none --input=none' in text
    assert "srun --mpi=pmi2" not in text and 'mpiexec -n "$SLURM_NTASKS"' not in text
    if shutil.which("bash"):
        script = tmp_path / "het.sbatch"
        script.write_text(text)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_server_node_mpiexec_layout_runs(tmp_path):
    """The Hydra part of a --server-node script, under stand-ins for scontrol, srun and huscf-mpi."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists() or not shutil.which("bash"):
        pytest.skip("needs the venv's MPICH mpiexec and bash")
    fake, venv = tmp_path / "fakebin", tmp_path / "venv" / "bin"
    fake.mkdir()
    venv.mkdir(parents=True)
    (fake / "scontrol").write_text(  # `scontrol show hostnames LIST`, for LIST like s1 or c[1-3]
        f"#!{sys.executable}\nimport re, sys\nm = re.match(r'(.*)\\[(\\d+)-(\\d+)\\]$', sys.argv[3])\n"
        "print('\\n'.join(f'{m[1]}{k}' for k in range(int(m[2]), int(m[3]) + 1)) if m else sys.argv[3])\n")
    (fake / "srun").write_text(  # runs the command here, telling it the node, component and CPUs asked for
        "#!/bin/bash\nwhile [[ $1 == -* ]]; do case $1 in --nodelist=*) export NODE=${1#*=};; "
        "--het-group=*) export GROUP=${1#*=};; --cpus-per-task=*) export CPUS=${1#*=};; esac; shift; done\n"
        'exec "$@"\n')
    (venv / "huscf-mpi").write_text('#!/bin/bash\necho "$PMI_RANK $NODE $GROUP ${CPUS:-all} $OMP_NUM_THREADS"\n')
    (venv / "activate").write_text(f"export PATH={venv}:{fake}:{mpiexec.parent}:$PATH\n")
    for f in (*fake.iterdir(), venv / "huscf-mpi"):
        f.chmod(0o755)
    script = tmp_path / "het.sbatch"
    script.write_text(render_sbatch(_cfg(tmp_path, 5), server_node=True))
    env = {**os.environ, "SLURM_JOB_ID": "7", "SLURM_SUBMIT_DIR": str(tmp_path), "HUSCF_VENV": str(venv.parent),
           "SLURM_JOB_NODELIST_HET_GROUP_0": "s1", "SLURM_JOB_NODELIST_HET_GROUP_1": "c[1-3]",
           "SLURM_TASKS_PER_NODE_HET_GROUP_1": "2(x2),1", "SLURM_CPUS_ON_NODE": "8", "TMPDIR": str(tmp_path)}
    res = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    ranks = sorted(ln.split() for ln in res.stdout.splitlines() if ln[:1].isdigit())
    assert ranks == [["0", "s1", "0", "8", "1"], ["1", "c1", "1", "all", "1"], ["2", "c1", "1", "all", "1"],
                     ["3", "c2", "1", "all", "1"], ["4", "c2", "1", "all", "1"], ["5", "c3", "1", "all", "1"]]
    assert not list(tmp_path.glob("huscf-proxy-launch.*"))  # the helper is removed on exit


@pytest.mark.parametrize("kwargs, match", [
    ({"server_cpus": 8}, "server-cpus 8: only with --server-node"),
    ({"server_node": True, "server_cpus": 0}, "server-cpus 0 is not valid"),
    ({"server_node": True, "array": "0-4"}, "cannot run a heterogeneous job .* as an array"),
])
def test_render_sbatch_server_node_refuses(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_sbatch(_cfg(tmp_path), **kwargs)


def test_cli_slurm_server_node(tmp_path):
    out = tmp_path / "het.sbatch"
    cfg = str(_cfg(tmp_path))
    res = CliRunner().invoke(main, ["slurm", "--config", cfg, "--server-node", "--server-cpus", "32",
                                    "--launcher", "srun", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "#SBATCH hetjob" in text and "#SBATCH --cpus-per-task=32" in text and "SERVER_CPUS=32" in text
    assert f"--launcher srun --server-node --server-cpus 32 --out {out}" in text
    res = CliRunner().invoke(main, ["slurm", "--config", cfg, "--server-cpus", "32"])
    assert res.exit_code == 2 and res.output.startswith("huscf-mpi: error: server-cpus 32: only with --server-node")
    res = CliRunner().invoke(main, ["slurm", "--config", cfg])  # without the flag: the plain job, as before
    assert res.exit_code == 0 and "hetjob" not in res.output and 'mpiexec -n "$SLURM_NTASKS"' in res.output


def test_missing_config_fields_group_with_their_default(tmp_path):
    from huscf_mpi.analysis.runs import with_defaults

    defaults = {"a": 1, "evaluation": {"every": 1, "inception_weights": None}, "cuts": "ga"}
    old = {"a": 2, "evaluation": {"every": 3}, "cuts": [2, 4, 1, 5]}  # written before inception_weights
    assert with_defaults(old, defaults) == {"a": 2, "evaluation": {"every": 3, "inception_weights": None},
                                            "cuts": [2, 4, 1, 5]}
    assert old == {"a": 2, "evaluation": {"every": 3}, "cuts": [2, 4, 1, 5]}  # not modified
    # Two seeds of one configuration, one file lacking a field that the other records as default.
    a = write_run(tmp_path / "a.h5", "fixed", 0)
    b = write_run(tmp_path / "b.h5", "fixed", 1)
    with h5py.File(a, "r+") as f:
        cfg = yaml.safe_load(f["provenance"].attrs["config_yaml"])
        cfg.setdefault("evaluation", {})["inception_weights"] = None
        f["provenance"].attrs["config_yaml"] = yaml.safe_dump(cfg)
    assert len(group_runs(load_runs([a, b]))) == 1
