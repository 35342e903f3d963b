"""Statistics for closed-loop results: bootstrap confidence intervals and paired comparisons between methods.

- :func:`summarise`: ``{"mean", "ci95", "n"}`` of a sample (rates are means of 0/1 values); the 95% interval is
  the percentile bootstrap of the mean (Efron & Tibshirani 1993, ch. 13): ``resamples`` resamples with
  replacement, the 2.5th and 97.5th percentiles of their means, from a fixed seed so a report is reproducible.
  ``None`` values (a metric undefined for an episode) are left out and ``n`` counts the rest.
- :func:`paired_comparison`: two methods on the same scenes (same scene, same seed), per-scene differences
  ``a - b``: their mean with a bootstrap interval, wins/ties, the two-sided sign test (binomial on the non-tied
  pairs, ``scipy.stats.binomtest``) and the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, zero
  differences dropped; None when fewer than one non-zero pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 2000


def _clean(values: Sequence[Any]) -> np.ndarray:
    return np.array([float(v) for v in values if v is not None and np.isfinite(float(v))], dtype=np.float64)


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of ``values`` (module docstring); None for an empty sample."""
    x = _clean(values)
    if len(x) == 0:
        return None
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1.0 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarise(values: Sequence[Any], *, seed: int = 0) -> dict[str, Any]:
    """``{"mean": x, "ci95": [lo, hi], "n": count}`` (None mean and interval for an empty sample)."""
    x = _clean(values)
    ci = bootstrap_ci(x, seed=seed)
    return {"mean": float(x.mean()) if len(x) else None, "ci95": list(ci) if ci else None, "n": int(len(x))}


def paired_comparison(a: Sequence[Any], b: Sequence[Any], *, seed: int = 0) -> dict[str, Any]:
    """Compare paired samples ``a[i]`` and ``b[i]`` (same scene ``i``); pairs where either is None are dropped."""
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    pairs = [(float(x), float(y)) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    diff = np.array([x - y for x, y in pairs], dtype=np.float64)
    n = len(diff)
    below, above = int((diff < 0).sum()), int((diff > 0).sum())
    nonzero = below + above
    sign_p = float(stats.binomtest(below, nonzero, 0.5).pvalue) if nonzero else None
    wilcoxon_p = float(stats.wilcoxon(diff[diff != 0]).pvalue) if nonzero else None
    ci = bootstrap_ci(diff, seed=seed)
    return {
        "n": n,
        "mean_difference": float(diff.mean()) if n else None,
        "ci95": list(ci) if ci else None,
        "a_lower": below,
        "b_lower": above,
        "ties": n - nonzero,
        "sign_test_p": sign_p,
        "wilcoxon_p": wilcoxon_p,
    }
