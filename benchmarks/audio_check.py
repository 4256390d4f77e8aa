"""Listen to an audio run the only way this machine can: check its Griffin-Lim clips (issue 8).

For every clip in ``/audio/<domain>`` of a result file: duration, sample rate, peak and RMS
level, and whether the run's own domain classifier recognises the intended digit when the
clip is turned back into a log-mel spectrogram exactly as a real recording is
(``data/audio.py``: pad/trim, mel, dB, the training split's range). As a yardstick, the same
round trip (image -> Griffin-Lim -> waveform -> image) is applied to real test spectrograms:
what the classifier recognises there is the most the inversion lets through.

Usage: ``.venv/bin/python benchmarks/audio_check.py results/domains/fsdd-quick-s0.h5 [--real 200]``
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from huscf_mpi.config import Config
from huscf_mpi.data import audio, decoded_meta, get_domain, open_domain, to_unit_range
from huscf_mpi.metrics import predict_proba
from huscf_mpi.results import ResultFile
from huscf_mpi.roles.evaluation import domain_classifier


def reimage(waves: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """float waveforms (n, samples) -> uint8 spectrogram images (n, H, W), as the FSDD reader makes them."""
    return np.stack([audio.to_image(audio.log_mel(y), lo, hi) for y in waves])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--real", type=int, default=200, help="real test clips for the round-trip yardstick")
    args = ap.parse_args()
    with ResultFile(args.file) as rf:
        cfg = Config.model_validate(rf.config)
        domains = [d for d in rf.domains if f"audio/{d}" in rf]
        clips = {d: (rf.array(f"audio/{d}"), rf.attrs(f"audio/{d}")) for d in domains}
    if not domains:
        raise SystemExit(f"{args.file}: no /audio/<domain> (not an audio run, or evaluation.audio_per_class: 0)")
    cache = Path(cfg.data.cache).expanduser()
    for d in domains:
        pcm, attrs = clips[d]
        labels, rate = np.asarray(attrs["labels"]), int(attrs["sample_rate"])
        names = get_domain(d).class_names
        data = open_domain(d, cache, cfg.seed)
        meta = decoded_meta(d, cache)
        lo, hi = meta["db_lo"], meta["db_hi"]
        clf, acc = domain_classifier(cfg.evaluation, data)
        waves = pcm.astype(np.float32) / 32768.0
        pred = predict_proba(clf, to_unit_range(reimage(waves, lo, hi))).argmax(1)
        print(f"{args.file} /audio/{d}: {len(pcm)} clips, {pcm.shape[1]} samples = {pcm.shape[1] / rate:.3f} s "
              f"at {rate} Hz, int16; domain classifier real test accuracy {acc:.2f} %")
        print(f"{'clip':>4} {'intended':>8} {'heard':>6} {'peak':>6} {'rms dBFS':>8}")
        for i, (w, k, p) in enumerate(zip(waves, labels, pred)):
            rms = 20 * np.log10(np.sqrt(np.mean(w ** 2)) + 1e-12)
            print(f"{i:>4} {names[k]:>8} {names[p]:>6} {np.abs(w).max():>6.3f} {rms:>8.1f}")
        hits = int((pred == labels).sum())
        print(f"recognised as the intended class: {hits}/{len(labels)} = {100 * hits / len(labels):.1f} % "
              f"(chance {100 / len(names):.1f} %)")
        rng = np.random.default_rng(0)
        pick = rng.choice(len(data.test_labels), size=min(args.real, len(data.test_labels)), replace=False)
        real = to_unit_range(np.asarray(data.test_images[pick]))
        inverted = np.stack([audio.image_to_audio(x, lo, hi, seed=j) for j, x in enumerate(real)])
        real_pred = predict_proba(clf, to_unit_range(reimage(inverted, lo, hi))).argmax(1)
        direct = predict_proba(clf, real).argmax(1)
        truth = data.test_labels[pick]
        print(f"yardstick, {len(pick)} real test spectrograms: classifier on the images {100 * (direct == truth).mean():.1f} %, "
              f"after the same Griffin-Lim round trip {100 * (real_pred == truth).mean():.1f} %")


if __name__ == "__main__":
    main()
