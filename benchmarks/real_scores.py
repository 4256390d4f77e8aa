"""The generation score of real test images: the ceiling a run's generation scores are read against.

A run scores its generator by the domain classifier's predictions on ``evaluation.generation_samples``
synthetic images (SPEC §6). This scores the same number of *real* test images of each domain of a
config with the same cached classifier, so "a generation score of 5" can be read as a fraction of
what real data gets (e.g. for issue 12's "HuSCF-GAN's generation scores past 5").

    .venv/bin/python benchmarks/real_scores.py --config jobs/configs/compare/huscf.yaml

Prints one line per domain: the generation score of ``--samples`` test images drawn without
replacement with ``--seed`` (mean ± std over ``--draws`` draws) and the classifier's test accuracy.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from huscf_mpi.config import load_config
from huscf_mpi.data import ensure_decoded, open_domain, resolve_data_root
from huscf_mpi.metrics import generation_score, predict_proba
from huscf_mpi.roles.evaluation import domain_classifier

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "jobs" / "configs" / "compare" / "huscf.yaml")
    ap.add_argument("--samples", type=int, default=None, help="images per draw (default: evaluation.generation_samples)")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("HUSCF_DATA_ROOT", ROOT / "data")))
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    n = args.samples or cfg.evaluation.generation_samples
    root, cache = resolve_data_root(args.data_root), Path(cfg.data.cache).expanduser()
    rng = np.random.default_rng(args.seed)
    print(f"| domain | generation score of {n} real test images (mean ± std, {args.draws} draws) | classifier test accuracy % |")
    print("|---|---:|---:|")
    for domain in cfg.data.domains:
        ensure_decoded(domain, root, cache)
        data = open_domain(domain, cache, cfg.seed)
        classifier, test_accuracy = domain_classifier(cfg.evaluation, data)
        probs = predict_proba(classifier, data.test_images)
        scores = [generation_score(probs[rng.choice(len(probs), size=n, replace=False)]) for _ in range(args.draws)]
        print(f"| {domain} | {np.mean(scores):.3f} ± {np.std(scores):.3f} | {test_accuracy:.2f} |", flush=True)


if __name__ == "__main__":
    main()
