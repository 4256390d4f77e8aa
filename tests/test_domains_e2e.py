"""A tiny `huscf-mpi train` per new domain (issue 8): CIFAR-10 on cgan32, PneumoniaMNIST (2
classes) and FSDD spectrograms on cgan28, each with a complete result file."""
from __future__ import annotations

import os

import numpy as np
import pytest

from huscf_mpi.data import get_domain
from huscf_mpi.results import ResultFile

from .conftest import DATA
from .test_train_cli import _train

pytestmark = pytest.mark.mpi


SLOW = pytest.mark.skipif(not os.environ.get("HUSCF_SLOW_TESTS"),
                          reason="trains the CIFAR-10 domain classifier on 50,000 images (minutes on 2 cores); "
                                 "set HUSCF_SLOW_TESTS=1 to run it")


@pytest.mark.parametrize("domain,arch", [("pneumoniamnist", "cgan28"), ("fsdd", "cgan28"),
                                         pytest.param("cifar10", "cgan32", marks=SLOW)])
def test_new_domain_end_to_end(tmp_path, domain, arch):
    spec = get_domain(domain)
    if not (DATA / spec.folder).is_dir():
        pytest.skip(f"no {spec.folder}/ in the data root {DATA}")
    cfg = {
        "name": f"tiny-{domain}", "seed": 1,
        "data": {"domains": {domain: 2}, "max_samples_per_client": 128, "cache": str(tmp_path / "cache")},
        "model": {"architecture": arch, "width": 0.125},
        "training": {"batch_size": 16, "local_epochs": 1, "rounds": 1, "iterations_per_epoch": 2},
        "federation": {"warmup_rounds": 1},
        "cuts": {1: [2, 4, 1, 5], 2: [1, 5, 2, 4]},
        "evaluation": {"generation_samples": 100, "synthetic_samples": 200, "synthetic_epochs": 1,
                       "classifier_epochs": 1, "batch_size": 50, "sample_grid": True, "grid_per_class": 2,
                       "cache_dir": str(tmp_path / "classifiers")},
    }
    out = tmp_path / f"{domain}.h5"
    proc = _train(tmp_path, cfg, out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = ResultFile(out)
    assert r.status == "complete"
    assert np.isfinite(r.rounds()[f"generation_score/{domain}"]).all()
    final = r.final()[domain]
    for key in ("accuracy", "f1", "fid", "generation_score", "classifier_test_accuracy"):
        assert np.isfinite(final[key]), key
    c, h, w = spec.image_shape
    grid = r.samples(domain)[-1]
    assert grid.shape == ((spec.n_classes * h, 2 * w) if c == 1 else (spec.n_classes * h, 2 * w, c))
    assert set(r.table("partition")["split"]) == {"official"}
