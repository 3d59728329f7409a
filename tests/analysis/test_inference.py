"""harness.analysis.inference against published values, scipy, brute-force enumeration and simulation."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import stats as st

from harness.analysis import inference as inf
from harness.analysis.stats import holm

# ---------------------------------------------------------------- Bonett (2006) sd ratio

Y1 = [32, 39, 26, 35, 43, 27, 40, 37, 34, 29]
Y2 = [36, 44, 47, 42, 49, 39, 46, 31, 33, 48]


def _r_trimmed_mean(v, trim):
    """R's mean(v, trim = trim): the median from trim >= 0.5, else drop floor(n trim) each end."""
    v = np.sort(np.asarray(v, float))
    if trim >= 0.5:
        return float(np.median(v))
    k = math.floor(len(v) * trim)
    return float(v[k:len(v) - k].mean())


def _statpsych_ci_ratio_sd2(alpha, y1, y2, iterations):
    """statpsych::ci.ratio.sd2 (Bonett's R package), written out here from its published R source:
    Bonett's interval with the pooled kurtosis re-weighted by the current limit, iterated. With
    iterations = 1 (limits starting at 1) it is the original Bonett (2006) interval."""
    z = st.norm.isf(alpha / 2)
    y1, y2 = np.asarray(y1, float), np.asarray(y2, float)
    n1, n2 = len(y1), len(y2)
    v1, v2 = np.var(y1, ddof=1), np.var(y2, ddof=1)
    m1 = _r_trimmed_mean(y1, 1 / (2 * math.sqrt(n1 - 4)))
    m2 = _r_trimmed_mean(y2, 1 / (2 * math.sqrt(n2 - 4)))
    c0 = (n1 / (n1 - z)) * ((n2 - z) / n2)
    c1, c2 = (n1 - 3) / n1, (n2 - 3) / n2
    a1, a2 = np.sum((y1 - m1) ** 4), np.sum((y2 - m2) ** 4)
    r_lo = r_hi = 1.0
    for _ in range(iterations):
        k_lo = (n1 + n2) * (a1 + r_lo ** 4 * a2) / ((n1 - 1) * v1 + r_lo ** 2 * (n2 - 1) * v2) ** 2
        k_hi = (n1 + n2) * (a1 + r_hi ** 4 * a2) / ((n1 - 1) * v1 + r_hi ** 2 * (n2 - 1) * v2) ** 2
        se_lo = math.sqrt((k_lo - c1) / (n1 - 1) + (k_lo - c2) / (n2 - 1))
        se_hi = math.sqrt((k_hi - c1) / (n1 - 1) + (k_hi - c2) / (n2 - 1))
        lr = math.log(c0 * v1 / v2)
        r_lo, r_hi = math.sqrt(math.exp(lr - z * se_lo)), math.sqrt(math.exp(lr + z * se_hi))
    return r_lo, r_hi


def test_bonett_interval_is_statpsych_first_step():
    # the reference reproduces statpsych's documented output for its example
    # (dgbonett.github.io/statpsych/reference/ci.ratio.sd2.html: SD1/SD2 0.8854257, 0.486279, 1.728396)
    assert _statpsych_ci_ratio_sd2(0.05, Y1, Y2, 10) == pytest.approx((0.486279, 1.728396), abs=1e-6)
    # its first step (pooled kurtosis with both limits at 1) is Bonett's 2006 interval
    r = inf.bonett_sd_ratio(Y1, Y2)
    assert r.ratio == pytest.approx(0.8854257, abs=1e-7)
    assert (r.ci_low, r.ci_high) == pytest.approx(_statpsych_ci_ratio_sd2(0.05, Y1, Y2, 1), rel=1e-12)
    # unequal sizes (c != 1), n = 5 (trimmed mean = median) and another level
    for a, b, alpha in [(Y1, Y2[:7], 0.05), (Y1[:5], Y2, 0.1), (Y2[:6], Y1[:5], 0.01)]:
        r = inf.bonett_sd_ratio(a, b, alpha)
        assert (r.ci_low, r.ci_high) == pytest.approx(_statpsych_ci_ratio_sd2(alpha, a, b, 1), rel=1e-12)


def _samples(rng, count):
    """Random pairs of samples: sizes 5..12 (often unequal), normal, t3 and lognormal values,
    scales from 1/4 to 4."""
    out = []
    for _ in range(count):
        nx, ny = rng.integers(5, 13, size=2)
        draw = [rng.normal, lambda size: rng.standard_t(3, size), lambda size: rng.lognormal(size=size)][
            rng.integers(3)]
        out.append((draw(size=nx) * 2.0 ** rng.uniform(-2, 2), draw(size=ny)))
    return out


