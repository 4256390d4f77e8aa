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


def time_to_quality(wall_seconds, scores, threshold: float) -> float:
    """Wall seconds of training until the generation score first reaches ``threshold`` (issue 10).

    Parameters
    ----------
    wall_seconds : (R,) seconds of each round's training and federation (``rounds/wall_seconds``:
        evaluation time is not in it, so runs that evaluate differently compare).
    scores : (R,) the round's generation score, NaN where the round was not evaluated.
    threshold : the score to reach.

    Returns the sum of ``wall_seconds`` up to and including the first round whose score is
    >= ``threshold``; NaN if no round reaches it. Raises ``ValueError`` on unequal lengths.
    """
    wall, gs = np.asarray(wall_seconds, dtype=float), np.asarray(scores, dtype=float)
    if wall.shape != gs.shape or wall.ndim != 1:
        raise ValueError(f"wall_seconds {wall.shape} and scores {gs.shape} must be equal 1-D shapes")
    hit = np.flatnonzero(np.nan_to_num(gs, nan=-np.inf) >= threshold)
    return float(np.cumsum(wall)[hit[0]]) if hit.size else float("nan")
