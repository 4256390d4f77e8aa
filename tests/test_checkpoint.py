"""Checkpoint pieces without MPI (issue 11, point 3): the state snapshot, its files, the result
file's reopening, and the resume's config rule.

The snapshot is checked the strict way: train a model for a few Adam steps, checkpoint, train on
(the reference), restore into a freshly built copy, train on the same way; every parameter,
BatchNorm statistic, moment and random draw must be equal, bit for bit.
"""
import json
from collections import defaultdict
from dataclasses import dataclass
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from huscf_mpi.checkpoint import files
from huscf_mpi.checkpoint.state import capture, restore
from huscf_mpi.config import ConfigError, load_config, resumed_config
from huscf_mpi.data import ClientBatches
from huscf_mpi.models.optim import Adam
from huscf_mpi.results import ResultWriter


@dataclass(frozen=True)
class Rule:
    a: float


class Side:
    """A strategy side in miniature: a module with BatchNorm, its optimizer, generators, counters."""

    def __init__(self, seed=0):
        torch.manual_seed(seed)
        self.info, self.t = object(), object()  # engine references: never saved
        self.nets = {"g": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))}
        self.opt = Adam(self.nets["g"].parameters(), lr=1e-2)
        self.noise = torch.Generator().manual_seed(7)
        self.rng = np.random.default_rng(11)
        self.batches = ClientBatches(np.arange(40, dtype=np.uint8).reshape(10, 2, 2), np.arange(10), 3,
                                     np.random.default_rng(5))
        self.rounds, self.history, self.rule = 0, [], Rule(0.5)
        self.flops = defaultdict(float)
        self.ns = SimpleNamespace(features={1: np.zeros(3)})
        self.fn = len  # code: rebuilt, not saved
        self.pool = None  # built in the first step, as centralized's pool of received data

    def step(self):
        if self.pool is None:
            self.pool = ClientBatches(np.ones((5, 1, 2), np.uint8), np.zeros(5), 2, np.random.default_rng(2))
        x = torch.randn(6, 4, generator=self.noise) + float(self.rng.normal()) + float(self.pool.next_indices()[0])
        x = x + self.batches.next()[0].reshape(3, 4).repeat(2, 1)
        loss = self.nets["g"](x).pow(2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.rounds += 1
        self.history.append(float(loss.detach()))
        self.ns.features[1] = self.ns.features[1] + 1

    def fingerprint(self):
        return ([t.clone() for t in self.nets["g"].state_dict().values()],
                [(s, m.clone(), v.clone()) for s, m, v in self.opt.state.values()],
                self.noise.get_state(), self.rng.bit_generator.state, list(self.history), self.rounds,
                self.ns.features[1].copy(), self.pool.next_indices())


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_a_restored_side_trains_on_exactly_like_the_original():
    side = Side()
    for _ in range(3):
        side.step()
    state = capture(side)
    assert "info" not in state and "t" not in state and "fn" not in state
    for _ in range(4):
        side.step()
    expected = side.fingerprint()

    fresh = Side(seed=99)  # built the same way, other initial weights: everything must come from the state
    restore(fresh, state)
    assert fresh.rounds == 3 and fresh.rule == Rule(0.5)
    for _ in range(4):
        fresh.step()
    assert _equal(fresh.fingerprint(), expected)


def test_restoring_keeps_the_objects_others_refer_to():
    side = Side()
    module, params = side.nets["g"], side.opt.params
    side.step()
    state = capture(side)
    side.step()
    restore(side, state)
    assert side.nets["g"] is module and side.opt.params[0] is params[0]  # the optimizer still steps the model


def test_a_foreign_object_is_refused_by_name():
    side = Side()
    side.pool = __import__("threading").Lock()
    with pytest.raises(TypeError, match=r"cannot checkpoint pool \(_thread.lock\)"):
        capture(side)


def test_a_state_of_another_shape_is_refused_naming_the_entry():
    state = capture(Side())
    other = Side()
    other.nets["g"] = nn.Sequential(nn.Linear(4, 9), nn.BatchNorm1d(9), nn.Linear(9, 1))
    with pytest.raises(ValueError, match=r"checkpoint entry nets\['g'\] does not fit this run"):
        restore(other, state)


def test_a_state_with_an_attribute_the_side_lacks_is_refused():
    """A checkpoint of another version of a strategy (e.g. centralized's nets before its pools)."""
    state = capture(Side())
    state["old_nets"] = state.pop("nets")
    with pytest.raises(ValueError, match="checkpoint entry old_nets does not fit this run: Side has no such"):
        restore(Side(), state)


def test_adam_state_round_trips_and_checks_shapes():
    p = nn.Parameter(torch.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    saved = opt.state_dict()
    opt.state[0][1].add_(5)  # the saved copy must not alias the live moments
    other = Adam([nn.Parameter(torch.ones(3))], lr=0.1)
    other.load_state_dict(saved)
    assert other.state[0][0] == 1 and torch.equal(other.state[0][1], torch.full((3,), 0.1))
    with pytest.raises(ValueError, match="does not fit"):
        Adam([nn.Parameter(torch.ones(4))], lr=0.1).load_state_dict(saved)


def _manifest(round_index, result="r.h5.partial"):
    return files.Manifest(round=round_index, ranks=3, result=result, config_yaml="a: 1\n", config_hash="x",
                          schema_version=1, bytes=[1, 2, 3], seconds=0.1, written="now")


def test_a_manifest_commits_its_round_and_removes_older_ones(tmp_path):
    root = files.checkpoint_dir(tmp_path / "run.h5")
    assert root.name == "run.h5.ckpt"
    for r in (1, 2):
        for rank in range(3):
            files.save_rank(files.rank_file(root, r, rank), {"rank": rank, "round": r})
        files.write_manifest(root, _manifest(r))
    assert sorted(p.name for p in root.iterdir()) == ["manifest.json", "round-000002"]
    assert not list(root.rglob("*.tmp"))
    assert files.load_rank(files.rank_file(root, 2, 1)) == {"rank": 1, "round": 2}
    for given in (tmp_path / "run.h5.partial", tmp_path / "run.h5", root, root / "manifest.json"):
        found_root, manifest = files.find(given)
        assert found_root == root and manifest.round == 2


def test_resume_names_what_it_looked_for(tmp_path):
    with pytest.raises(ValueError, match=r"no checkpoint at .*run.h5.ckpt/manifest.json; give the .partial"):
        files.find(tmp_path / "run.h5.partial")
    root = files.checkpoint_dir(tmp_path / "run.h5")
    root.mkdir()
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not a huscf-mpi checkpoint manifest"):
        files.find(root)
    (root / "manifest.json").write_text(json.dumps({**_manifest(1).__dict__, "format_version": 99}))
    with pytest.raises(ValueError, match="checkpoint format 99, this huscf-mpi reads 1"):
        files.find(root)
    with pytest.raises(ValueError, match="checkpoint file .*rank-00000.pt: No such file or directory"):
        files.load_rank(files.rank_file(root, 1, 0))
    path = files.rank_file(root, 1, 0)
    files.save_rank(path, {"w": torch.zeros(1000)})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"rank-00000.pt is truncated or corrupted \(PytorchStreamReader"):
        files.load_rank(path)


def test_reopening_drops_the_rows_after_the_checkpoint(tmp_path):
    w = ResultWriter(tmp_path / "run.h5")
    for r in range(1, 5):
        w.append("rounds/round", r)
        w.append("rounds/loss_d", np.full(2, float(r)))
        w.append("rounds/evaluated", np.int8(r % 2))  # rounds 1 and 3 evaluated
        if r % 2:
            w.append("samples/mnist", np.full((4, 4), r, np.uint8))
    w.close("interrupted", "interrupted by SIGUSR1", stop_signal="SIGUSR1", rounds_done=4)
    w = ResultWriter.reopen(tmp_path / "run.h5", rounds=2)
    w.append("rounds/round", 3)
    w.close("failed", "later")
    with h5py.File(tmp_path / "run.h5.partial") as f:
        assert list(f["rounds/round"][()]) == [1, 2, 3] and f["rounds/loss_d"].shape == (2, 2)
        assert f["samples/mnist"].shape == (1, 4, 4) and "stop_signal" not in f.attrs
    with pytest.raises(ValueError, match="holds 3 rounds, the checkpoint 4"):
        ResultWriter.reopen(tmp_path / "run.h5", rounds=4)
    with pytest.raises(FileNotFoundError, match="no unfinished result file"):
        ResultWriter.reopen(tmp_path / "other.h5", rounds=1)


def test_a_resumed_run_keeps_its_config(tmp_path):
    saved = load_config(None, {"training.rounds": 4}).to_yaml()
    assert resumed_config(saved, "--resume x").training.rounds == 4
    assert resumed_config(saved, "--resume x", None, {"training.checkpoint_every": 2}).training.checkpoint_every == 2
    with pytest.raises(ConfigError, match=r"--resume x: the stopped run has training.rounds = 4, this one 6; a resumed"):
        resumed_config(saved, "--resume x", None, {"training.rounds": 6})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(saved), "seed": 1}))
    with pytest.raises(ConfigError, match="the stopped run has seed = 0, this one 1"):
        resumed_config(saved, "--resume x", path)