def test_bonett_p_inverts_the_interval():
    rng = np.random.default_rng(11)
    levels = (0.01, 0.05, 0.2)
    for x, y in _samples(rng, 400):
        r = inf.bonett_sd_ratio(x, y)
        for alpha in levels:
            ci = inf.bonett_sd_ratio(x, y, alpha)
            assert (r.p < alpha) == (ci.ci_low > 1 or ci.ci_high < 1), (x, y, alpha)
        # p is the level at which the interval's edge reaches 1: just above it excludes 1,
        # just below it contains 1
        if 1e-6 < r.p < 0.999:
            above, below = inf.bonett_sd_ratio(x, y, r.p * 1.0001), inf.bonett_sd_ratio(x, y, r.p / 1.0001)
            assert above.ci_low > 1 or above.ci_high < 1
            assert below.ci_low <= 1 <= below.ci_high


def test_bonett_symmetry_and_scale():
    rng = np.random.default_rng(5)
    for x, y in _samples(rng, 100):
        r, s = inf.bonett_sd_ratio(x, y), inf.bonett_sd_ratio(y, x)
        assert s.ratio == pytest.approx(1 / r.ratio, rel=1e-12)
        assert (s.ci_low, s.ci_high) == pytest.approx((1 / r.ci_high, 1 / r.ci_low), rel=1e-10)
        assert s.p == pytest.approx(r.p, rel=1e-9, abs=1e-15)
        # a common scale and separate shifts change nothing (scaling one group alone does: the
        # pooled kurtosis assumes equal variances)
        u = inf.bonett_sd_ratio(3 * x + 7, 3 * y - 2)
        assert (u.ratio, u.ci_low, u.ci_high, u.p) == pytest.approx((r.ratio, r.ci_low, r.ci_high, r.p),
                                                                  rel=1e-9)


def test_bonett_coverage_and_power_at_n5():
    """Monte Carlo, n = 5 per group, normal data, 4,000 simulations per setting (seed 20240601).

    Measured: coverage of the 95% interval 0.978 at a true ratio of 1 (0.970 at 2, 0.968 at 3):
    conservative at n = 5 (Monte Carlo se about 0.003). Power of p < 0.05 against a true sd ratio
    of 2: 0.100; of 3: 0.247. At n = 5 only large spread differences are detectable.
    """
    rng = np.random.default_rng(20240601)
    measured = {}
    for ratio in (1.0, 2.0, 3.0):
        covered = rejected = 0
        for _ in range(4000):
            r = inf.bonett_sd_ratio(ratio * rng.normal(size=5), rng.normal(size=5))
            covered += r.ci_low <= ratio <= r.ci_high
            rejected += r.p < 0.05
        measured[ratio] = (covered / 4000, rejected / 4000)
    assert 0.94 <= measured[1.0][0] <= 0.985  # within 0.035 of 0.95, never liberal by > 0.01
    assert measured[1.0][1] == pytest.approx(1 - measured[1.0][0])  # p < alpha iff 1 is outside
    for ratio in (2.0, 3.0):
        assert 0.94 <= measured[ratio][0] <= 0.985
    # the figures in the docstring (a fixed seed: they change only if the function does)
    assert measured[1.0][0] == pytest.approx(0.978, abs=0.005)
    assert measured[2.0][1] == pytest.approx(0.100, abs=0.01)
    assert measured[3.0][1] == pytest.approx(0.247, abs=0.01)


def test_bonett_undefined_cases():
    small = inf.bonett_sd_ratio([1.0, 2, 3, 4], [1.0, 2, 4, 8, 9])
    assert small.ratio == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / np.std([1, 2, 4, 8, 9], ddof=1))
    assert np.isnan([small.ci_low, small.ci_high, small.p]).all()
    flat = inf.bonett_sd_ratio([2.0] * 6, [1.0, 2, 4, 8, 9])
    assert flat.ratio == 0 and np.isnan([flat.ci_low, flat.ci_high, flat.p]).all()
    assert inf.bonett_sd_ratio(Y1, Y1).p == 1.0
    # z_{1 - alpha/2} >= min(n): no interval, the p still defined
    tiny = inf.bonett_sd_ratio(Y1[:5], Y2[:6], alpha=1e-7)
    assert np.isnan(tiny.ci_low) and 0 < tiny.p < 1


