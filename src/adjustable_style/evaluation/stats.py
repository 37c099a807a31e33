"""Statistics of the evaluation: Spearman's rank correlation and NaN-tolerant summaries.

Undefined statistics are NaN (never an exception), so one degenerate pair does not sink a report.

Example:
    >>> spearman([0, 1, 2, 3], [10, 8, 8, 1])  # ties get the mean of their ranks
    -0.9486832980505138
    >>> nanmean([1.0, float("nan"), 3.0])
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``; tied values share the mean of their ranks (as ``scipy.stats.rankdata``).

    Example:
        >>> rankdata([10, 20, 20, 5]).tolist()
        [2.0, 3.5, 3.5, 1.0]
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(a.size, dtype=np.float64)
    s = a[order]
    i = 0
    while i < a.size:
        j = i
        while j + 1 < a.size and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1  # positions i..j hold ranks i+1..j+1
        i = j + 1
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman's rank correlation ρ of two equally long samples (ties: averaged ranks).

    Returns NaN when it is undefined: fewer than 2 points, a NaN in either input, or an input that is
    constant (its ranks have no spread).

    Example:
        >>> spearman([1, 2, 3], [3, 2, 1]), spearman([1, 2, 3], [5, 5, 5])
        (-1.0, nan)
    """
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size != b.size:
        raise ValueError(f"x and y must have the same length, got {a.size} and {b.size}")
    if a.size < 2 or np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((ra * rb).sum() / denom, -1.0, 1.0))


def nanmean(values: Sequence[float | None]) -> float:
    """Mean of the values that are neither None nor NaN; NaN when none is left."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else float("nan")


def nanmedian(values: Sequence[float | None]) -> float:
    """Median of the values that are neither None nor NaN; NaN when none is left."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.median(v)) if v else float("nan")


def ratio(a: float, b: float) -> float:
    """``a / b``, or NaN when ``b`` is not positive."""
    return a / b if b > 0 else float("nan")
