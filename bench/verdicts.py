"""Claims and differences to the single model, from result files, as plain rows.

Each row is a dict of plain values (strings, numbers, booleans), so that the Markdown leaderboard
and any other rendering read the same table. Differences are paired: the same task, seed, task
configuration and test samples for both methods, with the 95 % interval of ``intervals`` from the
logits kept in the results folder. Where those logits are absent (kept only in one machine's
cache, or deleted), the interval falls back to the seed spread of the stored metrics and the
row's ``note`` says so; rows are the same on every machine.
"""

from __future__ import annotations

import math
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uqbench.bench import claims, intervals, results

SUITE_RANK = claims.SUITE_RANK


def suite_rank(suite: str) -> int:
    return SUITE_RANK.index(suite) if suite in SUITE_RANK else len(SUITE_RANK)


@dataclass(frozen=True)
class Comparison:
    interval: intervals.Interval
    note: str  # why the interval is not the full one, or why seeds were left out; "" otherwise


class Evidence:
    """Bootstrap replicates of each job's metrics from its saved logits under ``root`` (None: read
    no logits), computed once per job."""

    def __init__(self, root: Path | None, n_boot: int = intervals.N_BOOT) -> None:
        self.root = None if root is None else Path(root)
        self.resampler = intervals.Resampler(n_boot)
        self._done: dict[str, tuple[dict[str, np.ndarray], tuple] | str] = {}

    def replicates(self, job: dict) -> tuple[dict[str, np.ndarray], tuple] | str:
        """(replicates by metric key, signature of the evaluated samples), or why there are none."""
        if job["_path"] not in self._done:
            self._done[job["_path"]] = self._compute(job)
        return self._done[job["_path"]]

    def _compute(self, job: dict) -> tuple[dict[str, np.ndarray], tuple] | str:
        if self.root is None:
            return "logits not read"
        if job["logits"].startswith("cache:"):
            scores_path = self.root / intervals.scores_file(job["_path"])
            if not scores_path.is_file():
                return "logits kept only in the local cache"
            try:
                s, signature = intervals.load_scores(scores_path)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
                raise results.ResultError(f"{scores_path}: unreadable scores ({type(e).__name__}: {e})") from None
            return intervals.replicates(s, self.resampler), signature
        path = results.logits_location(self.root, job["logits"])
        if not path.is_file():
            return "logits file absent"
        try:
            logits, labels = results.load_logits(path)
            s = intervals.scores(logits, labels["test"], tuple(job.get("near_ood", [])))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise results.ResultError(f"{path}: unreadable logits ({type(e).__name__}: {e})") from None
        return intervals.replicates(s, self.resampler), intervals.signature(logits, labels["test"])

    def difference(self, a: list[dict], b: list[dict], key: str) -> Comparison | None:
        """``key`` of jobs ``a`` minus jobs ``b``, paired by seed; None when no seed pairs."""
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
            iv = intervals.seeds_only([by_a[s]["metrics"][key] for s in seeds], [by_b[s]["metrics"][key] for s in seeds])
            return Comparison(iv, "; ".join(notes))
        paired = [s for s in seeds if reps[(s, "a")][1] == reps[(s, "b")][1]]
        notes += [f"seed {s} left out: different test samples" for s in seeds if s not in paired]
        if not paired:
            return Comparison(intervals.Interval(math.nan, math.nan, math.nan, 0, "none"), "; ".join(notes))
        iv = intervals.combine([reps[(s, "a")][0][key] for s in paired], [reps[(s, "b")][0][key] for s in paired])
        return Comparison(iv, "; ".join(notes))


def entries_by_role(jobs: list[dict]) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """({role: entry names}, {entry name: jobs}) of one (suite, task); an entry whose jobs differ in
    role has none."""
    by_entry: dict[str, list[dict]] = defaultdict(list)
    for j in jobs:
        by_entry[j["method"]].append(j)
    roles: dict[str, list[str]] = defaultdict(list)
    for entry, js in sorted(by_entry.items()):
        found = {claims.role_of(j["params"]) for j in js}
        if len(found) == 1 and None not in found:
            roles[found.pop()].append(entry)
    return dict(roles), dict(by_entry)


def reference_entry(jobs: list[dict]) -> str | None:
    """The entry in the reference role among ``jobs`` of one (suite, task), if exactly one."""
    refs = entries_by_role(jobs)[0].get(claims.REFERENCE, [])
    return refs[0] if len(refs) == 1 else None


