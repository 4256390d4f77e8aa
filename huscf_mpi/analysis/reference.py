"""The paper's reference numbers (SPEC §7), data only: HuSCF-GAN with its original code, one run each."""
from __future__ import annotations

PAPER_LABEL = "paper (HuSCF-GAN, original code)"
PAPER_STRATEGY = "huscf"

# Accuracy (%) of the classifier trained on synthetic data, per scenario and domain.
PAPER_ACCURACY: dict[int, dict[str, float]] = {
    1: {"mnist": 97.87},
    2: {"mnist": 97.17},
    3: {"mnist": 96.83, "fashion_mnist": 82.93},
    4: {"mnist": 96.21, "fashion_mnist": 81.90},
    5: {"mnist": 96.15, "fashion_mnist": 81.46},
    6: {"mnist": 95.94, "fashion_mnist": 81.94, "kmnist": 72.91, "notmnist": 88.30},
}
