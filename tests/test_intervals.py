"""Paired bootstrap intervals: the same metrics as ``bench/metrics.py``, and 95 % coverage on
synthetic data whose true difference is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from uqbench.bench import intervals, metrics, scoring
from uqbench.bench.scoring import softmax


def _logits(rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float16-rounded member logits (ties included, as in saved files) of a test set and two OOD sets."""
    y = rng.integers(0, 5, 150)
    test = rng.normal(size=(3, 150, 5)) + 2.0 * np.eye(5)[y]
    sets = {"test": test, "ood/near": rng.normal(size=(3, 80, 5)), "ood/far": rng.normal(size=(3, 60, 5)) * 0.3}
    return {k: v.astype(np.float16).astype(np.float32) for k, v in sets.items()}, y


def test_replicate_zero_is_the_stored_metric():
    logits, y = _logits(np.random.default_rng(0))
    reps = intervals.replicates(intervals.scores(logits, y, ("near",)), intervals.Resampler(50))
    stored = scoring.score(logits, {"test": y}, near_ood=("near",))
    assert {"ood_near/auroc_msp", "ood_far/fpr95_msp", "ood_mean/auroc_msp", "test/ece"} <= set(reps)
    for key, values in reps.items():
        assert values.shape == (51,)
        assert values[0] == pytest.approx(stored[key], abs=1e-12), key


def test_each_resample_equals_the_metric_of_the_resampled_sets():
    """The weighted formulas agree with ``metrics.compute`` on explicitly repeated samples."""
    logits, y = _logits(np.random.default_rng(1))
    rs = intervals.Resampler(5)
    reps = intervals.replicates(intervals.scores(logits, y), rs)
    for b in (1, 3, 5):
        take = {k: np.repeat(np.arange(v.shape[1]), rs.counts(k, v.shape[1])[b]) for k, v in logits.items()}
        test = softmax(logits["test"][:, take["test"]])
        for name in ("near", "far"):
            ood = softmax(logits[f"ood/{name}"][:, take[f"ood/{name}"]])
            m = metrics.compute(test, y[take["test"]], ood_probs=ood)
            for k in ("acc", "nll", "brier", "ece"):
                assert reps[f"test/{k}"][b] == pytest.approx(m[k], abs=1e-12), (k, b)
            for k in ("auroc_msp", "fpr95_msp"):
                assert reps[f"ood/{name}/{k}"][b] == pytest.approx(m[k], abs=1e-12), (name, k, b)


def test_resamples_are_shared_and_reproducible():
    a, b = intervals.Resampler(20), intervals.Resampler(20)
    assert np.array_equal(a.counts("test", 30), b.counts("test", 30))
    assert (a.counts("test", 30)[0] == 1).all() and (a.counts("test", 30).sum(1) == 30).all()
    assert not np.array_equal(a.counts("test", 30)[1:], a.counts("ood/x", 30)[1:])


# --- coverage ---------------------------------------------------------------------------------
P_A, P_B = 0.80, 0.77  # accuracies of the two methods, expected over training runs
MU_A, MU_B = 1.0, 0.8  # OOD score shifts: AUROC = Phi(mu / sqrt 2) for unit-variance scores


