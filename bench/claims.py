"""The Hydra Ensembles paper's claims and the roles the report reads, as data.

This is the one place in ``bench/`` that names methods. A result's role comes from its registered
method and hyper-parameters (``params`` in the result file, missing keys taken as the registry's
defaults), never from the suite entry's name, so a renamed entry keeps its role:

* ``single``: the reference model, registry ``single`` with default hyper-parameters;
* ``single-ft``: registry ``single`` given extra fine-tuning (``extra_finetune_frac`` > 0), the
  single model with Hydra's extra training;
* ``single +TS``: the ``single`` role's predictions with a temperature fitted on validation data
  (``bench.calibration``; a post-processed variant of the result, marked ``post_hoc``), what a
  calibration claim must beat for free;
* ``deep_ensembles``: registry ``deep_ensembles`` with default hyper-parameters;
* ``hydra``: registry ``hydra``, any hyper-parameters; each entry is its own variant, labelled by
  its head-scoring criterion (Circ or Taylor) and the hyper-parameters it changes.

A claim compares Hydra with reference roles on one metric. Each comparison is a ``Test`` with a
verdict rule on the 95 % interval of the difference, oriented so that positive means Hydra is
better (``verdict``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .. import methods
from . import catalogue

PAPER = "Hydra Ensembles (arXiv 2510.18358)"

SUITE_RANK = ("paper", "gpu", "standard", "quick")  # most authoritative first
RECORD_SUITE = "standard"  # the suite of record: the leaderboard's headline shows its tasks
CHECK_SUITE = "quick"  # a pipeline check: its claims count only for tasks no other suite ran


@dataclass(frozen=True)
class Role:
    name: str
    label: str
    method: str  # registry name
    match: Callable[[dict[str, Any], dict[str, Any]], bool]  # (params, registry defaults) -> plays it
    description: str  # what plays it, for the report's prose
    post_hoc: str | None = None  # the post-processing a result must carry (None: its raw predictions)


ROLES = (
    Role("single", "`single`", "single", lambda p, d: p == d, "the reference model, with default hyper-parameters"),
    Role("single-ft", "`single-ft`", "single", lambda p, d: p["extra_finetune_frac"] > 0,
         "the single model given extra fine-tuning"),
    Role("single +TS", "`single +TS`", "single", lambda p, d: p == d,
         "the reference model with one temperature fitted on the validation split", "temperature"),
    # the default ensemble size; the members' learning rate may be tuned
    Role("deep_ensembles", "Deep Ensembles", "deep_ensembles", lambda p, d: p["num_members"] == d["num_members"],
         "Deep Ensembles of the default size"),
    Role("hydra", "Hydra", "hydra", lambda p, d: True, "any Hydra entry, each its own row"),
)
REFERENCE = "single"  # the model every ratio and "difference to single" is taken against
SUBJECT = "hydra"  # the role whose claims are checked
REFERENCES = ("deep_ensembles", "single", "single-ft", "single +TS")  # in the claims table's column order
FINETUNED = "single-ft"  # the reference that isolates the extra training
ENSEMBLE = "deep_ensembles"  # the ensemble whose inference cost Hydra's is set against

VARIANT_PARAM = "criterion"
VARIANTS = {"circuit": "Hydra (Circ)", "taylor": "Hydra (Taylor)"}
HEADLINE_VARIANT = "circuit"  # the paper's headline numbers are for Hydra (Circ)
DEFAULT_RECIPE = "default recipe"  # a Hydra entry that changes nothing but the criterion


@dataclass(frozen=True)
class Test:
    """One comparison of Hydra with one reference: "better", "at least as good" (non-inferior by
    at most ``margin``) or "on par" (equivalent within +- ``margin``)."""

    kind: str
    margin: float = 0.0

    def describe(self) -> str:
        return self.kind if self.kind == "better" else f"{self.kind} (margin {self.margin:g})"


def verdict(test: Test, diff: float, lo: float, hi: float, higher: bool, seeds: int) -> str:
    """"holds", "does not hold" or "inconclusive" from the 95 % interval [lo, hi] of Hydra minus
    the reference. With g the interval turned so that positive is better for Hydra:

    * better: holds if g > 0 throughout; does not hold if g < 0 throughout;
    * at least as good: holds if g > -margin throughout; does not hold if g < -margin throughout;
    * on par: holds if the interval lies inside (-margin, +margin); does not hold if it lies
      wholly outside [-margin, +margin], "does not hold (Hydra better)" when above +margin;
    * otherwise, without an interval, or with fewer than 2 paired seeds (training variability
      unmeasured): inconclusive.
    """
    if seeds < 2 or math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    glo, ghi = (lo, hi) if higher else (-hi, -lo)
    m = test.margin
    if test.kind == "better":
        ok, bad = glo > 0, ghi < 0
    elif test.kind == "at least as good":
        ok, bad = glo > -m, ghi < -m
    elif test.kind == "on par":
        ok, bad = -m < glo and ghi < m, glo > m or ghi < -m
    else:
        raise ValueError(f"unknown test kind {test.kind!r}")
    if bad and test.kind == "on par" and glo > m:  # not equivalent, but in Hydra's favour
        return "does not hold (Hydra better)"
    return "holds" if ok else "does not hold" if bad else "inconclusive"


@dataclass(frozen=True)
class Claim:
    name: str
    metric: str  # result metric key
    tests: dict[str, Test]  # reference role -> comparison

    @property
    def higher(self) -> bool:
        """Whether higher is better, from the metric catalogue."""
        return bool(catalogue.higher(self.metric))


def _uq(margin: float) -> dict[str, Test]:
    """Matches or surpasses Deep Ensembles (the paper's words) and improves on the single model,
    also once that model is given Hydra's extra training or a fitted temperature."""
    return {"deep_ensembles": Test("at least as good", margin), **dict.fromkeys(REFERENCES[1:], Test("better"))}


CLAIMS = (
    Claim("Accuracy", "test/acc", {"deep_ensembles": Test("at least as good", 0.01),
                                   **dict.fromkeys(REFERENCES[1:], Test("on par", 0.01))}),
    Claim("NLL", "test/nll", _uq(0.02)),
    Claim("ECE", "test/ece", {r: Test("at least as good", 0.01) for r in REFERENCES}),
    Claim("Brier", "test/brier", _uq(0.01)),
    Claim("AUROC near-OOD", "ood_near/auroc_msp", _uq(0.01)),
    Claim("AUROC far-OOD", "ood_far/auroc_msp", _uq(0.01)),
    Claim("FPR95 near-OOD", "ood_near/fpr95_msp", _uq(0.02)),
    Claim("FPR95 far-OOD", "ood_far/fpr95_msp", _uq(0.02)),
)
SOURCE = ("the paper states that Hydra matches or surpasses Deep Ensembles in UQ performance with inference "
          "close to a single network; as an ensemble built from the single model, it should also improve on "
          "that model, including when the single model is given the same extra training (`single-ft`) or a "
          "temperature fitted on validation data (`single +TS`, free at inference)")

METHOD = "README, 'What the leaderboard reports'"  # where intervals, verdicts and cost are explained once


def how_checked() -> str:
    """How the claims are checked, in words generated from the data above, for the claims page."""
    check = f"`{CHECK_SUITE}`"
    return (f"Claims of {PAPER} checked against this benchmark's own result files: {SOURCE}. For every task with a "
            f"Hydra entry (suites ordered {' > '.join(SUITE_RANK)}; {check} only where nothing else ran), each cell is "
            "Hydra minus the reference, its 95 % interval and the verdict (intervals and the verdict rule: "
            f"{METHOD}). Roles come from each result's registered method and hyper-parameters, never from the "
            f"entry's name: {'; '.join(f'{r.label}, {r.description}' for r in ROLES)}. A Hydra entry is labelled with "
            "its head-scoring criterion and the hyper-parameters it changes from the registry's defaults "
            f"({defaults(SUBJECT)}), *{DEFAULT_RECIPE}* where it changes none; a suite's tuned entry is chosen on "
            f"validation data. The paper's headline numbers are for {VARIANTS[HEADLINE_VARIANT]} (marked ★). Small "
            f"CPU budgets train far from convergence: read verdicts from {check} as a pipeline check.")


COST_CLAIM = "Inference cost close to one model: 1.07x the single model's latency in bfloat16"
COST_RATIO, COST_SLACK = 1.07, 0.10  # the paper's ratio, and the relative slack before a measurement counts against it
COST_VS_ENSEMBLE = "Inference cost below Deep Ensembles': less time than theirs"
COST_RULE = ("Cost claims read the side-by-side cost files (cost page): each ratio is the median of the per-round "
             "time ratios with its 95 % interval; a claim holds where the whole interval lies within it at both "
             "batch sizes.")
MATCHED_COST = ("For each Hydra entry and cost axis (its ratio to the single model in brackets), the best other entry "
                "on each metric among those that cost no more on that axis (`+TS` variants included, other Hydra "
                "entries not), and Hydra minus it with its 95 % interval; the verdict is that of the claim that Hydra "
                "is better.")
ZERO_SHOT_TASK = "imagenet-zeroshot-clip"  # task kind of the zero-shot claim
ZERO_SHOT_CLAIM = "Zero-shot ImageNet-1k with CLIP: Hydra (Circ) improves UQ over the zero-shot model"
# network names in the cost micro-benchmark files (tests/test_cost_benchmark.py)
COST_BENCH_SUBJECT, COST_BENCH_REFERENCE = "hydra", "single"


@functools.cache
def _registry_defaults(method: str) -> tuple[tuple[str, Any], ...] | None:
    return tuple(methods.create(method).get_params().items()) if method in methods.REGISTRY else None


def _defaults(method: str) -> dict[str, Any] | None:
    found = _registry_defaults(method)
    return None if found is None else dict(found)


def role_of(params: dict[str, Any], post_hoc: str | None = None) -> str | None:
    """The role of a result with these ``params`` (``method`` holds the registry name) and this
    post-processing (``post_hoc["kind"]`` of a post-processed variant), or None."""
    method = params.get("method")
    defaults = _defaults(method) if isinstance(method, str) else None
    if defaults is None:
        return None
    full = {**defaults, **{k: v for k, v in params.items() if k != "method"}}
    return next((r.name for r in ROLES if r.method == method and r.post_hoc == post_hoc and r.match(full, defaults)),
                None)


def job_role(job: dict[str, Any]) -> str | None:
    """The role of a result (or of its post-processed variant)."""
    return role_of(job["params"], job.get("post_hoc", {}).get("kind"))


def variant(params: dict[str, Any]) -> tuple[str, bool]:
    """(label, is the paper's headline variant) of a Hydra result, e.g. ("Hydra (Taylor),
    merge_mlp=False", False); one that changes nothing else is labelled the default recipe."""
    defaults = _defaults(params["method"]) or {}
    full = {**defaults, **{k: v for k, v in params.items() if k != "method"}}
    crit = full.get(VARIANT_PARAM)
    label = VARIANTS.get(crit, f"Hydra ({crit})")
    changed = [f"{k}={full[k]!r}" for k in sorted(full) if k != VARIANT_PARAM and full[k] != defaults.get(k)]
    return ", ".join([label, *(changed or [DEFAULT_RECIPE])]), crit == HEADLINE_VARIANT


def defaults(role: str) -> str:
    """The registry defaults of the method playing ``role``, as the report states them:
    "criterion='taylor', merge_mlp=True, ..." (read from the registry, never copied)."""
    method = next(r.method for r in ROLES if r.name == role)
    return ", ".join(f"{k}={v!r}" for k, v in sorted((_defaults(method) or {}).items()))


def suite_rank(suite: str) -> int:
    """The suite's place in ``SUITE_RANK`` (most authoritative first; unranked suites last)."""
    return SUITE_RANK.index(suite) if suite in SUITE_RANK else len(SUITE_RANK)


def entries_by_role(jobs: list[dict]) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """({role: entry names}, {entry name: jobs}) of one (suite, task); an entry whose jobs differ in
    role has none."""
    by_entry: dict[str, list[dict]] = defaultdict(list)
    for j in jobs:
        by_entry[j["method"]].append(j)
    roles: dict[str, list[str]] = defaultdict(list)
    for entry, js in sorted(by_entry.items()):
        found = {job_role(j) for j in js}
        if len(found) == 1 and None not in found:
            roles[found.pop()].append(entry)
    return dict(roles), dict(by_entry)


def reference_entry(jobs: list[dict]) -> str | None:
    """The entry in the reference role among ``jobs`` of one (suite, task), if exactly one."""
    refs = entries_by_role(jobs)[0].get(REFERENCE, [])
    return refs[0] if len(refs) == 1 else None


def claim_groups(jobs: list[dict]) -> list[tuple[str, str]]:
    """Every (suite, task) with a Hydra entry, most authoritative suite first; ``CHECK_SUITE`` only
    for tasks that no other suite has."""
    pairs = {(j["suite"], j["task"]) for j in jobs}
    pairs = [(s, t) for s, t in pairs if SUBJECT in entries_by_role([j for j in jobs if (j["suite"], j["task"]) == (s, t)])[0]]
    beyond = {t for s, t in pairs if s != CHECK_SUITE}
    return sorted(((s, t) for s, t in pairs if s != CHECK_SUITE or t not in beyond),
                  key=lambda st: (st[1], suite_rank(st[0]), st[0]))


def borrowed_references(jobs: list[dict], suite: str, task: str) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """Reference roles that (suite, task) lacks, filled from the most authoritative other suite
    whose entry in that role ran ``task`` on a task configuration of this suite: ({role: [label]},
    {label: jobs}), the label naming the suite. Pairing still checks configuration and test
    samples seed by seed."""
    configs = [j["task_config"] for j in jobs if j["suite"] == suite and j["task"] == task]
    have = entries_by_role([j for j in jobs if j["suite"] == suite and j["task"] == task])[0]
    others = sorted({j["suite"] for j in jobs if j["task"] == task} - {suite}, key=lambda s: (suite_rank(s), s))
    roles: dict[str, list[str]] = {}
    by_label: dict[str, list[dict]] = {}
    for ref in (r for r in REFERENCES if not have.get(r)):
        for other in others:
            found, by_entry = entries_by_role([j for j in jobs if j["suite"] == other and j["task"] == task
                                               and j["task_config"] in configs])
            if len(found.get(ref, [])) == 1:
                label = f"{other}/{found[ref][0]}"
                roles[ref], by_label[label] = [label], by_entry[found[ref][0]]
                break
    return roles, by_label
