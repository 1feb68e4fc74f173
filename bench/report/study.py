"""The study pages, from the tuning records (``bench/tuning.py``), their candidates' results, the
suites' final results and the searches their plans declare: each record, how each knob moves the
metrics, and a conclusion written from the numbers. Test metrics appear for reading; the choice
was made on validation metrics alone, against the reference the record names."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import catalogue, claims, tuning
from .figures import plt, save
from .inputs import Inputs, by_entry, declared
from .tables import Bullets, Column, Heading, Links, Page, Para, Ref, Row, Table, detail, mean, number, slug, text

SHOWN = ("test/acc", "test/ece", "ood_far/auroc_msp", "ood_near/auroc_msp")  # what each candidate is shown with
SCORES = tuple(catalogue.OOD_SCORES)
FAR = "ood_far/auroc_{}"
PENDING = {"task": "Task", "entry": "Entry", "search": "Search", "knobs": "Knobs", "candidates": "Candidates"}


def _mean(objs: list[dict], key: str, field: str = "metrics") -> float:
    """The mean of ``o[field][key]`` over the results ``objs`` that hold it."""
    return mean([o.get(field, {}).get(key) for o in objs])


def _fmt(x: float, digits: int = 3) -> str:
    return number(x, f".{digits}f").text


def _rule(objective: dict[str, float]) -> str:
    terms = sorted(objective.items(), key=lambda kv: -kv[1])
    return " ".join(f"{'−' if w < 0 else '+'} {abs(w):g}·`{k}`" for k, w in terms).removeprefix("+ ")


def _ood_key(objs: list[dict]) -> str:
    """Far-OOD AUROC where the task has far-OOD sets, else the mean over all OOD sets."""
    return FAR if any(FAR.format(catalogue.DEFAULT_SCORE) in o["metrics"] for o in objs) else "ood_mean/auroc_{}"


def figure(rec: dict, reference: list[dict], path: Path, chosen: list[dict] = ()) -> bool:
    """Rows: the shown metrics; columns: knobs; points: candidates (error bars over seeds), with
    the chosen entry's mean and spread over its own seeds (``chosen``) beside the winner."""
    if not (slices := tuning.knob_slices(rec)):
        return False
    win = (rec.get("winner") or {}).get("name")
    rows = [*SHOWN[:2], _ood_key([o for c in rec["candidates"] for o in c["_results"]]).format(catalogue.DEFAULT_SCORE)]
    fig, axes = plt.subplots(len(rows), len(slices), figsize=(2.6 * len(slices), 2.2 * len(rows)),
                             squeeze=False, sharey="row")
    for j, (knob, cands) in enumerate(slices.items()):
        at = [k for k, c in enumerate(cands) if c["name"] == win]
        for i, key in enumerate(rows):
            ax, vals = axes[i][j], [[o["metrics"][key] for o in c["_results"] if key in o["metrics"]] for c in cands]
            ax.errorbar(range(len(cands)), [np.mean(v) if v else np.nan for v in vals],
                        yerr=[np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals], marker="o", capsize=3)
            if at and len(mine := [o["metrics"][key] for o in chosen if key in o["metrics"]]) > 1:
                ax.errorbar([at[0] + 0.15], [np.mean(mine)], yerr=[np.std(mine, ddof=1)], marker="*", ms=8,
                            capsize=3, color="C3", ls="none")
            if reference:
                ax.axhline(_mean(reference, key), ls="--", color="gray", lw=1)
            ax.set_xticks(range(len(cands)), [tuning.knob_text(c["knobs"][knob], "\n") for c in cands], fontsize=6)
            if i == 0:
                ax.set_title(knob, fontsize=9)
            if j == 0:
                ax.set_ylabel(catalogue.title(key), fontsize=9)
    ref = (f"; dashed: {rec['reference']} on the same seeds" if reference else "") + (
        f"; red star: the chosen {rec['entry']}, mean ± sd over its {len(chosen)} seeds" if len(chosen) > 1 else "")
    fig.suptitle(f"{rec['task']} / {rec['entry']}: one knob at a time (test split, not used to choose){ref}",
                 fontsize=9)
    save(fig, path)
    return True