def _true_auroc_diff(train_sd: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(40)
    mean_auroc = lambda mu: float(np.sum(w * stats.norm.cdf(mu * (1 + train_sd * x) / math.sqrt(2))) / w.sum())  # noqa: E731
    return mean_auroc(MU_A) - mean_auroc(MU_B)


def _dataset(rng, seeds: int, n: int, train_sd: float, rs) -> tuple[list, list]:
    """Per-seed replicates of both methods on one simulated test set shared by the seeds. Each seed
    draws a training effect per method (accuracy and OOD shift); per-sample outcomes are correlated
    between the methods (the pairing) and between seeds (the shared test samples)."""
    u, z, zo = rng.random(n), rng.standard_normal(n), rng.standard_normal(n)
    blank = np.zeros(n)
    reps = {"a": [], "b": []}
    for _ in range(seeds):
        v = np.where(rng.random(n) < 0.5, u, rng.random(n))
        for side, p, mu, draw in (("a", P_A, MU_A, u), ("b", P_B, MU_B, v)):
            t = rng.normal(0.0, train_sd)
            noise = lambda: math.sqrt(0.75) * rng.standard_normal(n)  # noqa: E731
            s = intervals.Scores(acc=(draw < p + 0.2 * t).astype(float), conf=blank, nll=blank, brier=blank,
                                 bins=np.zeros(n, int), near=(),
                                 ood={"msp": {"test": 0.5 * z + noise(), "x": mu * (1 + t) + 0.5 * zo + noise()}})
            reps[side].append(intervals.replicates(s, rs))
    return reps["a"], reps["b"]


@pytest.mark.parametrize("train_sd", [0.0, 0.15], ids=["test-noise-only", "training-noise"])
def test_interval_covers_the_true_difference_95_percent_of_the_time(train_sd):
    """300 simulated datasets of 3 seeds: the 95 % interval covers the known difference between
    90 % and 99.5 % of the time (binomial sd 1.3 points; measured 0.95-0.99, conservative where
    test noise differs between seeds), and ignoring the seed spread does not."""
    rng, rs = np.random.default_rng(7), intervals.Resampler(200)
    truth = {"test/acc": P_A - P_B, "ood/x/auroc_msp": _true_auroc_diff(train_sd)}
    hits = {k: 0 for k in truth}
    naive = 0
    sims = 300
    for _ in range(sims):
        a, b = _dataset(rng, 3, 200, train_sd, rs)
        for key, true in truth.items():
            iv = intervals.combine([r[key] for r in a], [r[key] for r in b])
            assert iv.kind == "bootstrap + seeds" and iv.seeds == 3
            hits[key] += iv.lo <= true <= iv.hi
        d = np.mean([ra["test/acc"] - rb["test/acc"] for ra, rb in zip(a, b)], axis=0)
        naive += abs(d[0] - truth["test/acc"]) <= 1.96 * np.std(d[1:], ddof=1)
    for key, n in hits.items():
        assert 0.90 <= n / sims <= 0.995, (key, n / sims)
    if train_sd:
        assert naive / sims < 0.85  # test samples alone miss the training variability


def test_one_seed_and_seed_only_intervals():
    rs = intervals.Resampler(200)
    a, b = _dataset(np.random.default_rng(3), 1, 200, 0.0, rs)
    iv = intervals.combine([a[0]["test/acc"]], [b[0]["test/acc"]])
    assert iv.kind == "bootstrap, one seed" and iv.lo < iv.diff < iv.hi
    iv = intervals.seeds_only([0.8, 0.7, 0.9], [0.7, 0.7, 0.7])
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert (iv.kind, iv.seeds) == ("seeds only", 3)
    assert (iv.diff, iv.lo, iv.hi) == pytest.approx((0.1, 0.1 - half, 0.1 + half))
    one = intervals.seeds_only([0.8], [0.7])
    assert one.kind == "none" and math.isnan(one.lo) and one.diff == pytest.approx(0.1)
    with pytest.raises(ValueError, match="same number"):
        intervals.combine([a[0]["test/acc"]], [])


def test_scores_file_gives_the_replicates_of_the_logits(tmp_path):
    """Where logits stay in the cache, the committed per-sample scores stand in for them."""
    logits, y = _logits(np.random.default_rng(2))
    s = intervals.scores(logits, y, ("near",))
    intervals.save_scores(tmp_path / "seed0.scores.npz", s, intervals.signature(logits, y))
    back, sig = intervals.load_scores(tmp_path / "seed0.scores.npz")
    assert sig == intervals.signature(logits, y) and back.near == ("near",)
    a, b = intervals.replicates(s, intervals.Resampler(20)), intervals.replicates(back, intervals.Resampler(20))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(b[key], a[key], atol=1e-6, err_msg=key)


def test_pairing_ignores_the_held_out_validation_sets(tmp_path):
    """A result scored before validation metrics existed pairs with one that has them."""
    logits, y = _logits(np.random.default_rng(3))
    with_val = {**logits, "val": logits["test"][:, :5], "ood_val": logits["test"][:, :3]}
    assert intervals.signature(with_val, y) == intervals.signature(logits, y)
    assert intervals.signature({**logits, "ood/other": logits["test"]}, y) != intervals.signature(logits, y)
    old = intervals.scores(logits, y, ("near",))
    sig = (intervals.signature(logits, y)[0], tuple(sorted((k, v.shape[1]) for k, v in with_val.items())))
    intervals.save_scores(tmp_path / "seed0.scores.npz", old, sig)  # as files written so far hold it
    assert intervals.load_scores(tmp_path / "seed0.scores.npz")[1] == intervals.signature(logits, y)
