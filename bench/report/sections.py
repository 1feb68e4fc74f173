"""The tables of one (suite, task): its entries with their metrics and cost ratios, OOD detection
per set, shift per severity, differences to the reference, the claims with their intervals, the
verdict matrix, and the answer in words. Which metrics, roles and claims appear is data
(``catalogue``, ``claims``); what a method shows beside its numbers it declares itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from .. import catalogue, claims
from . import costs
from .inputs import by_entry, declared, ordered
from .tables import Block, Bullets, Cell, Column, Heading, Para, Ref, Row, Table, interval, slug, stat, text

MAIN = ("test/acc", "test/nll", "test/brier", "test/ece", "test/aurc", "ood_near/auroc_msp", "ood_far/auroc_msp",
        "ood_mean/fpr95_msp", "shift/mean/acc", "shift/mean/ece")
HEADLINE = ("test/acc", "test/nll", "test/ece", "ood_near/auroc_msp", "ood_far/auroc_msp", "ood_mean/fpr95_msp")
PER_SET = (*(f"auroc_{s}" for s in catalogue.OOD_SCORES), f"aupr_{catalogue.DEFAULT_SCORE}",
           f"fpr95_{catalogue.DEFAULT_SCORE}")
MARKS = {"holds": "✓", "does not hold": "✗", "does not hold (Hydra better)": "✗⁺", "inconclusive": "?",
         "not measured": "–"}
ROLE = {r.name: r for r in claims.ROLES}
ENTRY, CLAIM = Column("entry", "Method"), Column("claim", "Claim")
VS = [Column(ref, f"vs {ROLE[ref].label}") for ref in claims.REFERENCES]  # a column per reference role


def metric_column(key: str) -> Column:
    return Column(key, catalogue.title(key), catalogue.higher(key))


def entry_rows(jobs: list[dict], cells: Callable[[list[dict]], dict[str, Cell]]) -> list[Row]:
    """A row per entry, the reference first, with ``cells(the entry's jobs)``."""
    return [Row({"entry": text(e, True), **cells(js)}, js[0]["suite"], js[0]["task"], e,
                js[0]["params"].get("method", ""), tuple(j["_path"] for j in js), "external" in js[0])
            for e, js in ordered(jobs)]


def groups(jobs: list[dict]) -> dict[str, str]:
    """Each entry's group as its results declare it (``extra.group``; "" for the main table)."""
    return {e: next((j["extra"]["group"] for j in js if j.get("extra", {}).get("group")), "")
            for e, js in by_entry(jobs).items()}


def metric_rows(jobs: list[dict], keys: tuple[str, ...],
                more: Callable[[list[dict]], dict[str, Cell]] = lambda js: {}) -> list[Row]:
    """``entry_rows`` with the mean ± sd of each of ``keys`` (the best of the main table's entries
    bold) and the cells ``more(js)``."""
    rows, group = entry_rows(jobs, lambda js: {**{k: stat([j["metrics"].get(k) for j in js]) for k in keys},
                                               **more(js)}), groups(jobs)
    for k, higher in ((k, catalogue.higher(k)) for k in keys):
        have = [r for r in rows if not group[r.entry] and r.cells[k].value is not None]
        if higher is not None and len(have) > 1:
            best = (max if higher else min)(r.cells[k].value for r in have)
            for r in (r for r in have if r.cells[k].value == best):
                r.cells[k] = replace(r.cells[k], bold=True)
    return rows


def entry_tables(jobs: list[dict], keys: tuple[str, ...], cost_keys: tuple[str, ...], anchor: str,
                 files: list[dict], seeds: bool = True) -> list[Block]:
    """Mean ± sd of ``keys`` and the cost ratios (from the side-by-side cost ``files``) per entry; a
    declared group's entries get their own table and are never bold."""
    keys = tuple(k for k in keys if any(k in j["metrics"] for j in jobs))
    columns = [ENTRY, Column("members", "M"), *([Column("seeds", "Seeds")] if seeds else []),
               *map(metric_column, keys), *(Column(k, costs.AXES[k]) for k in cost_keys)]
    rows, group = metric_rows(jobs, keys, lambda js: {"members": text(js[0]["cost"].get("members", "")), "seeds": text(
        len(js)), **costs.ratio_cells(files, js)}), groups(jobs)
    out: list[Block] = [Table(columns, [r for r in rows if not group[r.entry]], anchor)]
    for g in sorted(set(group.values()) - {""}):
        out += [Para(f"{g[0].upper() + g[1:]}, while the methods above start from the pretrained model: not these "
                     "methods at their best (bold marks the best of the table above)."),
                Table(columns, [r for r in rows if group[r.entry] == g], f"{anchor}-{slug(g)}")]
    return out


def detail_tables(jobs: list[dict], anchor: str) -> list[Block]:
    """OOD detection per set (each score) and covariate shift per severity."""
    out: list[Block] = []
    held = {k for j in jobs for k in j["metrics"]}  # score kinds newer than some results show where held
    if sets := sorted({k.split("/")[1] for k in held if k.startswith("ood/")}):
        keys = tuple(f"ood/{s}/{k}" for s in sets for k in PER_SET if f"ood/{s}/{k}" in held)
        near = ", ".join(f"`{s}`" for s in sets if s in jobs[0].get("near_ood", []))
        out += [Para("OOD detection per set (AUROC with each OOD score, AUPR and FPR95 with max-probability)"
                     + (f"; near-OOD: {near}:" if near else ":")),
                Table([ENTRY, *map(metric_column, keys)], metric_rows(jobs, keys), f"{anchor}-ood")]
    if sevs := sorted({k.split("/")[1] for k in held if k.startswith("shift/sev")}):
        def severity(js: list[dict], s: str) -> Cell:
            parts = [stat([j["metrics"].get(f"shift/{s}/{k}") for j in js]) for k in ("acc", "ece", "nll")]
            return Cell(" / ".join(p.text for p in parts), parts[0].value, parts[0].spread, parts[0].n)

        sources = "; ".join(sorted({shift_source(j.get("task_config", {})) for j in jobs}))
        out += [Para("Covariate shift (mean over corruptions) per severity: accuracy / ECE / NLL. "
                     f"Corruptions: {sources}."),
                Table([ENTRY, *(Column(s, f"severity {s.removeprefix('sev')}") for s in sevs)],
                      entry_rows(jobs, lambda js: {s: severity(js, s) for s in sevs}), f"{anchor}-shift")]
    return out


def shift_source(task_config: dict) -> str:
    """Which corruptions a result's shift sets are: a task records ``shift_source`` when it read
    the published arrays; without it (also every result written before) they are the project's."""
    if source := task_config.get("shift_source"):
        return f"the published {source} arrays"
    return "the project's own CIFAR-10-C-style corruptions (the fallback when the published arrays are absent)"


def notes(jobs: list[dict]) -> list[str]:
    """Each entry's own note, the facts of its fits its method declares, and the task's notes."""
    return [*sorted({f"`{j['method']}`: {j['extra']['note']}" for j in jobs if j["extra"].get("note")}),
            *(f"`{e}`: " + said.format(stat(v).text) for e, js in ordered(jobs)
              for key, (_, said) in declared(js[0]["params"].get("method")).items()
              if (v := [j["extra"][key] for j in js if key in j["extra"]])),
            *sorted({n for j in jobs for n in j.get("notes", [])})]


def bullets(items: list[str]) -> list[Block]:
    return [Bullets(items)] if items else []


def differences(rows: list[dict], jobs: list[dict], anchor: str) -> list[Block]:
    """Every entry minus the reference entry on each claim's metric, with the 95 % interval."""
    if not rows:
        return []
    ref, found = rows[0]["reference_entry"], {(r["entry"], r["metric"]): interval(r) for r in rows}
    columns = [ENTRY, *(Column(c.metric, c.name, c.higher) for c in claims.CLAIMS if c.metric in {k for _, k in found})]
    table = entry_rows([j for j in jobs if j["method"] in {r["entry"] for r in rows}],
                       lambda js: {c.key: found.get((js[0]["method"], c.key), Cell("–")) for c in columns[1:]})
    return [Para(f"Difference to `{ref}` (entry minus `{ref}`, paired by seed, 95 % interval as in the claims; "
                 "† seed spread only, ‡ one seed):"), Table(columns, table, f"{anchor}-diff"),
            *bullets(sorted({f"`{r['entry']}`: {r['note']}" for r in rows if r["note"]}))]


def claim_anchor(suite: str, task: str, claim: str, entry: str, reference: str) -> str:
    return slug("claim", suite, task, claim, entry, reference)


def claims_table(rows: list[dict], files: dict[str, list[dict]], suite: str, task: str) -> list[Block]:
    """The claims on one (suite, task): a row per (claim, Hydra entry), a cell per reference role."""
    cells = {(r["claim"], r["entry"]): {x["reference"]: x for x in rows if (x["claim"], x["entry"]) == (
        r["claim"], r["entry"])} for r in rows}
    label = {r["entry"]: f"{r['entry']}: {r['variant']}{' ★' * r['headline_variant']}" for r in rows}
    table = Table([CLAIM, Column("entry", "Hydra entry"), *VS], [Row({
        "claim": text(claim), "entry": text(label[entry]),
        **{ref: interval(by_ref[ref], anchor=claim_anchor(suite, task, claim, entry, ref)) if ref in by_ref
           else Cell("–") for ref in claims.REFERENCES}}, suite, task, entry, claims.SUBJECT,
        tuple(j["_path"] for j in files.get(entry, []))) for (claim, entry), by_ref in cells.items()],
        slug("claims", suite, task))
    notes = sorted({(f"`{r['entry']}` vs {ROLE[r['reference']].label} (`{r['reference_entry']}`)"
                     if r["reference_entry"] else ROLE[r["reference"]].label) + f": {r['note']}"
                    for r in rows if r["note"]})
    return [Heading(3, f"Claims on `{task}` ({suite})"), table, *bullets(notes)]


def verdict_matrix(rows: list[dict], suite: str, task: str) -> tuple[str, Table]:
    """Claim x reference for the task's first Hydra entry (the paper's variant first): one mark
    per cell, linking to its cell of the claims table on the suite's page."""
    entry, table = rows[0]["entry"], Table([CLAIM, *VS], [], slug("verdicts", suite, task))
    for c in dict.fromkeys(r["claim"] for r in rows):
        table.rows.append(Row({"claim": text(c), **{r["reference"]: Cell(
            MARKS[r["verdict"]], r["diff"], n=r["seeds"], lo=r["lo"], hi=r["hi"],
            link=Ref(suite, claim_anchor(suite, task, c, entry, r["reference"])))
            for r in rows if (r["entry"], r["claim"]) == (entry, c)}}, suite, task, entry, claims.SUBJECT))
    return entry, table


def answer(rows: list[dict], table: Table, entry: str, jobs: list[dict], files: list[dict]) -> list[str]:
    """Sentences from the numbers: how the first Hydra entry fares against each reference, which
    Hydra entry holds most claims, the best entry per column, and at what cost."""
    first, n = claims.REFERENCES[0], len(dict.fromkeys(r["claim"] for r in rows))
    words = {"hold": "holds", "do not hold": "does not hold", "inconclusive": "inconclusive",
             "not measured": "not measured"}

    def count(e: str, ref: str, verdict: str) -> int:
        return sum(r["verdict"].startswith(verdict) for r in rows if r["entry"] == e and r["reference"] == ref)

    tally = "; ".join(f"against {ROLE[ref].label} " + ", ".join(f"{k} {w}" for w, v in words.items()
                                                                if (k := count(entry, ref, v)))
                      for ref in claims.REFERENCES)
    held = [r["claim"] for r in rows if r["entry"] == entry and r["reference"] == first and r["verdict"] == "holds"]
    out = [f"`{entry}` ({rows[0]['variant']}), {n} claims: {tally}"
           + (f". Those that hold against {ROLE[first].label}: {', '.join(held)}." if held else ".")]
    held_by = {e: count(e, first, "holds") for e in dict.fromkeys(r["entry"] for r in rows)}
    most = max(held_by.values())
    top = [f"`{e}`" for e, k in held_by.items() if k == most]
    if len(held_by) > 1:
        out.append(f"None of the {len(held_by)} Hydra entries holds a claim against {ROLE[first].label}." if not most
                   else f"Of the {len(held_by)} Hydra entries, {', '.join(top)} hold{'s' * (len(top) == 1)} the most "
                   f"claims against {ROLE[first].label} ({most} of {n}).")
    if best := [(c.title, r.entry) for c in table.columns for r in table.rows if r.cells[c.key].bold]:
        out.append("Best mean per column: " + ", ".join(f"{t} `{e}`" for t, e in best) + ".")
    if (js := by_entry(jobs).get(entry)) and (said := costs.sentence(files, entry, js)):
        out.append(said)
    return out