# ---------------------------------------------------------------- kappa


def _kappa_confusion(labels, preds, k):
    """Cohen's kappa from the confusion matrix itself."""
    cm = np.zeros((k, k))
    np.add.at(cm, (labels, preds), 1)
    n = cm.sum()
    po = np.trace(cm) / n
    pe = np.sum(cm.sum(0) * cm.sum(1)) / n ** 2
    return (po - pe) / (1 - pe)


def test_kappa_from_counts_matches_confusion_matrix():
    rng = np.random.default_rng(3)
    for _ in range(300):
        k, n = int(rng.integers(2, 5)), int(rng.integers(5, 200))
        labels = rng.integers(0, k, n)
        keep = rng.random(n) < rng.random()  # some predictions copy the label
        preds = np.where(keep, labels, rng.integers(0, k, n))
        if len(set(labels)) == 1 and len(set(preds)) == 1 and labels[0] == preds[0]:
            continue
        got = inf.kappa_from_counts(np.mean(labels == preds), np.bincount(preds, minlength=k),
                                    np.bincount(labels, minlength=k))
        assert got == pytest.approx(_kappa_confusion(labels, preds, k), rel=1e-12, abs=1e-12)
        if k == 2:  # the 2x2 closed form 2 (ad - bc) / ((a + b)(b + d) + (a + c)(c + d))
            a, b = np.sum((labels == 0) & (preds == 0)), np.sum((labels == 0) & (preds == 1))
            c, d = np.sum((labels == 1) & (preds == 0)), np.sum((labels == 1) & (preds == 1))
            assert got == pytest.approx(2 * (a * d - b * c) / ((a + b) * (b + d) + (a + c) * (c + d)),
                                        rel=1e-12, abs=1e-12)


def test_kappa_known_values():
    # Cohen's kappa textbook example (two raters, 50 items: 20 yes-yes, 5 yes-no, 10 no-yes,
    # 15 no-no): p_o = 0.7, p_e = 0.5, kappa = 0.4
    assert inf.kappa_from_counts(0.7, [25, 25], [30, 20]) == pytest.approx(0.4)
    assert inf.kappa_from_counts(0.5, [100, 0], [50, 50]) == 0.0  # predicts one class
    assert inf.kappa_from_counts(0.9, [0, 100, 0], [5, 90, 5]) == pytest.approx(0.0, abs=1e-12)
    assert inf.kappa_from_counts(1.0, [40, 60], [40, 60]) == pytest.approx(1.0)
    assert np.isnan(inf.kappa_from_counts(1.0, [0, 10], [0, 10]))
    with pytest.raises(ValueError):
        inf.kappa_from_counts(85.0, [50, 50], [50, 50])  # percent, not a fraction
    with pytest.raises(ValueError):
        inf.kappa_from_counts(0.5, [50, 51], [50, 50])


# ---------------------------------------------------------------- Fisher's smallest p


def _fisher_brute(n_a, n_b):
    """(two-sided, one-sided) smallest p of scipy's Fisher test over every table with these rows."""
    two = one = 1.0
    for ka, kb in product(range(n_a + 1), range(n_b + 1)):
        table = [[ka, n_a - ka], [kb, n_b - kb]]
        two = min(two, st.fisher_exact(table).pvalue)
        one = min(one, st.fisher_exact(table, alternative="greater").pvalue,
                  st.fisher_exact(table, alternative="less").pvalue)
    return two, one


def test_fisher_min_p_by_enumeration():
    for n_a, n_b in [*product(range(1, 7), repeat=2), (10, 12), (3, 9)]:
        two, one = _fisher_brute(n_a, n_b)
        assert inf.fisher_min_p(n_a, n_b) == pytest.approx(two, rel=1e-9), (n_a, n_b)
        assert inf.fisher_min_p_one_sided(n_a, n_b) == pytest.approx(one, rel=1e-9), (n_a, n_b)
    assert inf.fisher_min_p(5, 5) == pytest.approx(2 / 252)
    assert inf.fisher_min_p(3, 3) == pytest.approx(0.1)
    assert st.fisher_exact([[5, 0], [0, 5]]).pvalue == pytest.approx(2 / 252)
    assert np.isnan(inf.fisher_min_p(0, 4)) and np.isnan(inf.fisher_min_p_one_sided(4, 0))


# ---------------------------------------------------------------- Holm reachability


