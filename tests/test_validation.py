"""Issue 11, point 2: every bad input is refused before any rank works, as one line naming the
field or option and the fix, with a non-zero exit and no traceback (docs/validation.md lists
the same inputs and what each prints).

Each case runs the real ``huscf-mpi`` command group through click's CliRunner (``train``
outside mpiexec is a one-rank MPI job, so a config or path problem must be found before the
rank-count check); two run the console entry point as a process.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from huscf_mpi.cli import main
from huscf_mpi.data import DataError, resolve_data_root

ROOT = Path(__file__).resolve().parents[1]
OK = "data: {domains: {mnist: 2}}\n"  # a valid base: 2 clients

# id, config file contents (str, bytes or None for no --config), arguments ({cfg}, {tmp} expand),
# words the one error line must contain.
CASES = [
    # YAML syntax
    ("yaml-unclosed-brace", "training: {batch_size: 3\n", ["train", "--config", "{cfg}"],
     ["not valid YAML at line 2", "expected ',' or '}'"]),
    ("yaml-tab-indent", "training:\n\tbatch_size: 3\n", ["train", "--config", "{cfg}"],
     ["line 2, column 1", "spaces, not tabs"]),
    ("yaml-duplicate-key", "training: {rounds: 2}\ntraining: {batch_size: 8}\n" + OK, ["train", "--config", "{cfg}"],
     ["line 2", "'training' is given twice", "merge"]),
    ("yaml-top-level-list", "- a\n- b\n", ["train", "--config", "{cfg}"], ["top level must be a mapping", "got list"]),
    ("yaml-section-scalar", "training: 5\n", ["train", "--config", "{cfg}"],
     ["training: must be a mapping", "batch_size", "got 5"]),
    ("yaml-python-tag", "name: !!python/object/apply:os.system [ls]\n", ["train", "--config", "{cfg}"],
     ["not valid YAML at line 1"]),
    # encodings
    ("encoding-latin1", "name: café\n".encode("latin-1"), ["train", "--config", "{cfg}"],
     ["not UTF-8 text", "0xe9 on line 1", "save it as UTF-8"]),
    ("encoding-binary", bytes(range(256)), ["train", "--config", "{cfg}"], ["not a UTF-8 text file", "NUL"]),
    ("encoding-utf16", ("name: x\n" + OK).encode("utf-16"), ["train", "--config", "{cfg}"],
     ["not a UTF-8 text file", "UTF-16"]),
    # types
    ("type-int-word", "training: {batch_size: many}\n", ["train", "--config", "{cfg}"],
     ["training.batch_size: must be an integer, got 'many'"]),
    ("type-int-fraction", "training: {rounds: 2.5}\n", ["train", "--config", "{cfg}"],
     ["training.rounds: must be an integer, got 2.5"]),
    ("type-bool-as-int", "training: {batch_size: true}\n", ["train", "--config", "{cfg}"],
     ["training.batch_size: must be a number, got true"]),
    ("type-domains-list", "data: {domains: [mnist]}\n", ["train", "--config", "{cfg}"],
     ["data.domains: must be a mapping"]),
    ("type-betas-short", "training: {betas: [0.5]}\n", ["train", "--config", "{cfg}"],
     ["training.betas: has too few values"]),
    ("type-name-number", "name: 5\n", ["train", "--config", "{cfg}"], ["name: must be text"]),
    ("type-cuts-mode", "cuts: gaa\n", ["train", "--config", "{cfg}"], ["cuts: unknown mode 'gaa'", "uniform-min"]),
    ("type-cuts-values", "cuts: [2, 4, one, 5]\n" + OK, ["train", "--config", "{cfg}"],
     ["cuts: values must be block numbers"]),
    # ranges
    ("range-lr-inf", "training: {lr: .inf}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.lr: must be a finite number, got inf"]),
    ("range-alpha-nan", "federation: {alpha: .nan}\n" + OK, ["train", "--config", "{cfg}"],
     ["federation.alpha: must be a finite number"]),
    ("range-betas", "training: {betas: [1.5, 0.999]}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.betas", "[0, 1)"]),
    ("range-seed-negative", "seed: -1\n" + OK, ["train", "--config", "{cfg}"], ["seed: must be >= 0, got -1"]),
    ("range-seed-huge", "seed: 1180591620717411303424\n" + OK, ["train", "--config", "{cfg}"], ["seed: must be <="]),
    ("range-scenario", "data: {scenario: 8}\n", ["train", "--config", "{cfg}"], ["data.scenario: must be <= 7, got 8"]),
    ("range-iterations-0", "training: {iterations_per_epoch: 0}\n", ["train", "--config", "{cfg}"],
     ["training.iterations_per_epoch: must be >= 1, got 0"]),
    ("range-clusters-0", "federation: {clusters: 0}\n" + OK, ["train", "--config", "{cfg}"],
     ["federation.clusters: got 0", "domains, auto"]),
    ("range-threads-0", "server: {threads: 0}\n" + OK, ["train", "--config", "{cfg}"], ["server.threads: got 0"]),
    # unknown keys and domains
    ("unknown-key", "traning: {rounds: 2}\n", ["train", "--config", "{cfg}"], ["traning: unknown key", "training"]),
    ("unknown-domain", "data: {domains: {mnsit: 2}}\n", ["train", "--config", "{cfg}"],
     ["unknown domain 'mnsit'", "mnist"]),
    ("empty-domains", "data: {domains: {}}\n", ["train", "--config", "{cfg}"], ["data.domains: needs at least one"]),
    ("unknown-architecture", "model: {architecture: nope}\n" + OK, ["train", "--config", "{cfg}"],
     ["model.architecture: unknown architecture 'nope'", "cgan28"]),
    ("unknown-body-norm", "model: {body_norm: instance}\n", ["train", "--config", "{cfg}"],
     ["model.body_norm: must be 'batch', 'group', 'layer' or 'none', got 'instance'"]),
    # cross-field rules
    ("cross-clusters-over-clients", "federation: {clusters: 5}\n" + OK, ["train", "--config", "{cfg}"],
     ["federation.clusters: 5 clusters for 2 clients", "at most 2"]),
    ("cross-cuts-3-values", "cuts: [1, 5, 2]\n" + OK, ["train", "--config", "{cfg}"], ["cuts: needs 4 values"]),
    ("cross-cuts-pinned", "cuts: [3, 5, 1, 5]\n" + OK, ["train", "--config", "{cfg}"],
     ["cuts: [3, 5, 1, 5]", "pinned to the server"]),
    ("cross-cuts-unknown-client", "cuts: {1: [2, 4, 1, 5], 9: [2, 4, 1, 5]}\n" + OK, ["train", "--config", "{cfg}"],
     ["cuts: names clients [9] but clients are 1..2"]),
    ("cross-cuts-client-vector", "cuts: {1: [2, 4, 1, 5], 2: [2, 4]}\n" + OK, ["train", "--config", "{cfg}"],
     ["cuts: client 2 needs 4 values"]),
    ("range-generation-samples", "evaluation: {generation_samples: 9, sample_grid: false}\n" + OK,
     ["train", "--config", "{cfg}"], ["evaluation.generation_samples: must be >= 10, got 9"]),
    ("cross-grid-per-class", "evaluation: {generation_samples: 50, grid_per_class: 8}\n" + OK,
     ["train", "--config", "{cfg}"], ["evaluation.grid_per_class: 8 per class x 10 classes", "at most 5"]),
    ("cross-scenario-domains", "data: {scenario: 3, domains: {mnist: 2}}\n", ["train", "--config", "{cfg}"],
     ["scenario 3", "no clients for fashion_mnist"]),
    ("cross-buffer-in-sync", "training: {buffer: 2}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.buffer: applies to mode buffered only", "set training.mode: buffered"]),
    ("cross-buffer-over-clients", "training: {mode: buffered, buffer: 5}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.buffer: 5 clients per buffer but the run has 2", "give 1..2"]),
    ("cross-mode-strategy", "strategy: fedgan\ntraining: {mode: sequential}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.mode: strategy fedgan runs in sync mode only"]),
    ("cross-replay-sync", "training: {replay: '{tmp}/c.yaml'}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.replay: a synchronous run needs no replay"]),
    ("type-staleness", "training: {mode: buffered, staleness: 'poly(2)'}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.staleness:", "unknown name 'poly'", "polynomial(a)"]),
    # paths
    ("path-config-missing", None, ["train", "--config", "{tmp}/nope.yaml"], ["nope.yaml not found"]),
    ("path-config-directory", None, ["train", "--config", "{tmp}"], ["--config:", "is a directory"]),
    ("path-output-placeholder", "output: 'results/{nam}.h5'\n" + OK, ["train", "--config", "{cfg}"],
     ["output:", "{nam} is not a placeholder", "{name} and {seed}"]),
    ("path-output-folder-like", "output: 'results/'\n" + OK, ["train", "--config", "{cfg}"],
     ["output: 'results/' is not a file path"]),
    ("path-devices-missing", "cut_selection: {devices: /nonexistent/devices.yaml}\n" + OK,
     ["train", "--config", "{cfg}"], ["cut_selection.devices: file /nonexistent/devices.yaml not found"]),
    ("path-devices-malformed", "cut_selection: {devices: '{tmp}/devices.yaml'}\n" + OK, ["train", "--config", "{cfg}"],
     ["cut_selection.devices:", "'clients' must map profile names"]),
    ("path-devices-bad-yaml", "cut_selection: {devices: '{tmp}/devices-syntax.yaml'}\n" + OK,
     ["train", "--config", "{cfg}"], ["cut_selection.devices:", "devices-syntax.yaml", "paper.yaml"]),
    ("path-cuts-devices-bad-yaml", None, ["cuts", "--devices", "{tmp}/devices-syntax.yaml", "--clients", "2"],
     ["--devices", "not valid YAML at line 2"]),
    ("path-replay-missing", "training: {mode: buffered, replay: /nonexistent.h5}\n" + OK, ["train", "--config", "{cfg}"],
     ["training.replay: '/nonexistent.h5' is not a file"]),
    ("path-inception-missing", "evaluation: {inception_weights: /nonexistent.pth}\n" + OK,
     ["train", "--config", "{cfg}"], ["evaluation.inception_weights: file /nonexistent.pth not found"]),
    # CLI options: blamed on the option, not on the file
    ("cli-rounds-negative", OK, ["train", "--config", "{cfg}", "--rounds", "-1"], ["--rounds: must be >= 1, got -1"]),
    ("cli-seed-word", None, ["train", "--seed", "abc"], ["--seed: 'abc' is not a valid integer"]),
    ("cli-strategy-unknown", None, ["train", "--strategy", "nope"], ["--strategy: unknown strategy 'nope'", "fedgan"]),
    ("cli-cuts-not-numbers", None, ["train", "--cuts", "1,a,3,4"], ["--cuts: '1,a,3,4' is not 4 comma-separated"]),
    ("cli-cuts-mode", None, ["train", "--cuts", "nope"], ["--cuts: unknown mode 'nope'"]),
    ("cli-cuts-pinned", OK, ["train", "--config", "{cfg}", "--cuts", "3,5,1,5"], ["--cuts: [3, 5, 1, 5]", "pinned"]),
    ("cli-width-zero", None, ["train", "--width", "0"], ["--width: must be > 0"]),
    ("cli-batch-size-one", None, ["train", "--batch-size", "1"], ["--batch-size: must be >= 2, got 1"]),
    ("cli-name-empty", None, ["train", "--name", ""], ["--name: got ''"]),
    ("cli-output-placeholder", None, ["train", "--output", "r/{sed}.h5"], ["--output:", "{sed} is not a placeholder"]),
    ("cli-mode-unknown", None, ["train", "--mode", "async"], ["--mode: 'async' is not one of", "buffered"]),
    ("cli-deadline-zero", None, ["train", "--mode", "buffered", "--deadline-ms", "0"], ["--deadline-ms: must be > 0"]),
    ("cli-unknown-option", None, ["train", "--rouns", "2"], ["No such option '--rouns'", "--rounds"]),
    ("cli-unknown-command", None, ["trian"], ["No such command 'trian'"]),
    ("cli-profile-width", None, ["profile", "--width", "-1"], ["--width: must be > 0"]),
    # slurm: the arguments after -- go through train's own parser and the config
    ("slurm-arg-type", OK, ["slurm", "--config", "{cfg}", "--", "--rounds", "abc"],
     ["-- --rounds: 'abc' is not a valid integer"]),
    ("slurm-arg-range", OK, ["slurm", "--config", "{cfg}", "--", "--rounds", "0"], ["-- --rounds: must be >= 1, got 0"]),
    ("slurm-arg-unknown", OK, ["slurm", "--config", "{cfg}", "--", "--bogus"], ["-- No such option '--bogus'"]),
    ("slurm-arg-extra", OK, ["slurm", "--config", "{cfg}", "--", "extra"], ["-- Got unexpected extra argument"]),
    ("slurm-arg-help", OK, ["slurm", "--config", "{cfg}", "--", "--help"], ["-- --help: a batch script cannot"]),
    ("slurm-arg-output", OK, ["slurm", "--config", "{cfg}", "--", "--output", "x.h5"],
     ["-- --output: the script sets --output itself"]),
    ("slurm-arg-config", OK, ["slurm", "--config", "{cfg}", "--", "--config=y.yaml"],
     ["-- --config=y.yaml: the script sets --config itself"]),
    ("slurm-arg-seed-in-array", OK, ["slurm", "--config", "{cfg}", "--array", "0-2", "--", "--seed", "3"],
     ["-- --seed: each array task sets its own"]),
    ("slurm-arg-cuts", OK, ["slurm", "--config", "{cfg}", "--", "--cuts", "3,5,1,5"], ["-- --cuts:", "pinned"]),
    ("slurm-config-cuts", "cuts: [3, 5, 1, 5]\n" + OK, ["slurm", "--config", "{cfg}"], ["cuts: [3, 5, 1, 5]", "pinned"]),
    ("slurm-ntasks-word", OK, ["slurm", "--config", "{cfg}", "--ntasks", "abc"], ["--ntasks: 'abc' is not a valid"]),
    # slurm: wall-time signal, requeue and resume (issue 11, point 5)
    ("slurm-arg-resume", OK, ["slurm", "--config", "{cfg}", "--", "--resume", "r.h5.partial"],
     ["-- --resume: the script adds --resume itself", "huscf-mpi slurm --resume PATH"]),
    ("slurm-signal-grace-negative", OK, ["slurm", "--config", "{cfg}", "--signal-grace", "-1"],
     ["--signal-grace -1 is not valid", "or 0 for no signal and no requeue"]),
    ("slurm-signal-grace-word", OK, ["slurm", "--config", "{cfg}", "--signal-grace", "soon"],
     ["--signal-grace: 'soon' is not a valid integer"]),
    ("slurm-signal-grace-time", OK, ["slurm", "--config", "{cfg}", "--time", "5"],
     ["--signal-grace 300: the warning would come before the job starts (--time 5 is 300 s)"]),
    ("slurm-resume-missing", None, ["slurm", "--resume", "{tmp}/r.h5.partial"],
     ["--resume", "no checkpoint at", "r.h5.ckpt/manifest.json"]),
    ("slurm-resume-config", OK, ["slurm", "--resume", "{tmp}/r.h5.partial", "--config", "{cfg}"],
     ["--config: --resume continues one stopped run", "drop --config"]),
    ("slurm-no-config", None, ["slurm"], ["--config: give the run's config", "or --resume PATH"]),
]


def _expand(args, cfg: Path, tmp: Path):
    return [a.replace("{cfg}", str(cfg)).replace("{tmp}", str(tmp)) for a in args]


def _check(line_source: str, exit_code: int, words) -> str:
    assert exit_code != 0
    assert "Traceback" not in line_source
    lines = [ln for ln in line_source.splitlines() if ln.strip()]
    assert len(lines) == 1, line_source
    line = lines[0]
    assert line.startswith("huscf-mpi: error: "), line
    for w in words:
        assert w in line, (w, line)
    return line


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty folder (the default output results/... must not exist there)."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "devices.yaml").write_text("server: {mhz: 1, flops_per_cycle: 1, link_bytes_per_s: 1}\n"
                                           "clients: [1, 2]\n")
    (tmp_path / "devices-syntax.yaml").write_text("server: {mhz: 1\n")
    monkeypatch.chdir(work)
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(in_tmp, case):
    _, contents, args, words = case
    cfg = in_tmp / "c.yaml"
    if isinstance(contents, bytes):
        cfg.write_bytes(contents)
    elif contents is not None:
        cfg.write_text(contents.replace("{tmp}", str(in_tmp)))
    res = CliRunner().invoke(main, _expand(args, cfg, in_tmp))
    assert isinstance(res.exception, SystemExit), res.exception  # not a crash
    _check(res.output, res.exit_code, words)


def test_cases_cover_every_kind():
    kinds = {c[0].split("-")[0] for c in CASES}
    assert kinds >= {"yaml", "encoding", "type", "range", "cross", "path", "cli", "slurm", "unknown"}
    assert len(CASES) >= 30


@pytest.mark.parametrize("args, words", [
    (["train", "--config", "{cfg}"], ["not UTF-8 text"]),
    (["train", "--seed", "abc"], ["--seed: 'abc' is not a valid integer"]),
])
def test_console_entry_point(tmp_path, args, words):
    """The process itself: stderr holds the one line, the exit status is 2, nothing else is printed."""
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes("name: café\n".encode("latin-1"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "huscf_mpi.cli", *_expand(args, cfg, tmp_path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    _check(proc.stderr, proc.returncode, words)


def test_data_root_blames_its_source(tmp_path):
    # Checked collectively at set-up (every node needs it); the message names where it came from.
    with pytest.raises(DataError, match=r"from data.root in the config\) is not a directory"):
        resolve_data_root(tmp_path / "none", source="data.root in the config")
    with pytest.raises(DataError, match=r"from --data-root\) is not a directory"):
        resolve_data_root(tmp_path / "none")


@pytest.mark.parametrize("where, overwrite, words", [
    ("{tmp}", True, ["is a directory", "give a file path such as"]),
    ("{tmp}/file/x/run.h5", False, ["file is a file, not a folder"]),
    ("{tmp}/file", False, ["already exists", "--overwrite"]),
    ("{tmp}/new/deeper/run.h5", False, None),
    ("{tmp}/file", True, None),
])
def test_output_problem(tmp_path, where, overwrite, words):
    """The output path check of set-up's first phase (rank 0, agreed by every rank): it needs the
    right rank count, so it is tested here directly; docs/validation.md shows it through mpiexec."""
    from huscf_mpi.roles.setup import output_problem

    (tmp_path / "file").write_text("x")
    problem = output_problem(Path(where.replace("{tmp}", str(tmp_path))), overwrite)
    if words is None:
        assert problem is None
    else:
        assert problem.startswith("output ") and "\n" not in problem
        for w in words:
            assert w in problem, (w, problem)


def test_accepted_inputs(in_tmp):
    """Not refused: an empty section (its defaults), a UTF-8 BOM, warmup_rounds beyond rounds (plain FedAvg),
    a batch larger than a capped shard (batches wrap around), evaluation.every beyond rounds."""
    from huscf_mpi.config import load_config

    cfg = in_tmp / "ok.yaml"
    cfg.write_bytes(("training:\nevaluation: {every: 100}\nfederation: {warmup_rounds: 9}\n"
                     "data: {domains: {mnist: 2}, max_samples_per_client: 10}\n").encode("utf-8-sig"))
    c = load_config(cfg, {"training.rounds": 3, "training.batch_size": 64})
    assert c.training.rounds == 3 and c.federation.warmup_rounds == 9 and c.training.batch_size == 64
