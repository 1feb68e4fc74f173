"""Checks bench.metrics against independent computations (scikit-learn, brute-force loops)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score, roc_curve

from uqbench.bench import metrics

SEEDS = (0, 1, 2)
MEMBERS = (1, 3)
N_CLASSES = 5


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _random_case(seed: int, n_members: int, tied: bool = False):
    """ID probs/labels (labels mostly agree with the prediction) and softer OOD probs.

    With ``tied``, every member row is drawn from a small palette of probability
    vectors, so many samples share exactly the same scores and confidences.
    """
    rng = np.random.default_rng(seed)
    n_id, n_ood = 130, 80  # 0.95 * 130 is not an integer: exercises the FPR95 rounding
    if tied:
        palette = _softmax(rng.normal(size=(4, N_CLASSES)) * 2.0)
        probs = palette[rng.integers(0, 4, size=(n_members, n_id))]
        ood = palette[rng.integers(0, 4, size=(n_members, n_ood))]
    else:
        probs = _softmax(rng.normal(size=(n_members, n_id, N_CLASSES)) * 3.0)
        ood = _softmax(rng.normal(size=(n_members, n_ood, N_CLASSES)) * 1.0)
    labels = probs.mean(axis=0).argmax(axis=1)
    flip = rng.random(n_id) < 0.3
    labels[flip] = rng.integers(0, N_CLASSES, size=flip.sum())
    return probs, labels, ood


# ---- independent reference implementations -------------------------------------------


def _ref_entropy(row) -> float:
    return -sum(p * math.log(p) for p in row if p > 0)


def _ref_scores(probs: np.ndarray) -> dict[str, np.ndarray]:
    n_members, n_samples, _ = probs.shape
    msp, ent, mi = [], [], []
    for b in range(n_samples):
        mean = probs[:, b, :].mean(axis=0)
        h = _ref_entropy(mean)
        msp.append(-max(mean))
        ent.append(h)
        mi.append(max(h - sum(_ref_entropy(probs[m, b]) for m in range(n_members)) / n_members, 0))
    return {"msp": np.array(msp), "entropy": np.array(ent), "mi": np.array(mi)}


def _ref_ece(conf, correct, n_bins):
    total = 0.0
    for i in range(n_bins):
        lo, hi = i / n_bins, (i + 1) / n_bins
        in_bin = [(c, ok) for c, ok in zip(conf, correct) if (lo < c <= hi) or (i == 0 and c == 0)]
        if in_bin:
            acc = sum(ok for _, ok in in_bin) / len(in_bin)
            avg_conf = sum(c for c, _ in in_bin) / len(in_bin)
            total += len(in_bin) / len(conf) * abs(acc - avg_conf)
    return total


def _ref_risks(conf, correct):
    order = sorted(range(len(conf)), key=lambda i: -conf[i])  # Python's sort is stable
    return [sum(not correct[i] for i in order[:k]) / k for k in range(1, len(conf) + 1)]


def _ref_disagreement(probs):
    n_members, n_samples, _ = probs.shape
    pairs = list(itertools.combinations(range(n_members), 2))
    if not pairs:
        return 0.0
    preds = probs.argmax(axis=2)
    return np.mean([np.mean([preds[i, b] != preds[j, b] for i, j in pairs]) for b in range(n_samples)])


def _ref_fpr95(id_scores, ood_scores):
    # ID is the positive class, detected by a low OOD score.
    y = np.r_[np.ones(id_scores.size), np.zeros(ood_scores.size)]
    fpr, tpr, _ = roc_curve(y, -np.r_[id_scores, ood_scores], drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)]


def _reference(probs, labels, ood, n_bins=15):
    mean = probs.mean(axis=0)
    conf, pred = mean.max(axis=1), mean.argmax(axis=1)
    correct = pred == labels
    ref = {
        "acc": float(np.mean(correct)),
        "nll": log_loss(labels, mean, labels=list(range(probs.shape[2]))),
        "brier": float(np.mean(((mean - np.eye(probs.shape[2])[labels]) ** 2).sum(axis=1))),
        "ece": _ref_ece(conf, correct, n_bins),
        "aurc": float(np.mean(_ref_risks(conf, correct))),
        "disagreement": _ref_disagreement(probs),
    }
    id_s, ood_s = _ref_scores(probs), _ref_scores(ood)
    is_ood = np.r_[np.zeros(probs.shape[1]), np.ones(ood.shape[1])]
    for name in ("msp", "entropy", "mi"):
        both = np.r_[id_s[name], ood_s[name]]
        ref[f"auroc_{name}"] = roc_auc_score(is_ood, both)
        ref[f"aupr_{name}"] = average_precision_score(is_ood, both)
        ref[f"fpr95_{name}"] = _ref_fpr95(id_s[name], ood_s[name])
    return ref


def _assert_matches(out, ref):
    assert set(out) == set(ref)
    for key, value in out.items():
        assert type(value) is float, key
        assert value == pytest.approx(ref[key], abs=1e-9), key


# ---- agreement with references ------------------------------------------------------


@pytest.mark.parametrize("tied", [False, True], ids=["continuous", "tied"])
@pytest.mark.parametrize("n_members", MEMBERS)
@pytest.mark.parametrize("seed", SEEDS)
def test_compute_matches_reference(seed, n_members, tied):
    probs, labels, ood = _random_case(seed, n_members, tied)
    _assert_matches(metrics.compute(probs, labels, ood), _reference(probs, labels, ood))


def test_tied_case_really_has_ties():
    probs, _, ood = _random_case(0, 3, tied=True)
    scores = np.r_[metrics.ood_scores(probs)["entropy"], metrics.ood_scores(ood)["entropy"]]
    assert np.unique(scores).size < scores.size / 4


@pytest.mark.parametrize("n_bins", [1, 7, 15])
def test_ece_bin_counts(n_bins):
    probs, labels, _ = _random_case(3, 3)
    assert metrics.compute(probs, labels, n_bins=n_bins)["ece"] == pytest.approx(
        _ref_ece(probs.mean(0).max(1), probs.mean(0).argmax(1) == labels, n_bins), abs=1e-12
    )


def test_without_ood_has_only_id_keys():
    probs, labels, _ = _random_case(0, 3)
    assert set(metrics.compute(probs, labels)) == {"acc", "nll", "brier", "ece", "aurc", "disagreement"}


@pytest.mark.parametrize("n_members", MEMBERS)
def test_ood_scores_match_reference(n_members):
    probs, _, _ = _random_case(4, n_members)
    scores, ref = metrics.ood_scores(probs), _ref_scores(probs)
    assert set(scores) == {"msp", "entropy", "mi"}
    for name in scores:
        np.testing.assert_allclose(scores[name], ref[name], rtol=0, atol=1e-12)
    assert np.all(scores["mi"] >= 0)


def test_mi_exactly_zero_and_entropy_predictive_for_single_member():
    probs, _, _ = _random_case(5, 1)
    scores = metrics.ood_scores(probs)
    assert np.all(scores["mi"] == 0.0)
    # Members that each are confident but disagree: predictive entropy is high,
    # mean member entropy (what "entropy" must NOT be) is near zero.
    disagreeing = np.array([[[0.98, 0.01, 0.01]], [[0.01, 0.98, 0.01]], [[0.01, 0.01, 0.98]]])
    scores = metrics.ood_scores(disagreeing)
    assert scores["entropy"][0] == pytest.approx(math.log(3))
    assert scores["mi"][0] == pytest.approx(math.log(3) - _ref_entropy([0.98, 0.01, 0.01]))


def test_reliability_curve_matches_loops():
    probs, labels, _ = _random_case(6, 3)
    conf = probs.mean(0).max(1)
    correct = probs.mean(0).argmax(1) == labels
    curve = metrics.reliability_curve(probs, labels, n_bins=10)
    for i in range(10):
        in_bin = (conf > i / 10) & (conf <= (i + 1) / 10)
        assert curve["count"][i] == in_bin.sum()
        if in_bin.any():
            assert curve["confidence"][i] == pytest.approx(conf[in_bin].mean())
            assert curve["accuracy"][i] == pytest.approx(correct[in_bin].mean())
        else:
            assert np.isnan(curve["confidence"][i]) and np.isnan(curve["accuracy"][i])
    np.testing.assert_allclose(curve["upper"], np.arange(1, 11) / 10)


def test_risk_coverage_curve_matches_loops():
    probs, labels, _ = _random_case(7, 3, tied=True)
    coverage, risk = metrics.risk_coverage_curve(probs, labels)
    mean = probs.mean(0)
    n = labels.size
    np.testing.assert_allclose(coverage, np.arange(1, n + 1) / n)
    np.testing.assert_allclose(risk, _ref_risks(mean.max(1), mean.argmax(1) == labels), atol=1e-12)


# ---- hand-computed edge cases -------------------------------------------------------


def test_ece_bins_are_right_closed():
    # Confidence 0.5 belongs to (0, 0.5], confidence 1.0 to (0.5, 1].
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    labels = np.array([0, 1])
    assert metrics.compute(probs, labels, n_bins=2)["ece"] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    curve = metrics.reliability_curve(probs, labels, n_bins=2)
    np.testing.assert_array_equal(curve["count"], [1, 1])


def test_aurc_ties_keep_input_order():
    # Equal confidence: the stable sort ranks the (wrong) first sample first.
    probs = np.array([[0.6, 0.4], [0.6, 0.4]])
    assert metrics.compute(probs, np.array([1, 0]))["aurc"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics.compute(probs, np.array([0, 1]))["aurc"] == pytest.approx((0.0 + 0.5) / 2)


def test_auroc_ties_count_half():
    id_probs = np.array([[0.7, 0.3], [0.7, 0.3]])
    ood_probs = np.array([[0.7, 0.3], [0.5, 0.5]])
    out = metrics.compute(id_probs, np.array([0, 0]), ood_probs)
    # OOD sample 1 ties both ID samples (2 * 0.5), OOD sample 2 beats both (2 * 1).
    assert out["auroc_msp"] == pytest.approx(3 / 4)
    assert out["auroc_entropy"] == pytest.approx(3 / 4)
    assert out["auroc_mi"] == pytest.approx(1 / 2)  # M = 1: all MI are 0, all tied
    assert out["fpr95_mi"] == 1.0  # every OOD score sits on the ID threshold


def _separated_sets(n=40):
    """ID: members agree and are confident; OOD: confident members that disagree."""
    agree = np.tile([0.9, 0.05, 0.05], (3, n, 1))
    disagree = np.stack([np.tile(np.roll([0.9, 0.05, 0.05], m), (n, 1)) for m in range(3)])
    return agree, disagree


def test_perfect_separator():
    id_probs, ood_probs = _separated_sets()
    out = metrics.compute(id_probs, np.zeros(40, dtype=int), ood_probs)
    for name in ("msp", "entropy", "mi"):
        assert out[f"auroc_{name}"] == 1.0
        assert out[f"aupr_{name}"] == 1.0
        assert out[f"fpr95_{name}"] == 0.0
    assert out["disagreement"] == 0.0


def test_worst_separator():
    ood_probs, id_probs = _separated_sets()
    out = metrics.compute(id_probs, np.zeros(40, dtype=int), ood_probs)
    for name in ("msp", "entropy", "mi"):
        assert out[f"auroc_{name}"] == 0.0
        assert out[f"fpr95_{name}"] == 1.0
        assert out[f"aupr_{name}"] == pytest.approx(0.5)  # precision at the end: 40 / 80
    assert out["disagreement"] == 1.0


def test_fpr95_threshold_is_inclusive_at_95_percent():
    # 20 ID MSP scores -0.99..-0.80: 95 % of them (19) are <= -0.81, the threshold.
    id_conf = 0.99 - np.arange(20) / 100
    id_probs = np.stack([id_conf, 1 - id_conf], axis=1)
    # OOD scores -0.82, -0.81 (on the threshold: counted), -0.805, -0.80.
    ood_conf = np.array([id_conf[17], id_conf[18], (id_conf[18] + id_conf[19]) / 2, id_conf[19]])
    ood_probs = np.stack([ood_conf, 1 - ood_conf], axis=1)
    assert metrics.compute(id_probs, np.zeros(20, dtype=int), ood_probs)["fpr95_msp"] == 0.5


# ---- input handling -----------------------------------------------------------------


def test_two_dim_probs_equal_single_member():
    probs, labels, ood = _random_case(8, 1)
    assert metrics.compute(probs[0], labels, ood[0]) == metrics.compute(probs, labels, ood)
    assert metrics.compute(probs[0], labels, ood) == metrics.compute(probs, labels, ood[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_and_torch_give_same_dict(dtype):
    probs, labels, ood = _random_case(9, 3)
    probs, ood = probs.astype(dtype), ood.astype(dtype)
    from_numpy = metrics.compute(probs, labels, ood)
    from_torch = metrics.compute(torch.from_numpy(probs), torch.from_numpy(labels), torch.from_numpy(ood))
    assert from_numpy == from_torch
    assert len(from_numpy) == 6 + 9


def test_check_finite_message():
    x = torch.zeros(4, 5)
    x[0, 0], x[1, 1], x[2, 2] = float("nan"), float("inf"), -float("inf")
    with pytest.raises(ValueError, match=r"^logits for 'textures' contain 3 NaN/inf values") as err:
        metrics.check_finite(x, "logits for 'textures'")
    assert "\n" not in str(err.value)
    metrics.check_finite(np.zeros(3), "fine")  # no error


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["probs", "ood_probs"])
@pytest.mark.parametrize("as_torch", [False, True])
def test_non_finite_inputs_raise(bad, where, as_torch):
    probs, labels, ood = _random_case(10, 3)
    target = probs if where == "probs" else ood
    target[1, 2, 3] = bad
    target[2, 0, 0] = bad
    if as_torch:
        probs, ood = torch.from_numpy(probs), torch.from_numpy(ood)
    with pytest.raises(ValueError, match=rf"^{where} contain 2 NaN/inf values"):
        metrics.compute(probs, labels, ood)


def test_non_finite_raises_in_helpers():
    probs, labels, _ = _random_case(11, 3)
    probs[0, 0, 0] = np.nan
    for call in (
        lambda: metrics.ood_scores(probs),
        lambda: metrics.reliability_curve(probs, labels),
        lambda: metrics.risk_coverage_curve(probs, labels),
    ):
        with pytest.raises(ValueError, match="NaN/inf"):
            call()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p, y, o: (p, y[:-1], o), "labels have shape"),
        (lambda p, y, o: (p, np.r_[y, 0], o), "labels have shape"),
        (lambda p, y, o: (p, y, o[..., :-1]), "classes"),
        (lambda p, y, o: (p, y, o[:2]), "members"),
        (lambda p, y, o: (p[0, :, 0], y, o), "shape"),
        (lambda p, y, o: (p[:, :0], y[:0], o), "shape"),
        (lambda p, y, o: (p, y + N_CLASSES, o), r"labels must lie in \[0, 5\)"),
        (lambda p, y, o: (p, y.astype(float), o), "labels must be integers"),
    ],
    ids=["short-labels", "long-labels", "ood-classes", "ood-members", "1d-probs", "empty", "label-range",
         "float-labels"],
)
def test_bad_shapes_raise(mutate, message):
    probs, labels, ood = _random_case(12, 3)
    with pytest.raises(ValueError, match=message):
        metrics.compute(*mutate(probs, labels, ood))


# ---- logit-based OOD scores (energy, max-logit) ---------------------------------------


def _ref_logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """From the mean of the member logits; higher = more likely OOD."""
    from scipy.special import logsumexp

    z = logits.mean(axis=0)
    return {"energy": -logsumexp(z, axis=1), "maxlogit": -z.max(axis=1)}


@pytest.mark.parametrize("n_members", MEMBERS)
@pytest.mark.parametrize("seed", SEEDS)
def test_energy_and_maxlogit_match_reference(seed, n_members):
    rng = np.random.default_rng(seed)
    z, zo = rng.normal(size=(n_members, 130, N_CLASSES)) * 3.0, rng.normal(size=(n_members, 80, N_CLASSES))
    labels = rng.integers(0, N_CLASSES, 130)
    out = metrics.compute(_softmax(z), labels, _softmax(zo), logits=z, ood_logits=zo)
    ref_id, ref_ood = _ref_logit_scores(z), _ref_logit_scores(zo)
    is_ood = np.r_[np.zeros(130), np.ones(80)]
    for name in metrics.LOGIT_SCORES:
        np.testing.assert_allclose(metrics.logit_scores(z)[name], ref_id[name], rtol=0, atol=1e-12)
        both = np.r_[ref_id[name], ref_ood[name]]
        assert out[f"auroc_{name}"] == pytest.approx(roc_auc_score(is_ood, both), abs=1e-12)
        assert out[f"aupr_{name}"] == pytest.approx(average_precision_score(is_ood, both), abs=1e-12)
        assert out[f"fpr95_{name}"] == pytest.approx(_ref_fpr95(ref_id[name], ref_ood[name]), abs=1e-12)
    assert set(out) == set(metrics.compute(_softmax(z), labels, _softmax(zo))) | {
        f"{m}_{s}" for m in ("auroc", "aupr", "fpr95") for s in metrics.LOGIT_SCORES}


def test_logit_scores_use_the_mean_logits_and_flag_flat_logits():
    """Two confident members that disagree: the mean logits are flat, so the energy is that of
    [5, 5], not of either member; and flatter (OOD-like) logits score higher."""
    s = metrics.logit_scores(np.array([[[10.0, 0.0]], [[0.0, 10.0]]]))
    assert s["energy"][0] == pytest.approx(-(5 + math.log(2)))
    assert s["maxlogit"][0] == pytest.approx(-5.0)
    sharp, flat = metrics.logit_scores(np.array([[[8.0, 0.0, 0.0]]])), metrics.logit_scores(np.array([[[1.0, 0.5, 0.0]]]))
    assert flat["energy"][0] > sharp["energy"][0] and flat["maxlogit"][0] > sharp["maxlogit"][0]


def test_scoring_emits_logit_scores_for_every_ood_set_group_and_ood_val():
    from uqbench.bench import scoring

    rng = np.random.default_rng(9)
    logits = {"test": rng.normal(size=(2, 40, 4)) * 3, "ood/near": rng.normal(size=(2, 30, 4)),
              "ood/far": rng.normal(size=(2, 20, 4)), "val": rng.normal(size=(2, 25, 4)) * 3,
              "ood_val": rng.normal(size=(2, 15, 4))}
    labels = {"test": rng.integers(0, 4, 40), "val": rng.integers(0, 4, 25)}
    out = {**scoring.score(logits, labels, near_ood=("near",)), **scoring.score_val(logits, labels)}
    for group in ("ood/near", "ood/far", "ood_near", "ood_far", "ood_mean", "ood_val"):
        for score in metrics.OOD_SCORES:
            assert {f"{group}/{m}_{score}" for m in ("auroc", "aupr", "fpr95")} <= set(out), (group, score)
    ref = _ref_logit_scores(logits["test"].astype(np.float64))["energy"]
    far = _ref_logit_scores(logits["ood/far"])["energy"]
    assert out["ood/far/auroc_energy"] == pytest.approx(roc_auc_score(np.r_[np.zeros(40), np.ones(20)], np.r_[ref, far]))