def record_blocks(rec: dict) -> list:
    """The record's rule, budget and winner in words, and a row per candidate."""
    b, win, free = rec["budget"], rec.get("winner"), rec.get("unconstrained")
    words = [f"Tuning record of `{rec['entry']}` (`{rec['method']}`): minimise {_rule(rec['rule']['objective'])} on "
             f"seed(s) {', '.join(map(str, rec['rule']['seeds']))}, validation data only; {rec['search']} search over "
             f"{len(rec['space'])} knobs (space of {b['space_size']}), {b['candidates']} candidates run, "
             f"{b['wall_s'] / 60:.0f} minutes of fit and evaluation. Winner: "
             + (f"`{tuning.label(win['knobs'])}`." if win else "none yet (the search resumes).")]
    if rec["fixed"]:
        words.append("Held fixed: " + ", ".join(f"{k}={v}" for k, v in rec["fixed"].items()) + ".")
    if limit := rec.get("max_cost"):
        above = sum(c.get("within_max_cost") is False for c in rec["candidates"])
        words.append("Cost limit: " + ", ".join(f"analytic {k} at most {v:g}× `{rec['reference']}`'s"
                                                for k, v in limit.items())
                     + f"; {above} candidate{'s' * (above != 1)} above it (⊘) ran and are shown but could not be "
                     "chosen" + (f"; the best of them, `{tuning.label(free['knobs'])}`, is the entry "
                                 f"`{rec['unconstrained_entry']}`." if free else "."))
    if edge := tuning.at_the_edge(rec):
        words.append("At the edge of the space: " + "; ".join(
            f"`{k}` = {x:g} is the {side} of {', '.join(f'{t:g}' for t in tried)}" for k, x, side, tried in edge)
            + " tried; where the knob can go further, a value beyond might do better on validation.")
    start, facts = rec["candidates"][0]["knobs"] if rec["candidates"] else {}, declared(rec["method"])
    far, costed = [FAR.format(s) for s in SCORES[1:]], bool(rec.get("max_cost"))
    columns = [Column("candidate", "Candidate (vs start)"), Column("objective", "Val objective", False),
               *([Column("params_x", "Params ×")] if costed else []),
               *(Column(k, f"{catalogue.title(k)} (test)", catalogue.higher(k)) for k in SHOWN),
               *(Column(k, catalogue.title(k), True) for k in far),
               *(Column(k, title[0].upper() + title[1:]) for k, (title, _) in facts.items())]
    rows = [Row({"candidate": text(tuning.label(c["knobs"], start) + " ★" * bool(win and c["name"] == win["name"])
                                   + " ⊘" * (c.get("within_max_cost") is False), True),
                 "objective": number(c["objective"], ".4f") if c["objective"] is not None else text(c["status"]),
                 **({"params_x": number(c.get("cost", {}).get("params", math.nan))} if costed else {}),
                 **{k: number(_mean(c["_results"], k), ".3f") for k in (*SHOWN, *far)},
                 **{k: number(_mean(c["_results"], k, "extra")) for k in facts}},
                rec["suite"], rec["task"], c["name"], rec["method"], tuple(o["_path"] for o in c["_results"]))
            for c in rec["candidates"]]
    return [Para(" ".join(words)), Links("Record", [(rec["_path"], Ref(file=rec["_path"]))]),
            Table(columns, rows, slug("record", rec["suite"], rec["task"], rec["entry"]))]


