"""Statistics of table cells, pure functions: mean ± sample std over seeds, and which rows are best."""
from __future__ import annotations

import math

import numpy as np

from .model import Cell


def summarize(values) -> Cell | None:
    """Mean, sample standard deviation (``ddof=1``; NaN for one value) and count; None for no values."""
    if len(values) == 0:
        return None
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return Cell(float(arr.mean()), std, int(arr.size))


def best_rows(scored, higher_is_better: bool) -> set[int]:
    """Indices of the best of ``scored`` (``(row index, mean)`` pairs); empty with fewer than two.

    Ties (equal within ``rel_tol=1e-12``) are all best.
    """
    scored = list(scored)
    if len(scored) < 2:
        return set()
    values = [v for _, v in scored]
    target = max(values) if higher_is_better else min(values)
    return {i for i, v in scored if math.isclose(v, target, rel_tol=1e-12, abs_tol=0.0)}
