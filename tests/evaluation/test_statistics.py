"""navintent.evaluation.statistics against independent computations."""

import math

import numpy as np
import pytest
from scipy import stats

from navintent.evaluation.statistics import bootstrap_ci, paired_comparison, summarise


def test_bootstrap_interval_matches_an_independent_resampling():
    values = [0.3, 1.2, 0.7, 0.1, 0.9, 0.4]
    lo, hi = bootstrap_ci(values, resamples=500, seed=3)
    rng = np.random.default_rng(3)
    x = np.array(values)
    means = np.array([x[rng.integers(0, 6, size=6)].mean() for _ in range(500)])
    # the same generator draws the same [500, 6] index matrix row by row
    assert lo == pytest.approx(np.quantile(means, 0.025)) and hi == pytest.approx(np.quantile(means, 0.975))
    assert lo < np.mean(values) < hi
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_ci([]) is None


def test_summarise_drops_undefined_values_and_reports_rates():
    out = summarise([True, False, None, True, True])
    assert out["n"] == 4 and out["mean"] == 0.75 and 0.0 <= out["ci95"][0] <= 0.75 <= out["ci95"][1] <= 1.0
    assert summarise([None, None]) == {"mean": None, "ci95": None, "n": 0}


def test_paired_comparison_sign_and_wilcoxon_tests():
    a = [0.2, 0.3, 0.1, 0.5, 0.4, 0.6]
    b = [0.5, 0.6, 0.4, 0.5, 0.9, 0.7]
    out = paired_comparison(a, b)
    diff = np.array(a) - np.array(b)
    assert out["n"] == 6 and out["ties"] == 1 and out["a_lower"] == 5 and out["b_lower"] == 0
    assert out["mean_difference"] == pytest.approx(diff.mean())
    assert out["sign_test_p"] == pytest.approx(2 * 0.5**5)  # 5 of 5 non-tied pairs favour a: two-sided
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(diff[diff != 0]).pvalue)
    assert out["ci95"][1] < 0
    with_missing = paired_comparison([0.1, None, 0.3], [0.2, 0.5, None])
    assert with_missing["n"] == 1 and with_missing["a_lower"] == 1
    assert paired_comparison([0.1], [0.1])["sign_test_p"] is None
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison([1.0], [1.0, 2.0])
    assert not math.isnan(out["wilcoxon_p"])