def conclusion(rec: dict, finals: dict[str, list[dict]]) -> list[str]:
    """Plain words from the numbers: the chosen entry (or the best candidate so far) against the
    reference on test data, and for each candidate cause of a gap in OOD detection, whether a run closed it."""
    entry, ref_name = rec["entry"], rec.get("reference")
    mine, ref, who = finals.get(entry, []), finals.get(ref_name, []), f"the chosen `{entry}`"
    if not mine:
        best, done = tuning.best_so_far(rec)
        if not best:
            return []
        mine, ref = best["_results"], tuning.on_rule_seeds(rec, ref)
        who = f"the best candidate so far (`{tuning.label(best['knobs'])}`; {done} of the search's candidates run)"
    if not ref:
        return []
    ood = _ood_key(ref)
    key, kind = ood.format(catalogue.DEFAULT_SCORE), "far-OOD" if ood == FAR else "OOD"
    gap = _mean(mine, key) - _mean(ref, key)
    out = [f"On `{rec['task']}`, {who} ({len(mine)} seed{'s' * (len(mine) > 1)}) against `{ref_name}` ({len(ref)}): "
           + ", ".join(f"{name} {_fmt(_mean(mine, k))} vs {_fmt(_mean(ref, k))}"
                       for name, k in (("accuracy", "test/acc"), ("ECE", "test/ece"), (f"{kind} AUROC", key)))
           + f" ({gap:+.3f}).", *_selection_noise(rec, finals.get(entry, []))]
    if not gap < 0:
        return out + [f"It does not trail the reference on {kind} detection here."]
    (best, a), (ref_best, b) = (max(((s, _mean(objs, ood.format(s))) for s in SCORES), key=lambda t: t[1])
                                for objs in (mine, ref))
    mi = _mean(mine, ood.format("mi"))
    out.append(f"OOD score: with each model's best score, {_fmt(a)} (`{best}`) vs {_fmt(b)} (`{ref_best}`); mutual "
               f"information gives {_fmt(mi)} (0.5 = chance), so " + (
                   "the choice of score closes the gap." if a >= b else "no score closes the gap"
                   + ("; the members' disagreement is close to chance as an OOD signal." if mi < 0.55 else ".")))
    out += _finetuning_alone({e: o for e, o in finals.items() if e != entry}, ref, ref_name, gap, key, kind)
    target, slices = _mean(tuning.on_rule_seeds(rec, ref), key), tuning.knob_slices(rec)
    for knob, cands in slices.items():
        lo, hi = ((_mean(c["_results"], key), tuning.knob_text(c["knobs"][knob])) for c in (
            f(cands, key=lambda c: _mean(c["_results"], key)) for f in (min, max)))
        facts = "".join(f" ({title} {_fmt(min(v), 2)}–{_fmt(max(v), 2)})" for k, (title, _) in declared(
            rec["method"]).items() if not any(map(math.isnan, v := [_mean(c["_results"], k, "extra") for c in cands])))
        out.append(f"`{knob}`: {kind} AUROC ranges {_fmt(lo[0])} (`{lo[1]}`) to {_fmt(hi[0])} (`{hi[1]}`) against "
                   f"`{ref_name}`'s {_fmt(target)} on the same seed(s): it "
                   f"{'closes' if hi[0] >= target else 'does not close'} the gap{facts}.")
    if pending := [f"`{k}`" for k in rec["space"] if k not in slices]:
        out.append(f"Not yet measured (no candidates differing only there; the search resumes): {', '.join(pending)}.")
    return out


def _finetuning_alone(finals: dict[str, list[dict]], ref: list[dict], ref_name: str, gap: float, key: str,
                      kind: str) -> list[str]:
    """How much of the gap the extra training explains on its own: each entry of the suite in the
    role that isolates the extra training, against the reference."""
    out = []
    for entry, objs in sorted(finals.items()):
        if objs and all(claims.job_role(o) == claims.FINETUNED for o in objs):
            delta = _mean(objs, key) - _mean(ref, key)
            out.append(f"Extra training alone: `{entry}` (the single model given extra fine-tuning, {len(objs)} "
                       f"seed{'s' * (len(objs) > 1)}) has {kind} AUROC {_fmt(_mean(objs, key))} against `{ref_name}`'s "
                       f"{_fmt(_mean(ref, key))} ({delta:+.3f}), "
                       + (f"so fine-tuning on the training set by itself accounts for {min(delta / gap, 1):.0%} of the "
                          f"gap ({gap:+.3f})." if delta < 0 else "so the extra training by itself does not explain the "
                          "gap."))
    return out


