"""`huscf-mpi slurm` with several --config and --seeds: one array job over configs x seeds (issue 12).

Also checks that every committed jobs/*.sbatch re-renders byte for byte from the command in
its header, so the single-config scripts stay what they were.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from huscf_mpi.cli import main
from huscf_mpi.slurm import parse_seeds, render_sbatch, seed_table

from .conftest import header_argv, rendered_by

REPO = Path(__file__).resolve().parents[1]
QUICK = REPO / "jobs" / "configs" / "two-domain-quick.yaml"  # 8 clients: 9 ranks
needs_bash = pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")


def _configs(tmp_path: Path, *names: str, clients: dict | None = None) -> list[Path]:
    """Copies of two-domain-quick.yaml, one per name (name: and file stem), in tmp_path."""
    base = yaml.safe_load(QUICK.read_text())
    paths = []
    for name in names:
        cfg = {**base, "name": name}
        if clients is not None:
            cfg["data"] = {**base["data"], "domains": clients}
            cfg["data"].pop("scenario", None)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        paths.append(path)
    return paths


@pytest.mark.parametrize("spec, seeds", [
    ("0-2", [0, 1, 2]), ("4", [4]), ("0,5,9", [0, 5, 9]), ("0-9:3", [0, 3, 6, 9]), ("7,0-1", [7, 0, 1]),
])
def test_parse_seeds(spec, seeds):
    assert parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec, match", [
    ("0-2%4", "not valid"), ("a", "not valid"), ("", "not valid"), ("3-1", "3-1 is empty"), ("0-2:0", "empty"),
    ("0-2,1", "seed 1 twice"),
])
def test_parse_seeds_refuses(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_seeds(spec)


def _pick(table: str, task) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + table + 'echo "$CONFIG|$NAME|$SEED"\n'
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if task is not None:
        env["SLURM_ARRAY_TASK_ID"] = str(task)
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)


@needs_bash
def test_seed_table_maps_task_to_config_and_seed():
    configs = ["cfg/a.yaml", "cfg/b b.yaml", "cfg/c.yaml"]  # a space: quoted in the bash array
    seeds = [0, 5, 9]
    table = seed_table(configs, ["a", "b-b", "c"], seeds)
    for i in range(len(configs) * len(seeds)):
        res = _pick(table, i)
        assert res.returncode == 0, res.stderr
        config, name, seed = res.stdout.strip().split("|")
        assert (config, name, int(seed)) == (configs[i // 3], ["a", "b-b", "c"][i // 3], seeds[i % 3]), i
    for bad in (9, 100, -1, "x"):  # outside the table, or not a task number
        res = _pick(table, bad)
        assert res.returncode == 2 and "this script has tasks 0-8" in res.stderr, (bad, res.stderr)
    res = _pick(table, None)
    assert res.returncode != 0 and "not an array task" in res.stderr


def test_render_table(tmp_path):
    a, b = _configs(tmp_path, "huscf", "fedgan")
    text = render_sbatch([a, b], seeds="0-2", time="01:00:00", mem_per_cpu="2G", train_args=["--rounds", "2"])
    lines, width = text.splitlines(), max(len(str(a)), len(str(b)))
    assert lines[1] == ("# huscf-mpi train, 9 MPI ranks per run (1 server + 8 clients), 2 configs x 3 seeds: "
                        "one array job of 6 runs.")
    for line in ("#SBATCH --job-name=compare", "#SBATCH --ntasks=9", "#SBATCH --array=0-5",
                 "#SBATCH --output=results/%x-%A_%a.out", "#SBATCH --mem-per-cpu=2G", "#SBATCH --time=01:00:00",
                 f"    {str(a).ljust(width)}  # tasks 0-2: mnist 4, fashion_mnist 4",
                 f"    {str(b).ljust(width)}  # tasks 3-5: mnist 4, fashion_mnist 4",
                 "NAMES=(huscf fedgan)  # in the result file names", "SEEDS=(0 1 2)",
                 'OUTPUT="results/compare-${SLURM_ARRAY_JOB_ID}-${NAME}-s${SEED}.h5"',
                 'TRAIN=(huscf-mpi train --config "$CONFIG" --output "$OUTPUT" --seed "$SEED" --rounds 2)'):
        assert line in lines, line
    assert 'mpiexec -n "$SLURM_NTASKS" \\' in lines and "set -euo pipefail" in lines
    # one config with --seeds: the same table form, named after the config
    text = render_sbatch([a], seeds="3,7", launcher="srun")
    assert "#SBATCH --job-name=huscf" in text and "#SBATCH --array=0-1" in text and "SEEDS=(3 7)" in text
    assert "1 config x 2 seeds: one array job of 2 runs" in text and 'srun --mpi=pmi2 \\\n    "${TRAIN[@]}" &' in text
    if shutil.which("bash"):
        script = tmp_path / "t.sbatch"
        script.write_text(text)
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_render_table_refuses_rank_mismatch(tmp_path):
    a, b = _configs(tmp_path, "huscf", "fedgan")
    (small,) = _configs(tmp_path, "small", clients={"mnist": 2})
    with pytest.raises(ValueError) as err:
        render_sbatch([a, small, b], seeds="0-2")
    assert str(err.value) == (f"--config {small} needs 3 MPI ranks (1 server + 2 clients) but {a} needs 9: "
                              "one array job has one size; render one array per rank count")
    res = CliRunner().invoke(main, ["slurm", "--config", str(a), "--config", str(small), "--seeds", "0-2"])
    assert res.exit_code == 2
    assert res.output == f"huscf-mpi: error: --config {small} needs 3 MPI ranks (1 server + 2 clients) but " \
                         f"{a} needs 9: one array job has one size; render one array per rank count\n"


@pytest.mark.parametrize("kwargs, match", [
    ({}, "2 configs: give their seeds with --seeds"),
    ({"seeds": "0-2", "array": "0-4"}, "with --seeds the array runs over configs x seeds"),
    ({"seeds": "0-2", "server_node": True}, "cannot run a heterogeneous job"),
    ({"seeds": "0-2", "ntasks": 5}, "--ntasks 5: the configs have 8 clients, so train needs 9 ranks"),
    ({"seeds": "0-2", "train_args": ["--seed=4"]}, "each array task sets its own --config, --seed and --output"),
    ({"seeds": "0-2", "time": "soon"}, "time 'soon' is not valid"),
    ({"seeds": "0-2%3"}, "seeds '0-2%3' is not valid"),
])
def test_render_table_refuses(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        render_sbatch(_configs(tmp_path, "huscf", "fedgan"), **kwargs)


def test_render_table_refuses_colliding_names(tmp_path):
    (a,) = _configs(tmp_path, "huscf")
    (tmp_path / "other").mkdir()
    (b,) = _configs(tmp_path / "other", "huscf")
    with pytest.raises(ValueError, match="are both named 'huscf' in result file names"):
        render_sbatch([a, b], seeds="0")
    with pytest.raises(ValueError, match="is given twice"):
        render_sbatch([a, a], seeds="0")


@needs_bash
def test_table_script_runs(tmp_path):
    """The whole rendered script under stand-ins for mpiexec and huscf-mpi: each task's train arguments."""
    a, b = _configs(tmp_path, "huscf", "fedgan")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "mpiexec").write_text('#!/bin/bash\nshift 2\nexec "$@"\n')  # drop -n N
    (venv / "huscf-mpi").write_text('#!/bin/bash\necho "ARGS $*"\n')
    (venv / "activate").write_text(f"export PATH={venv}:$PATH\n")
    for f in ("mpiexec", "huscf-mpi"):
        (venv / f).chmod(0o755)
    script = tmp_path / "compare.sbatch"
    script.write_text(render_sbatch([a, b], seeds="0,5", job_name="cmp", train_args=["--rounds", "1"]))
    base = {**os.environ, "SLURM_SUBMIT_DIR": str(tmp_path), "HUSCF_VENV": str(venv.parent), "SLURM_NTASKS": "9",
            "SLURM_ARRAY_JOB_ID": "77", "SLURM_JOB_ID": "80", "SLURM_JOB_NODELIST": "n1"}
    want = {0: (a, "huscf", 0), 1: (a, "huscf", 5), 2: (b, "fedgan", 0), 3: (b, "fedgan", 5)}
    for task, (config, name, seed) in want.items():
        res = subprocess.run(["bash", str(script)], env={**base, "SLURM_ARRAY_TASK_ID": str(task)},
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        args = [ln for ln in res.stdout.splitlines() if ln.startswith("ARGS ")]
        assert args == [f"ARGS train --config {config} --output results/cmp-77-{name}-s{seed}.h5 "
                        f"--seed {seed} --rounds 1"], res.stdout
        assert f"(array task {task}: {name}, seed {seed})" in res.stdout
    res = subprocess.run(["bash", str(script)], env={**base, "SLURM_ARRAY_TASK_ID": "4"}, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and "ARGS" not in res.stdout and "tasks 0-3" in res.stderr


def test_cli_slurm_configs_x_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _configs(tmp_path, "huscf", "fedgan")
    argv = ["slurm", "--config", "huscf.yaml", "--config", "fedgan.yaml", "--seeds", "0-2", "--time", "02:00:00",
            "--out", "cmp.sbatch", "--", "--rounds", "2"]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code == 0, res.output
    text = (tmp_path / "cmp.sbatch").read_text()
    header = rendered_by(text)
    assert header == ("# Rendered by: huscf-mpi slurm --config huscf.yaml --config fedgan.yaml --time 02:00:00 "
                      "--signal-grace 300 --seeds 0-2 --launcher mpiexec --out cmp.sbatch -- --rounds 2")
    assert "#SBATCH --array=0-5" in text and "    sbatch cmp.sbatch" in text
    # re-rendering from the header gives the same script
    (tmp_path / "cmp.sbatch").unlink()
    res = CliRunner().invoke(main, header_argv(text)[1:])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cmp.sbatch").read_text() == text


SCRIPTS = sorted(p.name for p in (REPO / "jobs").glob("*.sbatch"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_committed_scripts_rerender_identically(name, tmp_path, monkeypatch):
    """Each jobs/*.sbatch is what the command in its header renders today (in a copy of jobs/)."""
    committed = (REPO / "jobs" / name).read_text()
    argv = header_argv(committed)
    assert argv[:2] == ["huscf-mpi", "slurm"]
    shutil.copytree(REPO / "jobs" / "configs", tmp_path / "jobs" / "configs")
    shutil.copytree(REPO / "jobs" / "devices", tmp_path / "jobs" / "devices")  # configs name them; checked at load
    monkeypatch.chdir(tmp_path)  # the header's paths are relative to the project directory
    res = CliRunner().invoke(main, argv[1:])
    assert res.exit_code == 0, res.output
    out = argv[argv.index("--out") + 1]
    assert (tmp_path / out).read_text() == committed


def test_scripts_found():
    assert {"seeds-array.sbatch", "scenario1.sbatch", "scenario1-servernode.sbatch"} <= set(SCRIPTS)
