"""The comparisons, as rows of plain values that the sections turn into tables: the claims, the
differences to the reference model and Hydra at matched cost. Each difference is paired by seed
with a 95 % interval (``intervals.Evidence.difference``); its ``note`` says where the interval is
not the full one, or that its reference is borrowed from another suite."""

from __future__ import annotations

import itertools
from typing import Any

from .. import catalogue, claims, frontier, timing
from ..intervals import Evidence, no_difference
from .costs import AXES


def claim_rows(jobs: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """The claims table: one row per (suite, task, claim, Hydra entry, reference role); a row
    whose reference is borrowed from another suite says so in its note."""
    rows = []
    for suite, task in claims.claim_groups(jobs):
        sub = [j for j in jobs if j["suite"] == suite and j["task"] == task]
        roles, by_entry = claims.entries_by_role(sub)
        lent_roles, lent = claims.borrowed_references(jobs, suite, task)
        roles, by_entry = {**roles, **lent_roles}, {**by_entry, **lent}
        variants = {e: claims.variant(by_entry[e][0]["params"]) for e in roles[claims.SUBJECT]}
        for claim, h, ref in itertools.product(
                [c for c in claims.CLAIMS if any(c.metric in j["metrics"] for j in sub)],  # e.g. no near-OOD set
                sorted(variants, key=lambda e: (not variants[e][1], e)), claims.REFERENCES):
            refs = roles.get(ref, [])
            row = {"suite": suite, "task": task, "claim": claim.name, "metric": claim.metric, "entry": h,
                   "variant": variants[h][0], "headline_variant": variants[h][1], "reference": ref,
                   "reference_entry": refs[0] if len(refs) == 1 else ""}
            if len(refs) != 1:
                why = f"ambiguous, entries {', '.join(refs)}" if refs else "no entry in this role on this task"
                rows.append({**row, **no_difference(why), "verdict": "not measured"})
                continue
            fields = (c := evidence.difference(by_entry[h], by_entry[refs[0]], claim.metric)) or no_difference("")
            if refs[0] in lent:
                fields["note"] = "; ".join(filter(None, [f"from suite `{refs[0].split('/')[0]}`, same task "
                                                         "configuration", fields["note"]]))
            v = claims.verdict(claim.tests[ref], fields["diff"], fields["lo"], fields["hi"], claim.higher,
                               fields["seeds"])
            rows.append({**row, **fields, "verdict": v if c else "not measured"})
    return rows


def single_rows(jobs: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """Differences to the reference model of every other entry of one (suite, task), on each
    claim's metric: one row per (entry, metric). Empty without exactly one reference entry."""
    ref, by_entry = claims.reference_entry(jobs), claims.entries_by_role(jobs)[1]
    return [{"entry": e, "reference_entry": ref, "claim": claim.name, "metric": claim.metric, **c}
            for e in sorted(by_entry) if ref and e != ref for claim in claims.CLAIMS
            if (c := evidence.difference(by_entry[e], by_entry[ref], claim.metric))]


def matched_rows(jobs: list[dict], files: list[dict], evidence: Evidence) -> list[dict[str, Any]]:
    """Hydra at matched cost: per Hydra entry with a cost file and cost axis, Hydra minus the best entry
    costing no more (``frontier.matched``) on each of ``frontier.KEYS``, and whether Hydra is better."""
    rows = []
    for suite, task in claims.claim_groups(jobs):
        roles, by_entry = claims.entries_by_role([j for j in jobs if j["suite"] == suite and j["task"] == task])
        for h in roles.get(claims.SUBJECT, []):
            for axis in AXES if (mine := timing.cost_of(files, by_entry[h])) else ():
                row = {"suite": suite, "task": task, "entry": h, "axis": axis, "cost": mine[axis]}
                for key in frontier.KEYS:
                    other = frontier.matched(files, by_entry, h, axis, key)
                    c = (evidence.difference(by_entry[h], by_entry[other], key) if other else None) or no_difference(
                        "" if other else "no other entry costs no more")
                    v = claims.verdict(claims.Test("better"), c["diff"], c["lo"], c["hi"], bool(catalogue.higher(key)),
                                       c["seeds"])
                    row[key] = {**c, "other": other, "verdict": v}
                rows.append(row)
    return rows