def claim_groups(jobs: list[dict]) -> list[tuple[str, str]]:
    """Every (suite, task) with a Hydra entry, most authoritative suite first; ``quick`` only for
    tasks that no other suite has."""
    have: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in jobs:
        have[(j["suite"], j["task"])].append(j)
    pairs = [k for k, js in have.items() if claims.SUBJECT in entries_by_role(js)[0]]
    beyond_quick = {t for s, t in pairs if s != "quick"}
    pairs = [(s, t) for s, t in pairs if s != "quick" or t not in beyond_quick]
    return sorted(pairs, key=lambda st: (st[1], suite_rank(st[0]), st[0]))


def _interval_fields(c: Comparison | None) -> dict[str, Any]:
    if c is None:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "seeds": 0, "interval": "none", "note": ""}
    iv = c.interval
    return {"diff": iv.diff, "lo": iv.lo, "hi": iv.hi, "seeds": iv.seeds, "interval": iv.kind, "note": c.note}


def borrowed_references(jobs: list[dict], suite: str, task: str) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """Reference roles that (suite, task) lacks, filled from the most authoritative other suite
    whose entry in that role ran ``task`` on a task configuration of this suite: ({role: [label]},
    {label: jobs}), the label naming the suite. Pairing still checks configuration and test
    samples seed by seed."""
    here = [j for j in jobs if j["suite"] == suite and j["task"] == task]
    configs = [j["task_config"] for j in here]
    have = entries_by_role(here)[0]
    others = sorted({j["suite"] for j in jobs if j["task"] == task} - {suite}, key=lambda s: (suite_rank(s), s))
    roles: dict[str, list[str]] = {}
    by_label: dict[str, list[dict]] = {}
    for ref in claims.REFERENCES:
        if have.get(ref):
            continue
        for other in others:
            found, by_entry = entries_by_role([j for j in jobs if j["suite"] == other and j["task"] == task
                                               and j["task_config"] in configs])
            if len(found.get(ref, [])) == 1:
                label = f"{other}/{found[ref][0]}"
                roles[ref], by_label[label] = [label], by_entry[found[ref][0]]
                break
    return roles, by_label


def claim_rows(jobs: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """The claims table: one row per (suite, task, claim, Hydra entry, reference role). A reference
    role the suite lacks on a task is taken from another suite that ran the same task configuration
    (``borrowed_references``), and the row's note says so."""
    rows = []
    for suite, task in claim_groups(jobs):
        sub = [j for j in jobs if j["suite"] == suite and j["task"] == task]
        roles, by_entry = entries_by_role(sub)
        lent_roles, lent = borrowed_references(jobs, suite, task)
        roles, by_entry = {**roles, **lent_roles}, {**by_entry, **lent}
        variants = {e: claims.variant(by_entry[e][0]["params"]) for e in roles[claims.SUBJECT]}
        hydras = sorted(variants, key=lambda e: (not variants[e][1], e))
        for claim in claims.CLAIMS:
            if not any(claim.metric in j["metrics"] for j in sub):
                continue  # e.g. no near-OOD set on this task
            for h in hydras:
                for ref in claims.REFERENCES:
                    refs = roles.get(ref, [])
                    test = claim.tests[ref]
                    row = {"suite": suite, "task": task, "claim": claim.name, "metric": claim.metric,
                           "higher_is_better": claim.higher, "entry": h, "variant": variants[h][0],
                           "headline_variant": variants[h][1], "reference": ref,
                           "reference_entry": refs[0] if len(refs) == 1 else "", "test": test.describe()}
                    if len(refs) != 1:
                        reason = "no entry in this role on this task" if not refs else f"ambiguous, entries {', '.join(refs)}"
                        rows.append({**row, **_interval_fields(None), "verdict": "not measured", "note": reason})
                        continue
                    c = evidence.difference(by_entry[h], by_entry[refs[0]], claim.metric)
                    fields = _interval_fields(c)
                    if refs[0] in lent:
                        fields["note"] = "; ".join(filter(None, [f"from suite `{refs[0].split('/')[0]}`, same task "
                                                                 "configuration", fields["note"]]))
                    v = claims.verdict(test, fields["diff"], fields["lo"], fields["hi"], claim.higher, fields["seeds"])
                    rows.append({**row, **fields, "verdict": v if c else "not measured"})
    return rows


def single_rows(jobs: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """Differences to the reference model of every other entry of one (suite, task), on each
    claim's metric: one row per (entry, metric). Empty without exactly one reference entry."""
    ref = reference_entry(jobs)
    if ref is None:
        return []
    by_entry = entries_by_role(jobs)[1]
    rows = []
    for entry in sorted(by_entry):
        if entry == ref:
            continue
        for claim in claims.CLAIMS:
            c = evidence.difference(by_entry[entry], by_entry[ref], claim.metric)
            if c is not None:
                rows.append({"entry": entry, "reference_entry": ref, "claim": claim.name, "metric": claim.metric,
                             "higher_is_better": claim.higher, **_interval_fields(c)})
    return rows
