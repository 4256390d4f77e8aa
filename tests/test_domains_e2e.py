"""A tiny `huscf-mpi train` per new domain (issue 8): CIFAR-10 on cgan32, PneumoniaMNIST (2
classes) and FSDD spectrograms on cgan28, each with a complete result file."""
from __future__ import annotations

import numpy as np
import pytest

from huscf_mpi.analysis.plots import plot_all
from huscf_mpi.data import audio, get_domain
from huscf_mpi.results import ResultFile
from huscf_mpi.results.show import summary

from .conftest import DATA
from .test_train_cli import _train

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("domain,arch", [("pneumoniamnist", "cgan28"), ("fsdd", "cgan28"),
                                         ("cifar10", "cgan32")])
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
                       "classifier_epochs": 1, "classifier_train_samples": 1000, "batch_size": 50, "sample_grid": True, "grid_per_class": 2, "audio_per_class": 1,
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
    if spec.modality == "audio":  # Griffin-Lim clips of the final evaluation, 1 per class here
        clips, attrs = r.array(f"audio/{domain}"), r.attrs(f"audio/{domain}")
        assert clips.dtype == np.int16 and clips.shape == (spec.n_classes, audio.DEFAULT.n_samples)
        assert attrs["sample_rate"] == 8000 and attrs["labels"] == list(range(spec.n_classes))
        assert (np.abs(clips).max(axis=1) > 1000).all()  # peak-normalised sound, not silence
        written, _ = plot_all([out], tmp_path / "figures")
        wavs = sorted(p for p in written if p.suffix == ".wav")
        assert [p.name for p in wavs[:2]] == ["0-0.wav", "1-0.wav"] and len(wavs) == spec.n_classes
        y, rate = audio.read_wav(wavs[3].read_bytes())
        assert rate == 8000 and len(y) == audio.DEFAULT.n_samples
        assert np.abs(y * 32768 - clips[3]).max() == 0  # the WAV holds the stored PCM
        assert (tmp_path / "figures" / "spectrograms.png").is_file()
        assert "audio: fsdd, 10 Griffin-Lim clips of 0.864 s at 8000 Hz" in summary(out)
