"""Classification, calibration, selective-prediction and OOD metrics for ensembles.

All computations are plain numpy in float64; torch tensors are accepted and
converted (any dtype, any device).

Conventions (documented here once; the functions below follow them):

* Inputs. ``probs`` holds member probabilities of shape ``(M, B, C)``
  (M members, B samples, C classes); ``(B, C)`` means a single member, M = 1.
  ``labels`` are integer class indices of shape ``(B,)``. The *mean
  prediction* is the average of the member probabilities over M; every metric
  except ``disagreement`` and ``mi`` uses only the mean prediction. NaN/inf
  values, a labels length different from B, labels outside ``[0, C)`` and
  ID/OOD arrays that differ in C or M raise ``ValueError``.
* Prediction and confidence: the predicted class is the argmax of the mean
  prediction (the first maximum on ties); the confidence is its maximum
  probability.
* ``nll``: mean of ``-log p[label]`` of the mean prediction, with the
  probability clamped below at ``EPS`` = 1e-12.
* ``brier``: squared error between the mean prediction and the one-hot label,
  summed over classes and averaged over samples (range [0, 2]).
* ``ece``: ``n_bins`` equal-width bins over the confidence; bin i covers
  ``(i / n_bins, (i + 1) / n_bins]`` and the first bin also includes 0.
  ECE = sum over bins of (bin count / B) * |bin accuracy - bin mean confidence|.
* ``aurc``: samples are sorted by confidence, descending, with a *stable*
  sort, so ties keep their input order (deterministic, but the value can
  depend on the order of tied samples). The risk at coverage k / B is the
  error rate of the first k samples; AURC is the mean of the B risks.
* ``disagreement``: per sample, the fraction of unordered member pairs whose
  argmax differs, averaged over samples; 0 for M = 1.
* OOD scores: **higher score = more likely OOD**.
  ``msp`` = -(max probability of the mean prediction);
  ``entropy`` = entropy of the mean prediction (predictive entropy, natural
  log, 0 log 0 = 0); ``mi`` = predictive entropy - mean member entropy
  (mutual information), tiny negative round-off clamped to 0, exactly 0 for
  M = 1. Two more need the member logits ``(M, B, C)`` the probabilities came
  from, and use the *mean logits* z (the average of the members' logits):
  ``energy`` = -logsumexp(z) (the negated free energy; Liu et al., 2020) and
  ``maxlogit`` = -max(z) (Hendrycks et al., 2022). ``catalogue.OOD_SCORES`` lists every
  kind, in this order.
* OOD detection metrics, per score, with the ID set from ``probs`` and the OOD
  set from ``ood_probs``:
  ``auroc_<score>`` = P(score_ood > score_id) + 0.5 * P(score_ood == score_id)
  (ties count one half); ``aupr_<score>`` = average precision with OOD as the
  positive class, i.e. sum over distinct thresholds of
  (recall increase) * precision, tied scores forming one threshold;
  ``fpr95_<score>`` = FPR at 95 % TPR with ID as the positive class detected by
  a low score (Hendrycks & Gimpel, OpenOOD): the threshold t is the smallest ID
  score such that at least 95 % of ID samples have score <= t, and FPR95 is
  the fraction of OOD samples with score <= t.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .catalogue import OOD_SCORES  # the score kinds, defined once

EPS = 1e-12
LOGIT_SCORES = ("energy", "maxlogit")  # the OOD score kinds that need the member logits


def _to_numpy(x: Any) -> np.ndarray:
    """Converts a torch tensor or array-like to a numpy array (no copy if possible)."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.double()  # also handles bf16/fp16, which numpy lacks or mishandles
        return x.numpy()
    return np.asarray(x)


def check_finite(x: Any, what: str) -> None:
    """Raises if ``x`` contains NaN or infinite values.

    Args:
        x: Array or tensor to check.
        what: Description used in the message, e.g. "logits for 'textures'".

    Raises:
        ValueError: e.g. "logits for 'textures' contain 3 NaN/inf values".
    """
    arr = _to_numpy(x)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if n_bad:
        raise ValueError(f"{what} contain {n_bad} NaN/inf values (of {arr.size})")


def _as_members(probs: Any, what: str) -> np.ndarray:
    """Validates probabilities and returns them as float64 of shape (M, B, C)."""
    check_finite(probs, what)
    p = _to_numpy(probs).astype(np.float64, copy=False)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(
            f"{what} must have shape (M, B, C) or (B, C) with no empty axis, "
            f"got {tuple(_to_numpy(probs).shape)}"
        )
    return p


