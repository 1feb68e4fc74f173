"""Paired differences between two methods with 95 % confidence intervals.

The difference of a metric between methods a and b (a - b) on one task is estimated from the
seeds both were run with, on the same test samples. With d_s the difference on seed s (s = 1..n),
the reported difference is D = mean_s d_s. Its interval combines two sources of noise:

1. **Test samples: a paired bootstrap.** Every evaluated set (the in-distribution test set and
   each OOD set) is resampled B times with replacement at its own size. Resample b reweights the
   same sample positions for both methods (the pairing) and for every seed (the seeds share
   their test sets); OOD metrics resample the test set and each OOD set independently. This
   gives replicates d_s^(b) for every seed.
2. **Training: the seed spread.** Write d_s = delta + e_s + c: c is the part of the test-sample
   noise common to all seeds (it does not average out over seeds, and the seed spread cannot see
   it), e_s the rest (training variability and the test-sample noise that differs between
   seeds). S^2, the variance of d_s over the n seeds, estimates var(e_s) with n - 1 degrees of
   freedom; C, the mean bootstrap covariance of d_s^(b) and d_t^(b) over pairs of seeds s != t,
   estimates var(c) (clipped at 0).

The interval is D +- sqrt(t(0.975, n - 1)^2 S^2 / n + z(0.975)^2 C). With one seed it is
D +- z(0.975) sd_b(d^(b)), which covers test-sample noise only (``kind`` says so). Where logits
are absent, ``seeds_only`` gives D +- t(0.975, n - 1) S / sqrt(n) from the stored metrics, and no
interval for one seed. On simulated data with a known difference and 3 seeds the interval covers
it 95-99 % of the time (``tests/test_intervals.py``): conservative where test-sample noise
differs between seeds, since that part is counted with the t quantile of n - 1 degrees of
freedom.

``Evidence`` applies this to a results folder: each job's replicates from its saved logits (or
the per-sample scores committed for logits kept in a cache) and the difference of two entries'
jobs paired by seed, with the seed-spread interval and a note where logits are absent. So the
numbers are the same on every machine.

Metrics from logits: ``test/{acc,nll,brier,ece}`` and ``<group>/{auroc,fpr95}_msp`` for the
groups ``ood_near``, ``ood_far``, ``ood_mean`` (the mean over the group's sets) and ``ood/<set>``,
as defined in ``bench/metrics.py``; replicate 0 (unit weights) equals its values. ``Scores`` keep
every OOD score kind of ``metrics.OOD_SCORES`` per sample (so do the scores files, with the
temperature-scaled quantities of ``bench.calibration`` under the prefix ``ts/``); the replicates
use the max-probability score, the one the claims rest on.
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from . import calibration, metrics, results
from .catalogue import DEFAULT_SCORE
from .scoring import VAL_SETS, softmax

N_BOOT = 1000
LEVEL = 0.95
OOD_KEYS = (f"auroc_{DEFAULT_SCORE}", f"fpr95_{DEFAULT_SCORE}")  # ``Scores.msp`` holds that score


@dataclass(frozen=True)
class Interval:
    """A difference (a - b), its 95 % interval and how the interval was obtained."""

    diff: float
    lo: float
    hi: float
    seeds: int
    kind: str  # "bootstrap + seeds", "bootstrap, one seed", "seeds only" or "none"


@dataclass(frozen=True)
class Scores:
    """Per-sample quantities of one method on one seed, from which every metric here follows."""

    acc: np.ndarray  # (N,) 1.0 where the top-1 class of the mean prediction is right
    conf: np.ndarray  # (N,) top-label confidence
    nll: np.ndarray  # (N,) -log p[label], clamped at metrics.EPS
    brier: np.ndarray  # (N,) squared error to the one-hot label
    bins: np.ndarray  # (N,) ECE bin of each sample
    ood: dict[str, dict[str, np.ndarray]]  # OOD score kind -> set ("test" included) -> (N_set,) scores
    near: tuple[str, ...]  # names of the near-OOD sets

    @property
    def msp(self) -> dict[str, np.ndarray]:
        """The max-probability OOD score per set (the one the claims use)."""
        return self.ood["msp"]


def scores(logits: dict[str, np.ndarray], labels: np.ndarray, near: tuple[str, ...] = ()) -> Scores:
    """``Scores`` from member logits ``{"test": (M, N, C), "ood/<set>": ...}`` and test labels; every
    OOD score kind of ``metrics.OOD_SCORES``."""
    scored = {k.removeprefix("ood/"): v for k, v in logits.items() if k == "test" or k.startswith("ood/")}
    probs = {k: softmax(v) for k, v in scored.items()}
    per_set = {k: metrics.ood_scores(probs[k], v) for k, v in scored.items()}
    p = probs["test"].mean(0)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(y.size)
    onehot = np.zeros_like(p)
    onehot[rows, y] = 1.0
    conf = p.max(1)
    return Scores(
        acc=(p.argmax(1) == y).astype(np.float64), conf=conf,
        nll=-np.log(np.maximum(p[rows, y], metrics.EPS)), brier=((p - onehot) ** 2).sum(1),
        bins=metrics.bin_index(conf), ood={kind: {k: v[kind] for k, v in per_set.items()} for kind in metrics.OOD_SCORES},
        near=tuple(near),
    )


def signature(logits: dict[str, np.ndarray], test_labels: np.ndarray) -> tuple:
    """What two jobs must share to be paired: the test labels and the size of every scored set
    (the held-out validation splits, which older results lack, do not enter the scores)."""
    return (zlib.crc32(np.asarray(test_labels, dtype=np.int64).tobytes()),
            _scored_sizes((k, v.shape[1]) for k, v in logits.items()))


def _scored_sizes(sizes) -> tuple:
    return tuple(sorted((k, n) for k, n in sizes if k not in VAL_SETS))


CALIBRATED = "ts/"  # prefix of the temperature-scaled arrays in a scores file


class NoCalibratedScores(KeyError):
    """A scores file written without temperature-scaled arrays (no fitted temperature, or older)."""


_DTYPES = {"acc": np.uint8, "conf": np.float32, "nll": np.float32, "brier": np.float32, "bins": np.uint8}


def _arrays(s: Scores, prefix: str = "") -> dict[str, np.ndarray]:
    out = {prefix + k: getattr(s, k).astype(t) for k, t in _DTYPES.items()}
    out.update({f"{prefix}{kind}|{k}": v.astype(np.float32) for kind, sets in s.ood.items() for k, v in sets.items()})
    return out


def score_arrays(s: Scores, sig: tuple, calibrated: Scores | None = None,
                 temperature: float | None = None) -> dict[str, np.ndarray]:
    """The arrays of a scores file: ``s`` and its pairing signature, and, for a result with a fitted
    temperature, the same quantities of its temperature-scaled logits under the prefix ``ts/``."""
    arrays = {**_arrays(s), "near": np.array(s.near, dtype=str), "crc": np.array(sig[0], dtype=np.int64),
              "sizes": np.array([n for _, n in sig[1]], dtype=np.int64), "sets": np.array([k for k, _ in sig[1]], dtype=str)}
    if calibrated is not None:
        arrays.update(_arrays(calibrated, CALIBRATED))
        arrays[CALIBRATED + "temperature"] = np.array(temperature, dtype=np.float64)
    return arrays


def save_scores(path: Path, s: Scores, sig: tuple, calibrated: Scores | None = None,
                temperature: float | None = None) -> None:
    """Write ``score_arrays``: a few bytes per sample, small enough to commit where the member
    logits are not (``load_scores`` reads it back)."""
    write_arrays(path, score_arrays(s, sig, calibrated, temperature))


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    results.write_atomic(path, buf.getvalue())


def scores_file(result: str | Path) -> Path:
    """Where the per-sample scores of a result whose logits stay in the cache are committed."""
    return Path(result).with_suffix(".scores.npz")


def write_scores(path: Path, logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], near: tuple,
                 temperature: float | None = None) -> bool:
    """Commit what the paired bootstrap needs of the result at ``path`` whose logits are too large
    to commit (``scores_file`` beside it), with the temperature-scaled quantities where the result
    has a fitted ``temperature``. Writes only where the file is absent or holds other arrays;
    returns whether it wrote."""
    y, near = labels["test"], tuple(near)
    cal = None if temperature is None else scores(calibration.scale(logits, temperature), y, near)
    new = score_arrays(scores(logits, y, near), signature(logits, y), cal, temperature)
    target = scores_file(path)
    if target.is_file():
        try:
            with np.load(target) as z:
                if set(z.files) == set(new) and all(np.array_equal(z[k], v) for k, v in new.items()):
                    return False
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            pass  # a damaged file is replaced
    write_arrays(target, new)
    return True


def load_scores(path: Path, calibrated: bool = False) -> tuple[Scores, tuple]:
    """``(Scores, signature)`` from a file of ``save_scores``; with ``calibrated``, those of the
    temperature-scaled logits (``NoCalibratedScores`` where the file holds none). Score kinds the file
    lacks (files written before they existed hold only ``msp``) are absent from ``ood``."""
    pre = CALIBRATED if calibrated else ""
    with np.load(path) as z:
        if calibrated and pre + "acc" not in z.files:
            raise NoCalibratedScores(f"{path} holds no temperature-scaled scores")
        ood: dict[str, dict[str, np.ndarray]] = {}
        for key in z.files:
            kind, bar, name = key.removeprefix(pre).partition("|")
            if bar and key.startswith(pre) and (calibrated or not key.startswith(CALIBRATED)):
                ood.setdefault(kind, {})[name] = z[key].astype(np.float64)
        s = Scores(**{k: z[pre + k].astype(np.int64 if k == "bins" else np.float64) for k in _DTYPES},
                   ood=ood, near=tuple(str(n) for n in z["near"]))
        sig = (int(z["crc"]), _scored_sizes(zip((str(k) for k in z["sets"]), (int(n) for n in z["sizes"]))))
    return s, sig


class Resampler:
    """Bootstrap counts per evaluated set, drawn once per (set, size) and shared by every method and
    seed (the pairing). Row 0 is all ones: the point estimate. Deterministic on every machine."""

    def __init__(self, n_boot: int = N_BOOT) -> None:
        self.n_boot = n_boot
        self._drawn: dict[tuple[str, int], np.ndarray] = {}

    def counts(self, name: str, n: int) -> np.ndarray:
        """(n_boot + 1, n) integer counts, each row summing to n."""
        if (name, n) not in self._drawn:
            rng = np.random.default_rng(zlib.crc32(f"{name}|{n}".encode()))
            draws = rng.multinomial(n, np.full(n, 1.0 / n), size=self.n_boot)
            self._drawn[(name, n)] = np.vstack([np.ones((1, n), dtype=np.int64), draws])
        return self._drawn[(name, n)]


def _ece(s: Scores, w: np.ndarray) -> np.ndarray:
    """ECE per row of weights: sum over bins of |weighted sum of (correct - confidence)| / N."""
    gap = np.zeros((s.acc.size, int(s.bins.max()) + 1))
    gap[np.arange(s.acc.size), s.bins] = s.acc - s.conf
    return np.abs(w @ gap).sum(1) / w.sum(1)


class _Ranked:
    """The in-distribution scores in ascending order, with cumulative bootstrap weights: shared by
    every OOD set's AUROC and FPR95."""

    def __init__(self, scores: np.ndarray, w: np.ndarray) -> None:
        order = np.argsort(scores, kind="stable")
        self.sorted, self.n = scores[order], scores.size
        self.cum = np.concatenate([np.zeros((w.shape[0], 1), np.int64), np.cumsum(w[:, order], axis=1)], axis=1)

    def auroc(self, ood: np.ndarray, wood: np.ndarray) -> np.ndarray:
        """Weighted Mann-Whitney AUROC (OOD positive, ties one half) per row of weights."""
        lo, hi = np.searchsorted(self.sorted, ood, "left"), np.searchsorted(self.sorted, ood, "right")
        below = self.cum[:, lo] + 0.5 * (self.cum[:, hi] - self.cum[:, lo])  # (B, N_ood) ID weight below
        return (below * wood).sum(1) / (self.cum[:, -1] * wood.sum(1))

    def fpr95(self, ood: np.ndarray, wood: np.ndarray) -> np.ndarray:
        """Weighted FPR at 95 % TPR, with the threshold rule of ``metrics`` applied to the resample."""
        k = (95 * self.n + 99) // 100
        threshold = self.sorted[(self.cum[:, 1:] >= k).argmax(1)]
        order = np.argsort(ood, kind="stable")
        ocum = np.concatenate([np.zeros((wood.shape[0], 1), np.int64), np.cumsum(wood[:, order], axis=1)], axis=1)
        pos = np.searchsorted(ood[order], threshold, "right")
        return ocum[np.arange(wood.shape[0]), pos] / ocum[:, -1]


