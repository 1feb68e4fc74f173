"""The comparisons: the claims and the differences to the reference model, from result files,
as rows of plain values that the sections turn into tables.

Each difference is paired by seed with a 95 % interval (``intervals.Evidence.difference``); its
``note`` says where the interval is not the full one. A reference role a suite lacks on a task
is borrowed from another suite that ran the same task configuration.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .. import catalogue, claims
from ..intervals import Evidence, no_difference
from . import costs


def claim_groups(jobs: list[dict]) -> list[tuple[str, str]]:
    """Every (suite, task) with a Hydra entry, most authoritative suite first; ``quick`` only for
    tasks that no other suite has."""
    have: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for j in jobs:
        have[(j["suite"], j["task"])].append(j)
    pairs = [k for k, js in have.items() if claims.SUBJECT in claims.entries_by_role(js)[0]]
    beyond = {t for s, t in pairs if s != claims.CHECK_SUITE}
    pairs = [(s, t) for s, t in pairs if s != claims.CHECK_SUITE or t not in beyond]
    return sorted(pairs, key=lambda st: (st[1], claims.suite_rank(st[0]), st[0]))


def borrowed_references(jobs: list[dict], suite: str, task: str) -> tuple[dict[str, list[str]], dict[str, list[dict]]]:
    """Reference roles that (suite, task) lacks, filled from the most authoritative other suite
    whose entry in that role ran ``task`` on a task configuration of this suite: ({role: [label]},
    {label: jobs}), the label naming the suite. Pairing still checks configuration and test
    samples seed by seed."""
    here = [j for j in jobs if j["suite"] == suite and j["task"] == task]
    configs = [j["task_config"] for j in here]
    have = claims.entries_by_role(here)[0]
    others = sorted({j["suite"] for j in jobs if j["task"] == task} - {suite}, key=lambda s: (claims.suite_rank(s), s))
    roles: dict[str, list[str]] = {}
    by_label: dict[str, list[dict]] = {}
    for ref in claims.REFERENCES:
        if have.get(ref):
            continue
        for other in others:
            found, by_entry = claims.entries_by_role([j for j in jobs if j["suite"] == other and j["task"] == task
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
        roles, by_entry = claims.entries_by_role(sub)
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
                        reason = (f"ambiguous, entries {', '.join(refs)}" if refs
                                  else "no entry in this role on this task")
                        rows.append({**row, **no_difference(reason), "verdict": "not measured"})
                        continue
                    c = evidence.difference(by_entry[h], by_entry[refs[0]], claim.metric)
                    fields = c or no_difference("")
                    if refs[0] in lent:
                        fields["note"] = "; ".join(filter(None, [f"from suite `{refs[0].split('/')[0]}`, same task "
                                                                 "configuration", fields["note"]]))
                    v = claims.verdict(test, fields["diff"], fields["lo"], fields["hi"], claim.higher, fields["seeds"])
                    rows.append({**row, **fields, "verdict": v if c else "not measured"})
    return rows


def single_rows(jobs: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """Differences to the reference model of every other entry of one (suite, task), on each
    claim's metric: one row per (entry, metric). Empty without exactly one reference entry."""
    ref = claims.reference_entry(jobs)
    if ref is None:
        return []
    by_entry = claims.entries_by_role(jobs)[1]
    rows = []
    for entry in sorted(by_entry):
        if entry == ref:
            continue
        for claim in claims.CLAIMS:
            if c := evidence.difference(by_entry[entry], by_entry[ref], claim.metric):
                rows.append({"entry": entry, "reference_entry": ref, "claim": claim.name, "metric": claim.metric,
                             "higher_is_better": claim.higher, **c})
    return rows


MATCHED = ("test/nll", "test/ece", "ood_near/auroc_msp", "ood_far/auroc_msp")


def matched_rows(jobs: list[dict], files: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """Hydra at matched cost: per (suite, task) with a cost file, Hydra entry and cost axis, for each
    of ``MATCHED`` the best entry costing no more on that axis (``costs.matched``) and Hydra minus it,
    paired by seed with its 95 % interval; the verdict says whether Hydra is better."""
    rows = []
    for suite, task in claim_groups(jobs):
        roles, by_entry = claims.entries_by_role([j for j in jobs if j["suite"] == suite and j["task"] == task])
        for h in roles.get(claims.SUBJECT, []):
            if (mine := costs.cost_of(files, by_entry[h])) is None:
                continue
            for axis in costs.AXES:
                row = {"suite": suite, "task": task, "entry": h, "axis": axis, "cost": mine[axis]}
                for key in MATCHED:
                    higher = bool(catalogue.higher(key))
                    other = costs.matched(files, by_entry, h, axis, key, higher)
                    c = evidence.difference(by_entry[h], by_entry[other], key) if other else None
                    c = c or no_difference("no other entry costs no more" if not other else "")
                    v = claims.verdict(claims.Test("better"), c["diff"], c["lo"], c["hi"], higher, c["seeds"])
                    row[key] = {**c, "other": other, "verdict": v}
                rows.append(row)
    return rows