def _as_labels(labels: Any, n_samples: int, n_classes: int) -> np.ndarray:
    """Validates labels against B and C and returns them as int64 of shape (B,)."""
    y = _to_numpy(labels)
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if y.shape != (n_samples,):
        raise ValueError(f"labels have shape {y.shape}, expected ({n_samples},) to match probs")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64, copy=False)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, with 0 log 0 = 0."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def _confidence_and_correct(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence and correctness (bool) of the mean prediction."""
    p = _as_members(probs, "probs")
    y = _as_labels(labels, p.shape[1], p.shape[2])
    mean = p.mean(axis=0)
    return mean.max(axis=1), mean.argmax(axis=1) == y


def bin_index(conf: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """Calibration bin of each confidence: bin i covers ``(i / n_bins, (i + 1) / n_bins]``, the
    first also 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a value equal to an upper edge into the lower bin: (lo, hi].
    return np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)


def reliability_curve(probs: Any, labels: Any, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Reliability diagram data of the mean prediction (binning as in the module docstring).

    Args:
        probs: Member probabilities, (M, B, C) or (B, C).
        labels: Integer labels, (B,).
        n_bins: Number of equal-width confidence bins.

    Returns:
        Dict of length-``n_bins`` arrays: ``lower`` and ``upper`` bin edges,
        ``confidence`` (mean confidence) and ``accuracy`` (NaN for empty bins),
        and ``count``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    conf, correct = _confidence_and_correct(probs, labels)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = bin_index(conf, n_bins)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(idx, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {
        "lower": edges[:-1],
        "upper": edges[1:],
        "confidence": confidence,
        "accuracy": accuracy,
        "count": count,
    }


def risk_coverage_curve(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve with the mean prediction's max probability as confidence.

    Args:
        probs: Member probabilities, (M, B, C) or (B, C).
        labels: Integer labels, (B,).

    Returns:
        ``(coverage, risk)``, each of shape (B,): coverage k / B and the error
        rate of the k most confident samples, for k = 1..B (stable sort on ties).
    """
    conf, correct = _confidence_and_correct(probs, labels)
    order = np.argsort(-conf, kind="stable")
    k = np.arange(1, conf.size + 1)
    risk = np.cumsum(~correct[order]) / k
    return k / conf.size, risk


def logit_scores(logits: Any) -> dict[str, np.ndarray]:
    """Per-sample OOD scores from the mean of the member logits (higher = more likely OOD).

    Args:
        logits: Member logits, (M, B, C) or (B, C).

    Returns:
        Dict with ``energy`` (-logsumexp) and ``maxlogit`` (-max) arrays of shape (B,).
    """
    z = _as_members(logits, "logits").mean(axis=0)  # (B, C)
    top = z.max(axis=1)
    lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
    return {"energy": -lse, "maxlogit": -top}


def ood_scores(probs: Any, logits: Any = None) -> dict[str, np.ndarray]:
    """Per-sample OOD scores (higher = more likely OOD).

    Args:
        probs: Member probabilities, (M, B, C) or (B, C).
        logits: Optional member logits that ``probs`` are the softmax of, same shape.

    Returns:
        Dict with ``msp``, ``entropy`` and ``mi`` arrays of shape (B,), and with ``logits``
        also ``energy`` and ``maxlogit``.
    """
    p = _as_members(probs, "probs")
    mean = p.mean(axis=0)
    predictive = _entropy(mean)
    if p.shape[0] == 1:
        mi = np.zeros_like(predictive)
    else:
        mi = np.maximum(predictive - _entropy(p).mean(axis=0), 0.0)
    out = {"msp": -mean.max(axis=1), "entropy": predictive, "mi": mi}
    if logits is not None:
        if _to_numpy(logits).shape != _to_numpy(probs).shape:
            raise ValueError(f"logits have shape {_to_numpy(logits).shape}, probs {_to_numpy(probs).shape}")
        out.update(logit_scores(logits))
    return out


def _auroc(id_scores: np.ndarray, ood: np.ndarray) -> float:
    """AUROC with OOD positive, via midranks so ties count one half (Mann-Whitney U)."""
    scores = np.concatenate([id_scores, ood])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    midranks = (ends - (counts - 1) / 2.0)[inverse]
    n_id, n_ood = id_scores.size, ood.size
    u = midranks[n_id:].sum() - n_ood * (n_ood + 1) / 2.0
    return float(u / (n_id * n_ood))


def _aupr(id_scores: np.ndarray, ood: np.ndarray) -> float:
    """Average precision with OOD as the positive class; tied scores form one threshold."""
    scores = np.concatenate([id_scores, ood])
    is_ood = np.concatenate([np.zeros(id_scores.size), np.ones(ood.size)])
    order = np.argsort(-scores, kind="stable")
    scores, is_ood = scores[order], is_ood[order]
    # Evaluate only at the last position of each run of equal scores.
    last = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(is_ood)[last]
    predicted = np.arange(1, scores.size + 1)[last]
    precision = tp / predicted
    recall = tp / ood.size
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def _fpr95(id_scores: np.ndarray, ood: np.ndarray) -> float:
    """Fraction of OOD scores <= the smallest threshold keeping >= 95 % of ID scores."""
    k = (95 * id_scores.size + 99) // 100  # ceil(0.95 n) in exact integer arithmetic
    threshold = np.sort(id_scores)[k - 1]
    return float(np.mean(ood <= threshold))


def _disagreement(p: np.ndarray) -> float:
    """Mean fraction of member pairs whose argmax differs."""
    n_members, _, n_classes = p.shape
    if n_members == 1:
        return 0.0
    preds = p.argmax(axis=2)  # (M, B)
    votes = np.stack([(preds == c).sum(axis=0) for c in range(n_classes)])  # (C, B)
    agreeing = (votes * (votes - 1) / 2).sum(axis=0)
    pairs = n_members * (n_members - 1) / 2
    return float(np.mean(1.0 - agreeing / pairs))


def compute(probs: Any, labels: Any, ood_probs: Any = None, n_bins: int = 15,
            logits: Any = None, ood_logits: Any = None) -> dict[str, float]:
    """Computes all metrics (conventions in the module docstring).

    Args:
        probs: In-distribution member probabilities, (M, B, C) or (B, C).
        labels: In-distribution integer labels, (B,).
        ood_probs: Optional OOD member probabilities, (M, B_ood, C) or (B_ood, C),
            with the same M and C as ``probs``.
        n_bins: Number of ECE bins.
        logits, ood_logits: Optional member logits of the two sets (the softmax of each is
            ``probs`` / ``ood_probs``); with both, the logit scores are scored too.

    Returns:
        ``acc``, ``nll``, ``brier``, ``ece``, ``aurc``, ``disagreement`` and, with
        ``ood_probs``, ``auroc_<s>``, ``aupr_<s>``, ``fpr95_<s>`` for s in
        ``msp``, ``entropy``, ``mi`` (and ``energy``, ``maxlogit`` with both logits);
        all Python floats.

    Raises:
        ValueError: On NaN/inf inputs or inconsistent shapes.
    """
    p = _as_members(probs, "probs")
    y = _as_labels(labels, p.shape[1], p.shape[2])
    q = None
    if ood_probs is not None:
        q = _as_members(ood_probs, "ood_probs")
        if q.shape[2] != p.shape[2]:
            raise ValueError(f"ood_probs have {q.shape[2]} classes, probs have {p.shape[2]}")
        if q.shape[0] != p.shape[0]:
            raise ValueError(f"ood_probs have {q.shape[0]} members, probs have {p.shape[0]}")

    mean = p.mean(axis=0)
    rows = np.arange(y.size)
    onehot = np.zeros_like(mean)
    onehot[rows, y] = 1.0
    correct = mean.argmax(axis=1) == y
    rel = reliability_curve(p, y, n_bins)
    nonempty = rel["count"] > 0
    _, risk = risk_coverage_curve(p, y)

    out = {
        "acc": float(correct.mean()),
        "nll": float(-np.log(np.maximum(mean[rows, y], EPS)).mean()),
        "brier": float(((mean - onehot) ** 2).sum(axis=1).mean()),
        "ece": float(
            np.sum(
                rel["count"][nonempty]
                / y.size
                * np.abs(rel["accuracy"][nonempty] - rel["confidence"][nonempty])
            )
        ),
        "aurc": float(risk.mean()),
        "disagreement": _disagreement(p),
    }
    if q is not None:
        both = logits is not None and ood_logits is not None
        id_scores = ood_scores(p, logits if both else None)
        ood = ood_scores(q, ood_logits if both else None)
        for name in id_scores:
            out[f"auroc_{name}"] = _auroc(id_scores[name], ood[name])
            out[f"aupr_{name}"] = _aupr(id_scores[name], ood[name])
            out[f"fpr95_{name}"] = _fpr95(id_scores[name], ood[name])
    return out