def replicates(s: Scores, rs: Resampler) -> dict[str, np.ndarray]:
    """``{metric key: (n_boot + 1,) values}`` on the bootstrap resamples (keys as in the module
    docstring; OOD groups only where they have a set); entry 0 is the metric itself."""
    w = rs.counts("test", s.acc.size)
    total = w.sum(1)
    out = {f"test/{k}": (w @ getattr(s, k)) / total for k in ("acc", "nll", "brier")}
    out["test/ece"] = _ece(s, w)
    ranked = _Ranked(s.msp["test"], w)
    sets = [k for k in s.msp if k != "test"]
    for k in sets:
        wood = rs.counts(f"ood/{k}", s.msp[k].size)
        out[f"ood/{k}/{OOD_KEYS[0]}"] = ranked.auroc(s.msp[k], wood)
        out[f"ood/{k}/{OOD_KEYS[1]}"] = ranked.fpr95(s.msp[k], wood)
    groups = {"ood_near": [k for k in sets if k in s.near], "ood_far": [k for k in sets if k not in s.near],
              "ood_mean": sets}
    for g, members in groups.items():
        for name in OOD_KEYS if members else ():
            out[f"{g}/{name}"] = np.mean([out[f"ood/{k}/{name}"] for k in members], axis=0)
    return out