def _selection_noise(rec: dict, chosen: list[dict]) -> list[str]:
    """The candidates' spread against the chosen configuration's seed noise (``tuning.selection_noise``)."""
    if not (n := tuning.selection_noise(rec, chosen)):
        return []
    close = n["close"]
    return [f"Selection: the {n['candidates']} candidates' validation objectives span {n['span']:.4f}; the chosen "
            f"configuration's own objective has a standard deviation of {n['sd']:.4f} over its {n['seeds']} seeds, so "
            + ("no other candidate lies within one seed's noise of the winner." if close == 0 else
               f"{close} other candidate{'s lie' if close > 1 else ' lies'} within one seed's noise of the winner and "
               f"the data do not separate {'them' if close > 1 else 'it'} from the winner.")]


def across_blocks(rec: dict) -> list:
    """Each task's winner run on every task: its objective and rank there, and its mean rank."""
    columns = [Column("from", "Winner on"), *(Column(t, f"on {t}", False) for t in rec["tasks"]),
               Column("mean_rank", "Mean rank", False)]
    rows = [Row({"from": text(f"{r['from']}{' ★' * (r['from'] == rec['best']['from'])}", True),
                 **{t: text(f"{_fmt(v['objective'], 4)} (rank {v.get('rank', '–')})") for t, v in r["on"].items()},
                 "mean_rank": number(r["mean_rank"])}, rec["suite"], "", rec["entry"], rec["method"])
            for r in rec["recipes"]]
    return [Heading(2, f"`{rec['suite']}` / `{rec['entry']}` across tasks", slug("across", rec["suite"], rec["entry"])),
            Para(f"Each task's chosen `{rec['entry']}` run on every task (knob values carried by their position in "
                 f"each task's list), ranked per task by the same validation objective; ★ the lowest mean rank, "
                 f"{tuning.label(rec['best']['knobs'])}: the method's code defaults."),
            Table(columns, rows, slug("across-table", rec["suite"], rec["entry"]))]


def pages(inputs: Inputs) -> list[Page]:
    """One page per study title ('' titles none), with its figures drawn under ``figures/``."""
    pending: dict[str, list] = defaultdict(list)  # the searches the recorded plans declare that have no record yet
    for name, todo in tuning.not_started(inputs.plans, inputs.records).items():
        t = inputs.plans[name]["tuning"]
        pending[t["title"]] += [
            Para(f"Searches of suite `{name}` not started yet (rule: minimise {_rule(t['objective'])} on seed(s) "
                 f"{', '.join(map(str, t['seeds']))}, validation data only; "
                 f"`python -m uqbench tune --suite {name}` runs them):"),
            Table.of(PENDING, [Row(dict(zip(PENDING, (
                text(s["task"], True), text(f"{s['entry']} ({s['method']})"), text(s["search"]),
                text(", ".join(s["knobs"])), text(s["candidates"])))), name, s["task"], s["entry"], s["method"])
                for s in todo], slug("not-started", name))]
    out = []
    for title in sorted({r["title"] for r in inputs.records} | set(pending)):
        page = detail(f"tuning-{slug(title)}", title, Para(
            "Each tuned entry's configuration is chosen by the stated rule on validation data; the test-split numbers "
            "below are shown for reading and are not used to choose. Rows of the chosen configurations on every seed "
            "are on the suite's page."), *pending.get(title, []))
        for rec in (r for r in inputs.records if r["title"] == title):
            finals = by_entry(inputs.by_task(rec["suite"], rec["task"]))
            page.blocks += [Heading(2, f"`{rec['suite']}` / `{rec['task']}` / `{rec['entry']}`",
                                    slug("study", rec["suite"], rec["task"], rec["entry"])), *record_blocks(rec)]
            fig = f"figures/{rec['suite']}__{rec['task']}__{rec['entry']}-knobs.png"
            if figure(rec, tuning.on_rule_seeds(rec, finals.get(rec.get("reference"), [])), inputs.root / fig,
                      finals.get(rec["entry"], [])):
                page.blocks.append(Links("Figure", [("how accuracy, ECE and OOD AUROC move with each knob",
                                                     Ref(file=fig))]))
            if words := conclusion(rec, finals):
                page.blocks += [Para("Conclusion (generated from the numbers):"), Bullets(words)]
        suites = {r["suite"] for r in inputs.records if r["title"] == title}
        page.blocks += [b for rec in inputs.across if rec["suite"] in suites for b in across_blocks(rec)]
        out.append(page)
    return out
