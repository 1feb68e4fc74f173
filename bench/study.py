"""The leaderboard's study section: tuning records, how each knob moves the metrics, and a
conclusion written from the numbers.

Inputs are files only: the tuning records ``<results>/tuning/<suite>/<task>/<entry>.json``
(``bench/tuning.py``), the candidates' result files under ``<results>/tuning/runs/`` and the
suite's final results under ``<results>/runs/``. Test metrics appear here for reading; the
choice itself was made on validation metrics alone, by the rule the record states. Which entry
is the reference (the model compared with) comes from the record, i.e. the suite file.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from uqbench.bench import results

# (metric key, short title, higher is better): what each candidate is shown with
SHOWN = [("test/acc", "Acc", True), ("test/ece", "ECE", False), ("ood_far/auroc_msp", "AUROC far", True),
         ("ood_near/auroc_msp", "AUROC near", True)]
SCORES = ("msp", "entropy", "mi")  # the OOD scores every result holds (bench/metrics.py)
FAR = "ood_far/auroc_{}"


def load_records(root: Path) -> list[dict]:
    """Every tuning record, with its candidates' result files attached (``_results``)."""
    out = []
    for path in sorted((Path(root) / "tuning").glob("*/*/*.json")):
        rec = json.loads(path.read_text())
        rec["_path"] = str(path.relative_to(root))
        base = Path(root) / "tuning" / "runs" / rec["suite"] / rec["task"]
        for c in rec["candidates"]:
            c["_results"] = [results.read(p) for p in sorted((base / c["name"]).glob("seed*.json"))]
        out.append(rec)
    return out


def _mean(objs: list[dict], key: str) -> float:
    v = [o["metrics"][key] for o in objs if key in o["metrics"]]
    return float(np.mean(v)) if v else math.nan


def _fmt(x: float, digits: int = 3) -> str:
    return "–" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _label(knobs: dict, start: dict) -> str:
    """A candidate by the knobs where it differs from the search's starting point."""
    diff = [_value(v) if isinstance(v, dict) else f"{k}={v}" for k, v in knobs.items() if v != start.get(k)]
    return ", ".join(diff) or "start"


def _value(v, sep: str = ", ") -> str:
    return sep.join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else str(v)


def _rule(objective: dict[str, float]) -> str:
    terms = sorted(objective.items(), key=lambda kv: -kv[1])
    out = " ".join(f"{'−' if w < 0 else '+'} {abs(w):g}·`{k}`" for k, w in terms)
    return out.removeprefix("+ ")


def _ood_key(objs: list[dict]) -> str:
    """Far-OOD AUROC where the task has far-OOD sets, else the mean over all OOD sets."""
    return FAR if any(FAR.format("msp") in o["metrics"] for o in objs) else "ood_mean/auroc_{}"


def _jaccard(objs: list[dict]) -> float:
    v = [o["extra"]["mean_jaccard"] for o in objs if "mean_jaccard" in o.get("extra", {})]
    return float(np.mean(v)) if v else math.nan


def _same_seeds(rec: dict, objs: list[dict]) -> list[dict]:
    """The results among ``objs`` on the seeds the candidates were compared on."""
    return [o for o in objs if o["seed"] in rec["rule"]["seeds"]]


def knob_slices(rec: dict) -> dict[str, list[dict]]:
    """Per knob, the candidates that differ only in that knob (the largest such group, the
    winner's where there is a tie), ordered as the knob's values are declared."""
    out = {}
    cands = [c for c in rec["candidates"] if c["_results"]]
    win = (rec.get("winner") or {}).get("name")
    for knob, values in rec["space"].items():
        groups = defaultdict(list)
        for c in cands:
            rest = json.dumps({k: v for k, v in c["knobs"].items() if k != knob}, sort_keys=True)
            groups[rest].append(c)
        best = max(groups.values(), key=lambda g: (len({json.dumps(c["knobs"][knob]) for c in g}),
                                                   any(c["name"] == win for c in g)), default=[])
        if len(best) > 1:
            out[knob] = sorted(best, key=lambda c: values.index(c["knobs"][knob]))
    return out


