"""Post-hoc temperature scaling of saved member logits (Guo et al., ICML 2017), for every entry.

One temperature T > 0 per result (entry, task, seed) is fitted on the validation split's logits
(``val``, saved beside every result since validation metrics exist). All members share it: each
member's logits are divided by T before the softmax, and the prediction is the mean of the
scaled members' softmaxes, as for the raw logits. T minimises the validation NLL of that averaged
prediction: a bounded 1-D search (Brent) over log T in [``T_MIN``, ``T_MAX``], robust for
ensembles, whose NLL need not be convex in 1 / T. Where the validation split is classified
without error by wide margins, its NLL keeps falling as T -> 0 and the fit stops at ``T_MIN``;
the result then says so (``at_bound``): such a temperature sharpens the test predictions too. For one member it is the fit of
torch-uncertainty's ``TemperatureScaler`` (LBFGS on 1 / T, unbounded), which cannot average
scaled members; ``tests/test_calibration.py`` checks the two agree on single-model logits and
that a known temperature is recovered.

The calibrated metrics are computed from the same float16-rounded logits as the raw ones (by the
runner when a job writes its result, and by ``rescore`` for existing results), with no
retraining, and stored in the result file beside ``metrics`` as the field ``calibrated``:

    {"kind": "temperature", "fit": "val NLL",
     "temperature": 1.37,                 # T (logits are divided by it)
     "at_bound": false,                   # T stopped at T_MIN or T_MAX
     "val_nll": [0.52, 0.47],             # validation NLL before and after scaling
     "metrics": {...}}                    # the keys of ``metrics``, from the scaled logits

A result whose logits hold no ``val`` split gets ``{"kind": "temperature", "reason": "..."}``
instead. Scaling leaves a single model's predictions (hence accuracy) unchanged, but can change
an ensemble's (the mean of scaled softmaxes can pick another class). ``calibrated_result`` turns a
result into its calibrated variant, a result-like dict named ``<entry> +TS``, for tables that show
it as a row of its own. The per-sample scores files (``intervals.score_arrays``) hold the scaled
quantities too, so that such a row gets paired intervals without logits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize
from scipy.special import logsumexp

from . import scoring

KIND = "temperature"
FIT = "val NLL"
SUFFIX = " +TS"  # appended to the entry name of a calibrated variant
T_MIN, T_MAX = 0.05, 20.0


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """NLL of the mean of the members' softmaxes of ``logits / temperature`` (``(M, N, C)``)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    y = np.asarray(labels, dtype=np.int64)
    log_p = np.take_along_axis(z, y[None, :, None], axis=2)[..., 0] - logsumexp(z, axis=2)  # (M, N)
    return float(-(logsumexp(log_p, axis=0) - math.log(z.shape[0])).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising ``nll`` on ``(logits, labels)``, within [``T_MIN``, ``T_MAX``]."""
    z = np.asarray(logits, dtype=np.float64)
    z = z[None] if z.ndim == 2 else z
    if z.ndim != 3 or z.shape[1] != np.asarray(labels).shape[0] or z.shape[1] == 0:
        raise ValueError(f"need logits (M, N, C) and N labels, got {z.shape} and {np.asarray(labels).shape}")
    res = optimize.minimize_scalar(lambda t: nll(z, labels, math.exp(t)), bounds=(math.log(T_MIN), math.log(T_MAX)),
                                   method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def scale(logits: dict[str, np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """Every set's member logits divided by ``temperature``."""
    return {k: v / np.float32(temperature) for k, v in logits.items()}


def calibrate(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], near_ood: tuple[str, ...] = ()
              ) -> dict[str, Any]:
    """The ``calibrated`` field of a result from its member logits of every set (module docstring)."""
    if "val" not in logits or "val" not in labels:
        return {"kind": KIND, "reason": "the saved logits hold no 'val' split to fit a temperature on"}
    t = fit_temperature(logits["val"], labels["val"])
    scaled = scale(logits, t)
    at_bound = min(abs(math.log(t / T_MIN)), abs(math.log(t / T_MAX))) < 1e-3
    return {"kind": KIND, "fit": FIT, "temperature": t, "at_bound": at_bound,
            "val_nll": [nll(logits["val"], labels["val"], 1.0), nll(scaled["val"], labels["val"], 1.0)],
            "metrics": scoring.score(scaled, labels, tuple(near_ood))}


def temperature(obj: dict[str, Any]) -> float | None:
    """The fitted temperature of a result, or None where it has none."""
    return obj.get("calibrated", {}).get("temperature")


def calibrated_result(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The calibrated variant of a result as a result-like dict, or None where it has no fitted
    temperature: the entry name (``method``) suffixed ``' +TS'``, ``metrics`` the calibrated
    metrics, and ``post_hoc`` = ``{"kind", "fit", "temperature"}`` marking it as post-processed
    (``params`` stay those of the trained entry; its cost is the entry's, as a division is free).
    Validation metrics and sweeps, which belong to the raw predictions, are left out."""
    cal = obj.get("calibrated", {})
    if "metrics" not in cal:
        return None
    rest = {k: v for k, v in obj.items() if k not in ("calibrated", "val_metrics", "sweep")}
    return {**rest, "method": obj["method"] + SUFFIX, "metrics": dict(cal["metrics"]),
            "post_hoc": {"kind": cal["kind"], "fit": cal["fit"], "temperature": cal["temperature"]}}
