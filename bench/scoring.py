"""From member logits of every evaluated set to the flat metric dict of a result file.

Keys: ``test/<metric>`` (in-distribution), ``ood/<set>/<metric>`` (each OOD set against the
in-distribution test set, ``{auroc,aupr,fpr95}_<score>`` for every score of ``metrics.OOD_SCORES``), ``ood_near/…``, ``ood_far/…`` and ``ood_mean/…`` (averages over
sets), ``shift/<corruption>/<severity>/{acc,nll,ece}`` and their means ``shift/mean/…`` and
``shift/sev<k>/…``. Used by the runner and by ``rescore`` alike.

Validation metrics (``score_val``) are kept apart, under ``val/<metric>`` (the 'val' split) and
``ood_val/<metric>`` ('ood_val' against 'val', where the task has it): configurations are chosen
on them, never on the test split.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from . import catalogue, metrics

_ID_KEYS = tuple(m.name for m in catalogue.IN_DISTRIBUTION)
_SHIFT_KEYS = tuple(m.name for m in catalogue.SHIFTED)
VAL_SETS = ("val", "ood_val")  # held-out splits, scored by ``score_val`` only


def softmax(logits: np.ndarray) -> np.ndarray:
    """Member probabilities from ``(M, N, C)`` logits, in float64."""
    return torch.from_numpy(np.asarray(logits, dtype=np.float64)).softmax(-1).numpy()


def _mean_into(out: dict[str, float], prefix: str, rows: list[dict[str, float]]) -> None:
    if rows:
        for k in rows[0]:
            out[f"{prefix}/{k}"] = float(np.mean([r[k] for r in rows]))


def score(
    logits: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    near_ood: tuple[str, ...] = (),
    members: int | None = None,
) -> dict[str, float]:
    """Metrics of every set in ``logits`` (keys as in ``Task.eval_sets``). ``members`` keeps
    only the first that many members (ensemble-size sweeps)."""
    sl = slice(None) if members is None else slice(0, members)
    for name, x in logits.items():
        metrics.check_finite(x, f"logits of set {name!r}")
    logits = {k: v[sl] for k, v in logits.items()}
    probs = {k: softmax(v) for k, v in logits.items()}
    test = probs["test"]
    out = {f"test/{k}": v for k, v in metrics.compute(test, labels["test"]).items() if k in _ID_KEYS}
    near, far = [], []
    shift: dict[str, list[dict[str, float]]] = defaultdict(list)
    for name, p in probs.items():
        if name in VAL_SETS:
            continue
        kind, _, rest = name.partition("/")
        if kind == "ood":
            m = metrics.compute(test, labels["test"], ood_probs=p, logits=logits["test"], ood_logits=logits[name])
            m = {k: v for k, v in m.items() if k not in _ID_KEYS}
            out.update({f"ood/{rest}/{k}": v for k, v in m.items()})
            (near if rest in near_ood else far).append(m)
        elif kind == "shift":
            m = {k: v for k, v in metrics.compute(p, labels[name]).items() if k in _SHIFT_KEYS}
            out.update({f"shift/{rest}/{k}": v for k, v in m.items()})
            shift[f"sev{rest.rsplit('/', 1)[-1]}"].append(m)
    _mean_into(out, "ood_near", near)
    _mean_into(out, "ood_far", far)
    _mean_into(out, "ood_mean", near + far)
    _mean_into(out, "shift/mean", [m for rows in shift.values() for m in rows])
    for sev, rows in sorted(shift.items()):
        _mean_into(out, f"shift/{sev}", rows)
    return out


def score_val(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Metrics of the held-out sets: ``val/<metric>`` and, where 'ood_val' exists,
    ``ood_val/<metric>`` (its OOD detection against 'val'); empty without 'val' logits."""
    if "val" not in logits:
        return {}
    sets, labs = {"test": logits["val"]}, {"test": labels["val"]}
    if "ood_val" in logits:
        sets["ood/ood_val"] = logits["ood_val"]
    m = score(sets, labs)
    out = {f"val/{k.removeprefix('test/')}": v for k, v in m.items() if k.startswith("test/")}
    out.update({f"ood_val/{k.removeprefix('ood/ood_val/')}": v for k, v in m.items() if k.startswith("ood/ood_val/")})
    return out