def figure(rec: dict, reference: list[dict], path: Path, chosen: list[dict] = ()) -> None:
    """Rows: the shown metrics; columns: knobs; points: candidates (error bars over seeds), with
    the chosen entry's mean and spread over its own seeds (``chosen``) beside the winner."""
    from uqbench.bench.figures import _save, plt

    slices = knob_slices(rec)
    if not slices:
        return
    win = (rec.get("winner") or {}).get("name")
    ood = _ood_key([o for c in rec["candidates"] for o in c["_results"]]).format("msp")
    rows = [*SHOWN[:2], (ood, "AUROC far" if ood.startswith("ood_far") else "AUROC", True)]
    fig, axes = plt.subplots(len(rows), len(slices), figsize=(2.6 * len(slices), 2.2 * len(rows)),
                             squeeze=False, sharey="row")
    for j, (knob, cands) in enumerate(slices.items()):
        for i, (key, title, _) in enumerate(rows):
            ax = axes[i][j]
            vals = [[o["metrics"][key] for o in c["_results"] if key in o["metrics"]] for c in cands]
            means = [np.mean(v) if v else np.nan for v in vals]
            errs = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
            ax.errorbar(range(len(cands)), means, yerr=errs, marker="o", capsize=3)
            at = [k for k, c in enumerate(cands) if c["name"] == win]
            mine = [o["metrics"][key] for o in chosen if key in o["metrics"]]
            if at and len(mine) > 1:
                ax.errorbar([at[0] + 0.15], [np.mean(mine)], yerr=[np.std(mine, ddof=1)], marker="*", ms=8,
                            capsize=3, color="C3", ls="none")
            if reference:
                ax.axhline(_mean(reference, key), ls="--", color="gray", lw=1)
            ax.set_xticks(range(len(cands)), [_value(c["knobs"][knob], "\n") for c in cands], fontsize=6)
            if i == 0:
                ax.set_title(knob, fontsize=9)
            if j == 0:
                ax.set_ylabel(title, fontsize=9)
    ref = f"; dashed: {rec['reference']} on the same seeds" if reference else ""
    if len(chosen) > 1:
        ref += f"; red star: the chosen {rec['entry']}, mean ± sd over its {len(chosen)} seeds"
    fig.suptitle(f"{rec['task']} / {rec['entry']}: one knob at a time (test split, not used to choose){ref}",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def at_the_edge(rec: dict) -> list[str]:
    """The winner's values that are the smallest or largest of three or more numbers a knob (or
    a field of a table-valued knob) tried: there the best value may lie outside the space."""
    win = rec.get("winner")
    if not win:
        return []
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    out = []
    for knob, values in rec["space"].items():
        chosen = win["knobs"][knob]
        for field, x in chosen.items() if isinstance(chosen, dict) else [(None, chosen)]:
            tried = {v.get(field) if isinstance(v, dict) else v for v in values}
            if len(tried) < 3 or not all(map(number, tried)) or x not in (min(tried), max(tried)):
                continue
            name = knob if field is None else f"{knob}.{field}"
            out.append(f"`{name}` = {x:g} is the {'smallest' if x == min(tried) else 'largest'} of "
                       f"{', '.join(f'{t:g}' for t in sorted(tried))}")
    return out


def _record_lines(rec: dict, link: str) -> list[str]:
    b, win = rec["budget"], rec.get("winner")
    lines = [f"Tuning record of `{rec['entry']}` (`{rec['method']}`, [{rec['_path']}]({link})): "
             f"minimise {_rule(rec['rule']['objective'])} on seed(s) {', '.join(map(str, rec['rule']['seeds']))}, "
             f"validation data only; {rec['search']} search over {len(rec['space'])} knobs "
             f"(space of {b['space_size']}), {b['candidates']} candidates run, {b['wall_s'] / 60:.0f} minutes "
             f"of fit and evaluation. Winner: "
             + (f"`{_label(win['knobs'], {})}`." if win else "none yet (the search resumes).")]
    if rec["fixed"]:
        lines[0] += " Held fixed: " + ", ".join(f"{k}={v}" for k, v in rec["fixed"].items()) + "."
    edge = at_the_edge(rec)
    if edge:
        lines[0] += (" At the edge of the space: " + "; ".join(edge) + " tried; where the knob can go further, "
                     "a value beyond might do better on validation.")
    start = rec["candidates"][0]["knobs"] if rec["candidates"] else {}
    header = ["Candidate (vs start)", "Val objective", *[f"{t} (test)" for _, t, _ in SHOWN],
              *[f"AUROC far {s}" for s in SCORES[1:]], "Head overlap"]
    rows = []
    for c in rec["candidates"]:
        objs = c["_results"]
        mark = " ★" if win and c["name"] == win["name"] else ""
        rows.append([f"`{_label(c['knobs'], start)}`{mark}",
                     _fmt(c["objective"], 4) if c["objective"] is not None else c["status"],
                     *[_fmt(_mean(objs, k)) for k, _, _ in SHOWN],
                     *[_fmt(_mean(objs, FAR.format(s))) for s in SCORES[1:]], _fmt(_jaccard(objs), 2)])
    return lines + [""] + _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    from uqbench.bench.report import _table as table

    return table(header, rows)


def conclusion(rec: dict, finals: dict[str, list[dict]]) -> list[str]:
    """Plain words from the numbers: the chosen entry against the reference on test data (while
    the search is incomplete, its best candidate so far on the candidates' seeds), and for each
    candidate cause of a gap in OOD detection, whether a run closed it."""
    entry, ref_name = rec["entry"], rec.get("reference")
    mine, ref = finals.get(entry, []), finals.get(ref_name, [])
    who = f"the chosen `{entry}`"
    if not mine:
        done = [c for c in rec["candidates"] if c["objective"] is not None and c["_results"]]
        if not done:
            return []
        best_c = min(done, key=lambda c: c["objective"])
        mine, ref = best_c["_results"], _same_seeds(rec, ref)
        who = (f"the best candidate so far (`{_label(best_c['knobs'], {})}`; "
               f"{len(done)} of the search's candidates run)")
    if not ref:
        return []
    ood = _ood_key(ref)
    d = lambda key: _mean(mine, key) - _mean(ref, key)  # noqa: E731
    n = f"{len(mine)} seed{'s' * (len(mine) > 1)}"
    kind = "far-OOD" if ood == FAR else "OOD"
    out = [f"On `{rec['task']}`, {who} ({n}) against `{ref_name}` ({len(ref)}): accuracy "
           f"{_fmt(_mean(mine, 'test/acc'))} vs {_fmt(_mean(ref, 'test/acc'))}, ECE {_fmt(_mean(mine, 'test/ece'))} "
           f"vs {_fmt(_mean(ref, 'test/ece'))}, {kind} AUROC {_fmt(_mean(mine, ood.format('msp')))} vs "
           f"{_fmt(_mean(ref, ood.format('msp')))} ({d(ood.format('msp')):+.3f})."]
    out += _selection_noise(rec, finals.get(entry, []))
    gap = d(ood.format("msp"))
    if not gap < 0:
        return out + [f"It does not trail the reference on {kind} detection here."]
    best = max(SCORES, key=lambda s: _mean(mine, ood.format(s)))
    ref_best = max(SCORES, key=lambda s: _mean(ref, ood.format(s)))
    closes = _mean(mine, ood.format(best)) >= _mean(ref, ood.format(ref_best))
    out.append(f"OOD score: with each model's best score, {_fmt(_mean(mine, ood.format(best)))} (`{best}`) "
               f"vs {_fmt(_mean(ref, ood.format(ref_best)))} (`{ref_best}`); mutual information gives "
               f"{_fmt(_mean(mine, ood.format('mi')))} (0.5 = chance), so "
               + ("the choice of score closes the gap." if closes else "no score closes the gap"
                  + ("; the members' disagreement is close to chance as an OOD signal."
                     if _mean(mine, ood.format("mi")) < 0.55 else "."))
               )
    out += _finetuning_alone({e: o for e, o in finals.items() if e != entry}, ref, ref_name, gap, ood.format("msp"),
                             kind)
    target = _mean(_same_seeds(rec, ref), ood.format("msp"))
    slices = knob_slices(rec)
    pending = [f"`{k}`" for k in rec["space"] if k not in slices]
    for knob, cands in slices.items():
        vals = [(_mean(c["_results"], ood.format("msp")), c) for c in cands]
        hi, lo = max(vals, key=lambda t: t[0]), min(vals, key=lambda t: t[0])
        over = [_jaccard(c["_results"]) for c in cands]
        verdict = "closes the gap" if hi[0] >= target else "does not close the gap"
        out.append(f"`{knob}`: {kind} AUROC ranges {_fmt(lo[0])} (`{_value(lo[1]['knobs'][knob])}`) to "
                   f"{_fmt(hi[0])} (`{_value(hi[1]['knobs'][knob])}`) against `{ref_name}`'s {_fmt(target)} on "
                   f"the same seed(s): it {verdict}"
                   + (f" (head overlap {_fmt(min(over), 2)}–{_fmt(max(over), 2)})." if not any(map(math.isnan, over))
                      else "."))
    if pending:
        out.append(f"Not yet measured (no candidates differing only there; the search resumes): {', '.join(pending)}.")
    return out


def _finetuning_alone(finals: dict[str, list[dict]], ref: list[dict], ref_name: str, gap: float, key: str,
                      kind: str) -> list[str]:
    """How much of the gap the extra training explains on its own: each entry of the suite that
    is the single model given extra fine-tuning, against the reference."""
    from uqbench.bench import claims

    out = []
    for entry, objs in sorted(finals.items()):
        if not objs or any(claims.role_of(o["params"]) != "single-ft" for o in objs):
            continue
        delta = _mean(objs, key) - _mean(ref, key)
        out.append(f"Extra training alone: `{entry}` (the single model given extra fine-tuning, {len(objs)} "
                   f"seed{'s' * (len(objs) > 1)}) has {kind} AUROC {_fmt(_mean(objs, key))} against `{ref_name}`'s "
                   f"{_fmt(_mean(ref, key))} ({delta:+.3f}), "
                   + (f"so fine-tuning on the training set by itself accounts for {min(delta / gap, 1):.0%} of "
                      f"the gap ({gap:+.3f})." if delta < 0 else "so the extra training by itself does not "
                                                                  "explain the gap."))
    return out


def _selection_noise(rec: dict, chosen: list[dict]) -> list[str]:
    """How far apart the candidates' validation objectives lie, against how much the chosen
    configuration's own objective moves from seed to seed: a yardstick for the choice."""
    from uqbench.bench.tuning import objective_value

    per_seed = [objective_value(o.get("val_metrics", {}), rec["rule"]["objective"]) for o in chosen]
    per_seed = [v for v in per_seed if v is not None]
    objs = [c["objective"] for c in rec["candidates"] if c["objective"] is not None]
    win = rec.get("winner")
    if len(per_seed) < 2 or len(objs) < 2 or not win:
        return []
    sd = float(np.std(per_seed, ddof=1))
    close = sum(1 for v in objs if v - win["objective"] <= sd) - 1
    if close == 0:
        verdict = "no other candidate lies within one seed's noise of the winner"
    else:
        verdict = (f"{close} other candidate{'s lie' if close > 1 else ' lies'} within one seed's noise of the "
                   f"winner and the data do not separate {'them' if close > 1 else 'it'} from the winner")
    return [f"Selection: the {len(objs)} candidates' validation objectives span {max(objs) - min(objs):.4f}; the "
            f"chosen configuration's own objective has a standard deviation of {sd:.4f} over its {len(per_seed)} "
            f"seeds, so {verdict}."]


def not_started(recs: list[dict]) -> dict[str, list[str]]:
    """Per study title, the searches that registered suites declare and that have no record yet,
    with the rule and spaces they will use (read from the suite files), as Markdown lines."""
    from uqbench.bench import suite as suites
    from uqbench.bench.tuning import space_size

    have = {(r["suite"], r["task"], r["entry"]) for r in recs}
    out: dict[str, list[str]] = defaultdict(list)
    for name in suites.available():
        s = suites.load(name)
        if s.tuning is None:
            continue
        rows = []
        for t in s.tasks:
            for sp in s.tuning.spaces:
                if (name, t.name, sp.entry) not in have:
                    knobs = sp.knobs_for(t.name)
                    runs = space_size(sp, t.name) if sp.search == "grid" else 1 + sum(len(v) - 1 for v in knobs.values())
                    rows.append([f"`{t.name}`", f"`{sp.entry}` (`{sp.method}`)", sp.search,
                                 ", ".join(f"`{k}`" for k in knobs), str(runs)])
        if rows:
            out[s.tuning.title] += [
                f"Searches of suite `{name}` not started yet (rule: minimise {_rule(s.tuning.objective)} on "
                f"seed(s) {', '.join(map(str, s.tuning.seeds))}, validation data only; "
                f"`python -m uqbench tune --suite {name}` runs them):", "",
                *_table(["Task", "Entry", "Search", "Knobs", "Candidates"], rows), ""]
    return out


def markdown(root: Path, jobs: list[dict], figures_dir: Path) -> str:
    """The study section(s) of the leaderboard ('' without tuning records or declared searches);
    draws the figures,
    linked relative to ``figures_dir`` (the leaderboard's folder)."""
    from uqbench.bench.figures import _rel

    recs = load_records(root)
    pending = not_started(recs)
    lines = []
    for title in sorted({r["title"] for r in recs} | set(pending)):
        lines += [f"## {title}", "",
                  "Each tuned entry's configuration is chosen by the stated rule on validation data; the "
                  "test-split numbers below are shown for reading and are not used to choose. Rows of the "
                  "chosen configurations on every seed are in the suite's section above.", ""]
        lines += pending.get(title, [])
        for rec in [r for r in recs if r["title"] == title]:
            finals = defaultdict(list)
            for j in jobs:
                if j["suite"] == rec["suite"] and j["task"] == rec["task"]:
                    finals[j["method"]].append(j)
            link = _rel(Path(root) / rec["_path"], figures_dir)
            lines += [f"### `{rec['suite']}` / `{rec['task']}` / `{rec['entry']}`", ""] + _record_lines(rec, link)
            fig = Path(root) / "figures" / f"{rec['suite']}__{rec['task']}__{rec['entry']}-knobs.png"
            figure(rec, _same_seeds(rec, finals.get(rec.get("reference"), [])), fig, finals.get(rec["entry"], []))
            if fig.exists():
                lines += ["", f"Figure: [how accuracy, ECE and OOD AUROC move with each knob]({_rel(fig, figures_dir)})"]
            words = conclusion(rec, finals)
            if words:
                lines += ["", "Conclusion (generated from the numbers):", ""] + [f"- {w}" for w in words]
            lines.append("")
    return "\n".join(lines)
