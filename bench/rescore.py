"""Recompute the metrics of finished jobs from their saved logits, and ensemble-size sweeps.

For every ``ok`` result under ``<results>/runs`` (or one suite), the member logits saved beside
it (``results.logits_location``) are scored again with ``scoring.score`` and the result file is
rewritten atomically with the new ``metrics`` (every OOD score of ``metrics.OOD_SCORES``, so older
results gain the newer scores), the temperature-scaled metrics (``calibrated``, see
``bench.calibration``; results whose logits hold no 'val' split get the reason instead) and a
``sweep``: the headline metrics of the ensemble of its first M members, ``{"1": {...}, "2": {...},
...}`` for M = 1 .. min(K, ``max_members``). The runner scores the same float16-rounded logits it
saves, so on unchanged code the recomputed metrics equal the stored ones exactly.

Results whose logits stay in the cache also get the per-sample scores file that the paired
intervals read (``intervals.scores_file``), so that the leaderboard needs no cache; one written by
older code is rewritten with what it lacks (the newer OOD scores, the temperature-scaled arrays).

Nothing is written until every file has been scored: damaged logits (NaN, unreadable) stop the
command with the file and set named, and no result file is changed. Results whose logits are
absent are reported and left as they are.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from . import calibration, catalogue, intervals, results, scoring


def _score(path: Path, logits_path: Path, obj: dict, max_members: int | None) -> dict:
    try:
        logits, labels = results.load_logits(logits_path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{logits_path}: unreadable logits ({type(e).__name__}: {e})") from None
    if "test" not in logits or "test" not in labels:
        raise ValueError(f"{logits_path}: no logits of set 'test'")
    near = tuple(obj.get("near_ood", []))
    try:
        metric_values = scoring.score(logits, labels, near_ood=near)
        k = logits["test"].shape[0]
        top = k if max_members is None else min(k, max_members)
        sweep = {}
        for m in range(1, top + 1):
            s = metric_values if m == k else scoring.score(logits, labels, near_ood=near, members=m)
            sweep[str(m)] = {key: s[key] for key in catalogue.SWEPT if key in s}
        calibrated = calibration.calibrate(logits, labels, near)
    except ValueError as e:
        raise ValueError(f"{logits_path}: {e}") from None
    out = {**obj, "metrics": metric_values, "sweep": sweep, "calibrated": calibrated}
    if "val" in logits:
        out["val_metrics"] = scoring.score_val(logits, labels)
    results.validate(out, str(path))
    return out


def rescore(root: Path, suite: str | None = None, max_members: int | None = None, log=print) -> int:
    """Rescore every finished job under ``root/runs`` (only ``suite`` when given); returns the
    number of result files rewritten. Raises ``ValueError`` (``ResultError`` for a bad result
    file) before anything is written."""
    root = Path(root)
    if max_members is not None and (isinstance(max_members, bool) or not isinstance(max_members, int)
                                    or max_members < 1):
        raise ValueError(f"max_members must be an integer >= 1, got {max_members!r}")
    base = root / "runs" / suite if suite else root / "runs"
    if not base.is_dir():
        raise ValueError(f"no results under {base}")
    updates, scores = [], []
    for path in sorted(base.rglob("*.json")):
        obj = results.read(path)  # raises ResultError naming the file
        if obj["status"] != "ok":
            continue
        logits_path = results.logits_location(root, obj["logits"])
        if not logits_path.is_file():
            log(f"{path}: logits {logits_path} are absent; left unchanged")
            continue
        new = _score(path, logits_path, obj, max_members)
        if obj["logits"].startswith("cache:"):
            scores.append((path, logits_path, new))
        changed = sorted(k for k in set(new["metrics"]) | set(obj["metrics"])
                         if new["metrics"].get(k) != obj["metrics"].get(k))
        if changed:
            log(f"{path}: {len(changed)} metric(s) changed, e.g. {changed[0]}")
        updates.append((path, new))
    for path, obj in updates:
        results.write(path, obj)
    for path, logits_path, obj in scores:
        logits, labels = results.load_logits(logits_path)
        if intervals.write_scores(path, logits, labels, tuple(obj.get("near_ood", [])), calibration.temperature(obj)):
            log(f"{intervals.scores_file(path)}: per-sample scores written (its logits stay in the cache)")
    return len(updates)
