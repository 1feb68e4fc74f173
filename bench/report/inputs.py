"""What the report reads from the results folder: result files (with their ``<entry> +TS`` variants
where a temperature was fitted), the suites' plans, tuning records and cost files. A file that is
unreadable or does not match its schema stops the report with its name."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ... import methods
from .. import calibration, claims, results, timing, tuning
from ..intervals import Evidence
from .comparisons import claim_rows


@dataclass
class Inputs:
    root: Path
    jobs: list[dict]  # finished jobs, each with ``_path`` relative to the root, and their ``+TS`` variants
    skipped: list[dict]  # skipped tasks and jobs
    plans: dict[str, dict]  # by suite
    records: list[dict]  # tuning records, each candidate's results under ``_results``
    timings: list[timing.Timing]  # the cost micro-benchmark
    evidence: Evidence
    costs: list[dict]  # side-by-side cost files (``bench.timing``)
    across: list[dict]  # each search's winners run on every task (``tuning.across_tasks``)
    stale: list[dict]  # finished jobs whose suite now runs their entry otherwise (``results.stale``)

    def by_task(self, suite: str, task: str) -> list[dict]:
        return [j for j in self.jobs if j["suite"] == suite and j["task"] == task]

    def suites(self) -> list[str]:
        """Every suite with results, most authoritative first, then those with skips only."""
        ran = {j["suite"] for j in self.jobs}
        return sorted(ran | {s["suite"] for s in self.skipped}, key=lambda s: (s not in ran, claims.suite_rank(s), s))

    def record_suite(self) -> str:
        """``claims.RECORD_SUITE`` where the results hold it, else the most authoritative suite they hold."""
        held = self.suites()
        return claims.RECORD_SUITE if claims.RECORD_SUITE in held or not held else held[0]

    @functools.cached_property
    def claims(self) -> list[dict]:
        """Every claim row (``comparisons.claim_rows``), computed once."""
        return claim_rows(self.jobs, self.evidence)

    def claims_on(self, suite: str, task: str) -> list[dict]:
        """The claim rows of one (suite, task)."""
        return [r for r in self.claims if r["suite"] == suite and r["task"] == task]


def load(root: Path, evidence: Evidence | None = None) -> Inputs:
    """Everything under ``root``, the logits behind the intervals included (``evidence``), so that
    damaged files stop the report before anything is written."""
    ok, skipped, stale, plans = [], [], [], results.read_plans(root)
    for path in sorted((root / "runs").rglob("*.json")):
        obj = results.read(path)  # raises ResultError naming the file
        obj["_path"] = str(path.relative_to(root))
        (skipped if obj["status"] != "ok" else stale if results.stale(plans.get(obj["suite"], {}), obj)
         else ok).append(obj)
    ok += [c for j in ok if (c := calibration.calibrated_result(j))]
    evidence = evidence or Evidence(root)
    for j in ok:
        evidence.replicates(j)
    return Inputs(root, ok, skipped, plans, tuning.load_records(root), timing.load_timings(root),
                  evidence, timing.load(root), tuning.load_across(root), stale)


def by_entry(jobs: list[dict]) -> dict[str, list[dict]]:
    return {e: [j for j in jobs if j["method"] == e] for e in dict.fromkeys(j["method"] for j in jobs)}


def ordered(jobs: list[dict]) -> list[tuple[str, list[dict]]]:
    """(entry, its jobs), the reference entry first."""
    one = claims.reference_entry(jobs)
    return sorted(by_entry(jobs).items(), key=lambda kv: (kv[0] != one, kv[0]))


def declared(method: str) -> dict[str, tuple[str, str]]:
    """The facts of its fits a registered method declares worth showing (``UQMethod.display_notes``)."""
    return getattr(methods.REGISTRY.get(method), "display_notes", {})