def combine(a: list[np.ndarray], b: list[np.ndarray], level: float = LEVEL) -> Interval:
    """The interval of the module docstring from per-seed replicates (entry 0: the estimate) of
    methods a and b, seed s of one paired with seed s of the other."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same number (>= 1) of seeds for both methods, got {len(a)} and {len(b)}")
    d = np.stack(a) - np.stack(b)  # (n, B + 1)
    n = d.shape[0]
    est, reps = d[:, 0], d[:, 1:]
    diff = float(est.mean())
    if n == 1:
        half = stats.norm.ppf(0.5 + level / 2) * float(np.std(reps[0], ddof=1))
        return Interval(diff, diff - half, diff + half, 1, "bootstrap, one seed")
    s2 = float(np.var(est, ddof=1))
    cov = np.cov(reps)  # (n, n) bootstrap covariance of the seeds' differences
    common = max(0.0, float((cov.sum() - np.trace(cov)) / (n * (n - 1))))
    half = math.sqrt(stats.t.ppf(0.5 + level / 2, n - 1) ** 2 * s2 / n + stats.norm.ppf(0.5 + level / 2) ** 2 * common)
    return Interval(diff, diff - half, diff + half, n, "bootstrap + seeds")


def seeds_only(a: list[float], b: list[float], level: float = LEVEL) -> Interval:
    """Mean paired difference with a t interval over seeds; no interval (NaN) for one seed."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need the same number (>= 1) of seeds for both methods, got {len(a)} and {len(b)}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff, n = float(d.mean()), d.size
    if n == 1:
        return Interval(diff, math.nan, math.nan, 1, "none")
    half = stats.t.ppf(0.5 + level / 2, n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    return Interval(diff, diff - half, diff + half, n, "seeds only")


class Evidence:
    """Bootstrap replicates of each job's metrics from its saved logits under ``root`` (None: read
    no logits), computed once per job. A job's calibrated variant (``calibration.calibrated_result``,
    marked by ``post_hoc``) is scored from its temperature-scaled logits or scores."""

    def __init__(self, root: Path | None, n_boot: int = N_BOOT) -> None:
        self.root = None if root is None else Path(root)
        self.resampler = Resampler(n_boot)
        self._done: dict[tuple[str, float | None], tuple[dict[str, np.ndarray], tuple] | str] = {}

    def replicates(self, job: dict) -> tuple[dict[str, np.ndarray], tuple] | str:
        """(replicates by metric key, signature of the evaluated samples), or why there are none."""
        key = (job["_path"], job.get("post_hoc", {}).get("temperature"))
        if key not in self._done:
            self._done[key] = self._compute(job, key[1])
        return self._done[key]

    def _compute(self, job: dict, temperature: float | None) -> tuple[dict[str, np.ndarray], tuple] | str:
        if self.root is None:
            return "logits not read"
        cached = job["logits"].startswith("cache:")  # then its per-sample scores are committed instead
        path = self.root / scores_file(job["_path"]) if cached else results.logits_location(self.root,
                                                                                                        job["logits"])
        if not path.is_file():
            return "logits kept only in the local cache" if cached else "logits file absent"
        try:
            if cached:
                s, sig = load_scores(path, calibrated=temperature is not None)
            else:
                logits, labels = results.load_logits(path)
                scored = logits if temperature is None else calibration.scale(logits, temperature)
                s, sig = scores(scored, labels["test"], tuple(job.get("near_ood", []))), signature(logits, labels["test"])
        except NoCalibratedScores:
            return "scores file without temperature-scaled scores"
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            what = "scores" if cached else "logits"
            raise results.ResultError(f"{path}: unreadable {what} ({type(e).__name__}: {e})") from None
        return replicates(s, self.resampler), sig

    def difference(self, a: list[dict], b: list[dict], key: str) -> dict[str, Any] | None:
        """``key`` of jobs ``a`` minus jobs ``b``, paired by seed: diff, lo, hi, seeds, interval (its
        kind) and note (why the interval is not the full one, or seeds were left out); None when no
        seed pairs."""
        by_a, by_b = {j["seed"]: j for j in a}, {j["seed"]: j for j in b}
        notes, seeds = [], []
        for seed in sorted(set(by_a) & set(by_b)):
            ja, jb = by_a[seed], by_b[seed]
            if key not in ja["metrics"] or key not in jb["metrics"]:
                continue
            if ja["task_config"] != jb["task_config"]:
                notes.append(f"seed {seed} left out: different task configurations")
                continue
            seeds.append(seed)
        if not seeds:
            return None
        reps = {(s, side): self.replicates(j) for s in seeds for side, j in (("a", by_a[s]), ("b", by_b[s]))}
        absent: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        for (s, side), r in reps.items():
            if isinstance(r, str):
                absent[r][(by_a if side == "a" else by_b)[s]["method"]].append(s)
        if absent:
            notes.append("seed spread only: " + "; ".join(
                reason + ": " + ", ".join(f"`{e}` seed{'s' if len(ss) > 1 else ''} {', '.join(map(str, sorted(ss)))}"
                                          for e, ss in sorted(found.items()))
                for reason, found in sorted(absent.items())))
            iv = seeds_only([by_a[s]["metrics"][key] for s in seeds], [by_b[s]["metrics"][key] for s in seeds])
            return _fields(iv, notes)
        paired = [s for s in seeds if reps[(s, "a")][1] == reps[(s, "b")][1]]
        notes += [f"seed {s} left out: different test samples" for s in seeds if s not in paired]
        if not paired:
            return {**no_difference(""), "note": "; ".join(notes)}
        return _fields(combine([reps[(s, "a")][0][key] for s in paired],
                                         [reps[(s, "b")][0][key] for s in paired]), notes)


def _fields(iv: Interval, notes: list[str]) -> dict[str, Any]:
    return {"diff": iv.diff, "lo": iv.lo, "hi": iv.hi, "seeds": iv.seeds, "interval": iv.kind, "note": "; ".join(notes)}


def no_difference(note: str) -> dict[str, Any]:
    """The fields of a comparison that could not be made, and why."""
    return _fields(Interval(math.nan, math.nan, math.nan, 0, "none"), [note] if note else [])