def test_min_attainable_p_adjusted_by_search():
    rng = np.random.default_rng(8)
    for m in range(1, 6):
        for rank in range(1, m + 1):
            p0 = float(rng.uniform(0.001, 0.05))
            bound = inf.min_attainable_p_adjusted(p0, m, rank)
            assert bound == min(1.0, (m - rank + 1) * p0)
            # attained: the rank - 1 hypotheses ahead have tiny p, the rest larger ones
            p = np.concatenate([[p0], np.full(rank - 1, 1e-12), rng.uniform(p0, 1, m - rank)])
            assert holm(p)[0] == pytest.approx(bound)
            # never beaten: random families in which this hypothesis ranks `rank`
            for _ in range(200):
                ahead = rng.uniform(0, p0, rank - 1)
                p = np.concatenate([[p0], ahead, rng.uniform(p0, 1, m - rank)])
                assert holm(p)[0] >= bound - 1e-15
                # every test with the same smallest p: nothing goes below the rank-1 bound
                q = np.concatenate([[p0], rng.uniform(p0, 1, m - 1)])
                assert holm(q).min() >= inf.min_attainable_p_adjusted(p0, m) - 1e-15
    # 3 vs 3 seeds, Fisher: 0.1 raw, 0.2 in a family of two: no such verdict at 0.05
    assert inf.min_attainable_p_adjusted(inf.fisher_min_p(3, 3), 2) == pytest.approx(0.2)
    assert inf.min_attainable_p_adjusted(0.6, 3) == 1.0
    assert np.isnan(inf.min_attainable_p_adjusted(np.nan, 3))
    with pytest.raises(ValueError):
        inf.min_attainable_p_adjusted(0.01, 3, rank=4)


# ---------------------------------------------------------------- budget x arm interaction


