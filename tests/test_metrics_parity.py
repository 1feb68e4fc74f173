"""Parity of ``bench.metrics`` with torch-uncertainty's metrics (which build on torchmetrics).

Where the conventions agree the values must match; where they differ, each test states the
difference and asserts the exact relation between the two values, so that a change on either
side shows up here. The differences:

* ECE: torchmetrics bins are ``[lo, hi)`` (``bucketize(right=True)``), so a confidence of
  exactly 1.0 falls into an extra, 16th bin of its own and a confidence on an inner edge into
  the upper bin; ours are ``(lo, hi]`` with 1.0 in the last bin.
* AURC: torch-uncertainty integrates the risk-coverage curve with the trapezoid rule from
  coverage 1/N to 1 and divides by (1 - 1/N); ours is the mean of the N risks.
* Brier on ``(B, M, C)``: torch-uncertainty averages the members' Brier scores; ours scores
  the mean prediction (smaller or equal, by convexity).
* FPR95: torch-uncertainty takes the positive label as given (its routines use OOD = 1 with a
  confidence score); ours holds 95 % of the in-distribution samples. They agree with the
  in-distribution set as the positive class and the negated OOD score as the confidence.
* NLL: torch-uncertainty does not clamp, so a zero probability on the label gives infinity;
  ours clamps the probability at ``EPS``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uqbench.bench import metrics

tu = pytest.importorskip("torch_uncertainty.metrics")
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision  # noqa: E402

M, B, C = 3, 400, 5


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(C, 0.5), size=(M, B))  # (M, B, C), distinct confidences
    labels = rng.integers(0, C, B)
    ood = rng.dirichlet(np.full(C, 2.0), size=(M, 300))
    return probs, labels, ood


def _value(metric, *args) -> float:
    metric.update(*args)
    return float(metric.compute())


def _bmc(probs: np.ndarray) -> torch.Tensor:
    """Ours (M, B, C) -> torch-uncertainty's (B, M, C)."""
    return torch.from_numpy(probs).permute(1, 0, 2)


def test_matching_conventions(sample):
    probs, labels, ood = sample
    ours = metrics.compute(probs, labels, ood)
    mean, y = torch.from_numpy(probs.mean(0)), torch.from_numpy(labels)
    assert _value(tu.CategoricalNLL(), mean, y) == pytest.approx(ours["nll"], rel=1e-6)
    assert _value(tu.BrierScore(num_classes=C), mean, y) == pytest.approx(ours["brier"], rel=1e-6)
    assert _value(tu.Disagreement(), _bmc(probs)) == pytest.approx(ours["disagreement"], rel=1e-6)
    ece = tu.CalibrationError(task="multiclass", num_classes=C, num_bins=15)
    assert _value(ece, mean, y) == pytest.approx(ours["ece"], abs=1e-6)  # torchmetrics works in float32
    scores = np.concatenate([metrics.ood_scores(probs)["msp"], metrics.ood_scores(ood)["msp"]])
    is_ood = torch.from_numpy(np.r_[np.zeros(B), np.ones(ood.shape[1])]).long()
    assert _value(BinaryAUROC(), torch.from_numpy(scores), is_ood) == pytest.approx(ours["auroc_msp"], abs=1e-6)
    assert _value(BinaryAveragePrecision(), torch.from_numpy(scores), is_ood) == pytest.approx(ours["aupr_msp"], abs=1e-6)


def test_ece_confidence_one_gets_an_extra_bin_in_torchmetrics():
    # four samples at confidence exactly 1.0 (three right: overconfident), four inside bin 14
    # (all right: underconfident), so that pooling them in one bin changes the value
    conf = np.array([1.0, 1.0, 1.0, 1.0, 0.96, 0.95, 0.97, 0.99])
    correct = np.array([1, 1, 1, 0, 1, 1, 1, 1], dtype=bool)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(correct, 0, 1)
    ours = metrics.compute(probs, labels)["ece"]
    # ours: one bin (14/15, 1] holding all eight
    assert ours == pytest.approx(abs(correct.mean() - conf.mean()), abs=1e-12)
    # torchmetrics: the four at 1.0 in a bin of their own, the other four in bin 14
    ones = conf == 1.0
    expected = (ones.mean() * abs(correct[ones].mean() - 1.0)
                + (~ones).mean() * abs(correct[~ones].mean() - conf[~ones].mean()))
    theirs = _value(tu.CalibrationError(task="multiclass", num_classes=2, num_bins=15),
                    torch.from_numpy(probs), torch.from_numpy(labels))
    assert theirs == pytest.approx(expected, abs=1e-6)
    assert abs(theirs - ours) > 0.03