def test_paired_interaction_matches_ttest_rel():
    rng = np.random.default_rng(21)
    for _ in range(200):
        n = int(rng.integers(3, 12))
        d1, d2 = rng.normal(0.5, 1, n), rng.normal(0, 1, n)
        for alpha in (0.05, 0.1):
            got = inf.paired_interaction(d1, d2, alpha)
            ref = st.ttest_rel(d1, d2)
            ci = ref.confidence_interval(1 - alpha)
            assert got.n == n
            assert got.estimate == pytest.approx(np.mean(d1 - d2), rel=1e-12, abs=1e-14)
            assert got.p == pytest.approx(ref.pvalue, rel=1e-10)
            assert (got.ci_low, got.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_paired_interaction_edge_cases():
    # seeds with a missing value in either budget are dropped
    d1, d2 = np.array([1.0, 2.0, np.nan, 0.5, 3.0]), np.array([0.2, 1.0, 0.3, np.inf, 1.5])
    got = inf.paired_interaction(d1, d2)
    assert got.n == 3 and got.p == pytest.approx(st.ttest_rel([1.0, 2.0, 3.0], [0.2, 1.0, 1.5]).pvalue)
    two = inf.paired_interaction([1.0, 2.0], [0.0, 0.5])  # described, not tested
    assert two.estimate == pytest.approx(1.25) and two.n == 2
    assert np.isnan([two.ci_low, two.ci_high, two.p]).all()
    none = inf.paired_interaction([], [])
    assert none.n == 0 and np.isnan(none.estimate)
    zero = inf.paired_interaction([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])  # no interaction at any seed
    assert (zero.estimate, zero.ci_low, zero.ci_high, zero.p) == (0.0, 0.0, 0.0, 1.0)
    same = inf.paired_interaction([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])  # all equal, not zero
    assert same.estimate == pytest.approx(1.0) and np.isnan(same.p)
    assert same.ci_low == same.ci_high == same.estimate


# ---------------------------------------------------------------- group-sequential boundaries

FOUR = np.array([0.25, 0.5, 0.75, 1.0])


def test_classic_obrien_fleming_published():
    # Jennison & Turnbull (2000), Group Sequential Methods, Table 2.3: C_B(4, 0.05) = 2.024,
    # boundaries C_B sqrt(K / k)
    np.testing.assert_allclose(inf.obrien_fleming_classic_bounds(4), [4.049, 2.863, 2.337, 2.024], atol=0.01)
    assert inf.obrien_fleming_classic_bounds(4)[-1] == pytest.approx(2.024, abs=0.001)
    assert inf.obrien_fleming_classic_bounds(1) == pytest.approx([1.960], abs=1e-4)


def test_lan_demets_obf_published():
    # Lan-DeMets O'Brien-Fleming-type spending, two-sided 0.05 (0.025 a side), four equally spaced
    # looks: 4.3326, 2.9631, 2.3590, 2.0141 as tabulated by Reboussin, DeMets, Kim & Lan (2000,
    # Controlled Clinical Trials 21, 190-207; programs ld98 / R ldbounds::ldBounds(4)) and by
    # gsDesign (sfLDOF) and rpact (typeOfDesign "asOF", sided = 2). Nominal two-sided p at the
    # looks: about 0.00001, 0.003, 0.018, 0.044.
    b = inf.group_sequential_bounds(FOUR)
    np.testing.assert_allclose(b, [4.333, 2.963, 2.359, 2.014], atol=0.01)
    np.testing.assert_allclose(inf.nominal_p_bounds(b), [0.00001, 0.0030, 0.0183, 0.0440], atol=0.0002)
    assert inf.group_sequential_bounds([1.0]) == pytest.approx([1.960], abs=1e-4)
    assert inf.lan_demets_obf_spending(1.0) == pytest.approx(0.05)
    assert inf.lan_demets_obf_spending(0.0) == 0.0
    # the one-sided function spent as the two-sided total: a different, earlier-spending design
    one = inf.group_sequential_bounds(FOUR, spending=lambda t, a: inf.lan_demets_obf_spending(t, a, sides=1))
    assert one[0] == pytest.approx(st.norm.isf(0.025) * 2, abs=1e-6)  # spends 2 sf(z / sqrt(t)) at look 1


def test_bounds_against_multivariate_normal():
    """Cumulative crossing probability by look k, 1 - P(|Z_j| < b_j for j <= k) from scipy's
    multivariate normal CDF with corr sqrt(t_i / t_j), equals the spending at t_k; unequal looks."""
    for t in (FOUR, np.array([0.3, 0.45, 0.8, 1.0]), np.array([0.5, 0.9])):
        b = inf.group_sequential_bounds(t)
        cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
        for k in range(1, len(t) + 1):
            inside = st.multivariate_normal.cdf(b[:k], mean=np.zeros(k), cov=cov[:k, :k], lower_limit=-b[:k],
                                                abseps=1e-8, releps=1e-8, maxpts=2_000_000,
                                                rng=np.random.default_rng(k))
            assert 1 - inside == pytest.approx(inf.lan_demets_obf_spending(t[k - 1]), abs=2e-7)


def test_bounds_by_brownian_simulation():
    """Simulated canonical paths (400,000, H0): the classic O'Brien-Fleming design crosses with
    probability 0.05, the Lan-DeMets one by each look as spent (within 4 Monte Carlo se)."""
    rng = np.random.default_rng(4)
    steps = rng.normal(size=(400_000, 4)) * np.sqrt(0.25)
    z = np.cumsum(steps, axis=1) / np.sqrt(FOUR)
    for bounds, target in [(inf.obrien_fleming_classic_bounds(4), np.full(4, np.nan)),
                           (inf.group_sequential_bounds(FOUR), inf.lan_demets_obf_spending(FOUR))]:
        crossed = np.maximum.accumulate(np.abs(z) >= bounds, axis=1).mean(0)
        assert crossed[-1] == pytest.approx(0.05, abs=4 * math.sqrt(0.05 * 0.95 / 400_000))
        for got, want in zip(crossed, target):
            if np.isfinite(want):
                assert got == pytest.approx(want, abs=4 * math.sqrt(want * (1 - want) / 400_000) + 1e-5)


def test_crossing_probabilities_and_inputs():
    b = inf.obrien_fleming_classic_bounds(3)
    probs = inf.crossing_probabilities(b, [1 / 3, 2 / 3, 1])
    assert probs.sum() == pytest.approx(0.05, abs=1e-9)
    assert inf.crossing_probabilities([st.norm.isf(0.025)], [1.0]) == pytest.approx([0.05], abs=1e-12)
    # a look that spends nothing has an infinite boundary; the design still spends alpha overall
    none_early = inf.group_sequential_bounds([0.5, 1.0], spending=lambda t, a: a * (np.asarray(t) >= 1))
    assert np.isinf(none_early[0]) and none_early[1] == pytest.approx(1.960, abs=1e-4)
    assert inf.nominal_p_bounds(1.959964) == pytest.approx(0.05, abs=1e-6)
    for bad in ([0.5, 0.5], [0.0, 1.0], [0.5, 1.2], []):
        with pytest.raises(ValueError):
            inf.group_sequential_bounds(bad)