def test_ece_inner_edge_goes_to_the_upper_bin_in_torchmetrics():
    # with 4 bins, 0.75 is an inner edge (exact in binary floating point)
    conf = np.array([0.75, 0.7, 0.8, 0.9])
    correct = np.array([0, 1, 0, 1], dtype=bool)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.where(correct, 0, 1)
    ours = metrics.compute(probs, labels, n_bins=4)["ece"]
    lower, upper = np.array([True, True, False, False]), np.array([False, False, True, True])
    gap = lambda mask: mask.mean() * abs(correct[mask].mean() - conf[mask].mean())  # noqa: E731
    assert ours == pytest.approx(gap(lower) + gap(upper), abs=1e-12)  # 0.75 in (0.5, 0.75]
    theirs = _value(tu.CalibrationError(task="multiclass", num_classes=2, num_bins=4),
                    torch.from_numpy(probs), torch.from_numpy(labels))
    first = np.array([False, True, False, False])  # 0.75 joins [0.75, 1)
    assert theirs == pytest.approx(gap(first) + gap(~first), abs=1e-6)
    assert abs(theirs - ours) > 0.1


def test_aurc_trapezoid_and_normalisation(sample):
    probs, labels, _ = sample
    ours = metrics.compute(probs, labels)["aurc"]
    _, risk = metrics.risk_coverage_curve(probs, labels)
    n = risk.size
    assert ours == pytest.approx(risk.mean(), rel=1e-6)
    theirs = _value(tu.AURC(), torch.from_numpy(probs.mean(0)), torch.from_numpy(labels))
    trapezoid = (risk.sum() - (risk[0] + risk[-1]) / 2) / n
    assert theirs == pytest.approx(trapezoid / (1 - 1 / n), rel=1e-6)
    assert theirs != pytest.approx(ours, rel=1e-4)


def test_brier_of_members_versus_brier_of_the_mean(sample):
    probs, labels, _ = sample
    y = torch.from_numpy(labels)
    ours = metrics.compute(probs, labels)["brier"]
    theirs = _value(tu.BrierScore(num_classes=C), _bmc(probs), y)
    per_member = [metrics.compute(probs[m], labels)["brier"] for m in range(M)]
    assert theirs == pytest.approx(np.mean(per_member), rel=1e-6)
    assert ours < theirs - 0.01  # convexity: the mean prediction scores better


def test_fpr95_positive_label(sample):
    probs, labels, ood = sample
    logits, ood_logits = np.log(probs), np.log(ood)  # log-probabilities are logits of these probabilities
    ours = metrics.compute(probs, labels, ood, logits=logits, ood_logits=ood_logits)
    assert {f"fpr95_{s}" for s in metrics.OOD_SCORES} <= set(ours)
    for score in metrics.OOD_SCORES:
        s_id, s_ood = metrics.ood_scores(probs, logits)[score], metrics.ood_scores(ood, ood_logits)[score]
        conf = torch.from_numpy(-np.concatenate([s_id, s_ood]))
        is_id = torch.from_numpy(np.r_[np.ones(B), np.zeros(ood.shape[1])]).long()
        assert _value(tu.FPR95(pos_label=1), conf, is_id) == pytest.approx(ours[f"fpr95_{score}"], abs=1e-6)
    # the OOD-positive reading (95 % of OOD caught, fraction of ID flagged) is another number
    s_id, s_ood = metrics.ood_scores(probs)["msp"], metrics.ood_scores(ood)["msp"]
    ood_positive = _value(tu.FPR95(pos_label=1), torch.from_numpy(np.concatenate([s_id, s_ood])),
                          torch.from_numpy(np.r_[np.zeros(B), np.ones(ood.shape[1])]).long())
    assert ood_positive != pytest.approx(ours["fpr95_msp"], abs=1e-3)


def test_nll_clamp():
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    labels = np.array([1, 0])
    ours = metrics.compute(probs, labels)["nll"]
    assert ours == pytest.approx((-np.log(metrics.EPS) - np.log(0.5)) / 2)
    assert _value(tu.CategoricalNLL(), torch.from_numpy(probs), torch.from_numpy(labels)) == float("inf")
