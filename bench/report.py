"""Aggregate result files into ``results/summary.csv``, ``leaderboard.md`` (and its HTML page,
``bench/html.py``), ``results/runs.json`` and figures.

Everything here is derived from the result files alone (no training). A result file that is
unreadable or does not match the schema stops the report with its name: it never silently
drops a row. The same inputs give a byte-identical leaderboard.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from uqbench.bench import claims, costbench, html, intervals, results, verdicts

# (metric key, column title, higher is better)
MAIN = [
    ("test/acc", "Acc ↑", True),
    ("test/nll", "NLL ↓", False),
    ("test/brier", "Brier ↓", False),
    ("test/ece", "ECE ↓", False),
    ("test/aurc", "AURC ↓", False),
    ("ood_near/auroc_msp", "AUROC near ↑", True),
    ("ood_far/auroc_msp", "AUROC far ↑", True),
    ("ood_mean/fpr95_msp", "FPR95 ↓", False),
    ("shift/mean/acc", "Shift acc ↑", True),
    ("shift/mean/ece", "Shift ECE ↓", False),
]
COST = [("params", "Params ×"), ("analytic_flops", "FLOPs ×"), ("latency_ms", "Latency ×"), ("throughput", "Throughput ×")]
OOD_KEYS = [("auroc_msp", True), ("auroc_entropy", True), ("auroc_mi", True), ("aupr_msp", True), ("fpr95_msp", False)]

LEGEND = """\
Columns: **Acc** top-1 accuracy; **NLL** negative log-likelihood of the predictive distribution
(mean of member softmaxes); **Brier** squared error summed over classes; **ECE** expected
calibration error, 15 equal-width bins of top-label confidence; **AURC** area under the
risk-coverage curve of max-probability confidence; **AUROC near / far** OOD detection with the
negated max probability as score (higher score = more likely OOD), averaged over near- / far-OOD
sets; **FPR95** fraction of OOD samples accepted at the threshold keeping 95 % of
in-distribution samples, averaged over all OOD sets; **Shift acc / ECE** averaged over every
corruption and severity. Cost columns are ratios to the `single` model of the same task
(params, forward FLOPs per sample from the analytic cost model, latency at the small batch,
throughput at the large batch).
Values are mean ± standard deviation over seeds; the best mean of each column is in bold.
"""


def _device(j: dict) -> str:
    """The accelerator's name where one was used (e.g. ``NVIDIA H200``), else ``cpu``."""
    prov = j["provenance"]
    return prov.get("accelerator") or prov.get("device", "?")


def load_all(root: Path) -> tuple[list[dict], list[dict]]:
    """Every result file under ``root/runs``: (finished jobs, skipped tasks and jobs)."""
    ok, skipped = [], []
    for path in sorted((root / "runs").rglob("*.json")):
        obj = results.read(path)  # raises ResultError naming the file
        obj["_path"] = str(path.relative_to(root))
        (ok if obj["status"] == "ok" else skipped).append(obj)
    return ok, skipped


def summary_frame(jobs: list[dict]) -> pd.DataFrame:
    rows = []
    for j in jobs:
        row = {"suite": j["suite"], "task": j["task"], "method": j["method"], "seed": j["seed"],
               "members": j["cost"].get("members", math.nan), "device": _device(j),
               "commit": j["provenance"].get("git_commit", "")[:10], "file": j["_path"]}
        row.update(j["metrics"])
        row.update({f"cost/{k}": v for k, v in j["cost"].items()})
        row.update({f"wall/{k}": v for k, v in j["wall"].items()})
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    fixed = ["suite", "task", "method", "seed", "members", "device", "commit", "file"]
    return df[fixed + sorted(c for c in df.columns if c not in fixed)].sort_values(["suite", "task", "method", "seed"])


def _fmt(values: list[float]) -> str:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return "–"
    mean = float(np.mean(v))
    digits = 3 if abs(mean) < 100 else 1
    return f"{mean:.{digits}f} ± {float(np.std(v, ddof=1)):.{digits}f}" if len(v) > 1 else f"{mean:.{digits}f}"


def _num(v: float, fmt: str, prefix: str = "") -> str:
    return "–" if math.isnan(v) else f"{prefix}{v:{fmt}}"


def _mean(values: list[float]) -> float:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _bold_best(cells: dict[str, str], means: dict[str, float], higher: bool) -> None:
    finite = {k: v for k, v in means.items() if not math.isnan(v)}
    if len(finite) > 1:
        best = (max if higher else min)(finite.values())
        for k, v in finite.items():
            if v == best:
                cells[k] = f"**{cells[k]}**"


def shift_source(task_config: dict) -> str:
    """Which corruptions a result's shift sets are: a task records ``shift_source`` when it read
    the published arrays; without it (also every result written before) they are the project's."""
    source = task_config.get("shift_source")
    if source:
        return f"the published {source} arrays"
    return "the project's own CIFAR-10-C-style corruptions (the fallback when the published arrays are absent)"


def _group(jobs: list[dict]) -> str:
    """The leaderboard group a method's results declare (``extra.group``); "" for the main table."""
    return next((j["extra"]["group"] for j in jobs if j.get("extra", {}).get("group")), "")


def task_section(task: str, jobs: list[dict], figures: dict[str, str]) -> list[str]:
    by_method: dict[str, list[dict]] = defaultdict(list)
    for j in jobs:
        by_method[j["method"]].append(j)
    one = verdicts.reference_entry(jobs)
    names = sorted(by_method, key=lambda m: (m != one, m))
    present = [(k, t, h) for k, t, h in MAIN if any(k in j["metrics"] for j in jobs)]
    ref = {k: _mean([j["cost"].get(k, math.nan) for j in by_method[one]]) for k, _ in COST} if one else {}

    columns: dict[str, dict[str, str]] = defaultdict(dict)
    for key, title, higher in present:
        means = {}
        for m in names:
            vals = [j["metrics"].get(key, math.nan) for j in by_method[m]]
            columns[title][m], means[m] = _fmt(vals), _mean(vals)
        _bold_best(columns[title], {m: v for m, v in means.items() if not _group(by_method[m])}, higher)
    rows: dict[str, list[list[str]]] = defaultdict(list)  # by group ("" = the main table)
    for m in names:
        js = by_method[m]
        row = [f"`{m}`{' (external)' if 'external' in js[0] else ''}", str(js[0]["cost"].get("members", "")), str(len(js))]
        row += [columns[t][m] for _, t, _ in present]
        for key, _ in COST:
            r = _mean([j["cost"].get(key, math.nan) for j in js]) / ref[key] if ref.get(key) else math.nan
            row.append("–" if math.isnan(r) else f"{r:.2f}")
        rows[_group(js)].append(row)
    lines = [f"### Task `{task}`", ""]
    header = ["Method", "M", "Seeds"] + [t for _, t, _ in present] + [t for _, t in COST]
    lines += _table(header, rows.pop("", []))
    for group, grows in sorted(rows.items()):
        lines += ["", f"*{group[0].upper() + group[1:]}*, while the methods above start from the pretrained model: "
                  "not these methods at their best (bold marks the best of the table above).", ""]
        lines += _table(header, grows)

    ood_sets = sorted({k.split("/")[1] for j in jobs for k in j["metrics"] if k.startswith("ood/")})
    if ood_sets:
        near = set(jobs[0].get("near_ood", []))
        lines += ["", "OOD detection per set (AUROC with max-probability / entropy / mutual-information scores, AUPR and FPR95 with max-probability):", ""]
        header = ["Method"] + [f"{s}{' (near)' if s in near else ''} {k}" for s in ood_sets for k, _ in OOD_KEYS]
        cells = {m: {} for m in names}
        for s in ood_sets:
            for k, higher in OOD_KEYS:
                col = {m: _fmt([j["metrics"].get(f"ood/{s}/{k}", math.nan) for j in by_method[m]]) for m in names}
                _bold_best(col, {m: _mean([j["metrics"].get(f"ood/{s}/{k}", math.nan) for j in by_method[m]])
                                 for m in names if not _group(by_method[m])}, higher)
                for m in names:
                    cells[m][(s, k)] = col[m]
        lines += _table(header, [[f"`{m}`"] + [cells[m][(s, k)] for s in ood_sets for k, _ in OOD_KEYS] for m in names])

    sevs = sorted({k.split("/")[1] for j in jobs for k in j["metrics"] if k.startswith("shift/sev")})
    if sevs:
        sources = "; ".join(sorted({shift_source(j.get("task_config", {})) for j in jobs}))
        lines += ["", f"Covariate shift (mean over corruptions) per severity: accuracy / ECE / NLL. Corruptions: {sources}.", ""]
        rows = []
        for m in names:
            row = [f"`{m}`"]
            for s in sevs:
                row.append(" / ".join(_fmt([j["metrics"].get(f"shift/{s}/{k}", math.nan) for j in by_method[m]])
                                      for k in ("acc", "ece", "nll")))
            rows.append(row)
        lines += _table(["Method"] + [f"severity {s.removeprefix('sev')}" for s in sevs], rows)

    notes = sorted({f"`{m}`: {j['extra']['note']}" for m in names for j in by_method[m] if j["extra"].get("note")})
    for m in names:
        overlap = [j["extra"]["mean_jaccard"] for j in by_method[m] if "mean_jaccard" in j["extra"]]
        if overlap:
            notes.append(f"`{m}`: members' head sets overlap by {_fmt(overlap)} (mean pairwise Jaccard per layer; 1 = identical)")
    notes += sorted({n for j in jobs for n in j.get("notes", [])})
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    if figures:
        lines += ["", "Figures: " + ", ".join(f"[{t}]({p})" for t, p in sorted(figures.items()))]
    return lines + [""]


def _ci(row: dict) -> str:
    """``+0.012 [-0.003, +0.027]`` (a dagger marks an interval from the seed spread alone)."""
    if math.isnan(row["diff"]):
        return "–"
    if math.isnan(row["lo"]):
        return f"{row['diff']:+.3f} [no interval]"
    mark = "†" if row["interval"] == "seeds only" else "‡" if row["seeds"] == 1 else ""
    return f"{row['diff']:+.3f} [{row['lo']:+.3f}, {row['hi']:+.3f}]{mark}"


INTERVAL_LEGEND = (
    "Differences are paired (same task, seed, task configuration and test samples) and averaged over seeds, with "
    "95 % intervals that combine a paired bootstrap over test samples with the seed spread "
    f"(`bench/intervals.py`: {intervals.N_BOOT} resamples; half-width sqrt(t²(n-1) S²/n + z² C), S² the variance of "
    "the per-seed differences over the n seeds, C the bootstrap covariance of the differences of two seeds, i.e. "
    "the test-sample noise that the seeds share; its coverage is tested on synthetic data). † the logits were not "
    "in the results folder: a t interval over seeds from the stored metrics; ‡ one seed: the interval covers "
    "test samples only."
)


def _by_reference(rows: list[dict]) -> dict[tuple, dict[str, dict]]:
    table: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        table[(r["claim"], r["entry"], r["variant"], r["headline_variant"])][r["reference"]] = r
    return table


def claims_section(jobs: list[dict], skipped: list[dict], timings: Sequence[costbench.Timing],
                   evidence: verdicts.Evidence) -> list[str]:
    """The Hydra paper's claims: paired differences with 95 % intervals against each reference
    role and a verdict, per task; then the cost and zero-shot claims."""
    ref_label = {r.name: r.label for r in claims.ROLES}
    refs = claims.REFERENCES
    lines = ["## Paper claims", "",
             f"Claims of {claims.PAPER} checked against this benchmark's own result files: {claims.SOURCE}. "
             f"For every task with a Hydra entry (suites ordered {' > '.join(verdicts.SUITE_RANK)}; `quick` only where "
             "nothing else ran), each cell is Hydra minus the reference, its 95 % interval and the verdict. "
             "Roles come from each result's registered method and hyper-parameters, not the entry's name: "
             "`single` is the reference model with default hyper-parameters, `single-ft` the single model given "
             "extra fine-tuning, and each Hydra entry is its own row, labelled with its head-scoring criterion and "
             f"the hyper-parameters it changes (*{claims.DEFAULT_RECIPE}*: it changes none, i.e. H/M heads per member, merged "
             "MLP, 0.25 x epochs of fine-tuning per member at 0.2 x the learning rate, Gumbel top-k; in the "
             "`hydra-study` suite, `hydra` is chosen on validation data); "
             f"the paper's headline numbers are for {claims.VARIANTS[claims.HEADLINE_VARIANT]} (marked ★). "
             "Near- and far-OOD sets are reported separately (max-probability score).", "",
             INTERVAL_LEGEND, "",
             "Verdict rule, on the interval turned so that positive favours Hydra: *better* holds when it lies "
             "above 0 and does not hold when it lies below 0; *at least as good* holds when it lies above -margin "
             "and does not hold when it lies below -margin; *on par* holds when it lies inside ±margin and does not "
             "hold when it lies wholly outside (marked *Hydra better* when above +margin); anything else, or "
             "fewer than 2 paired seeds, is inconclusive. "
             "Small CPU budgets train far from convergence: read verdicts from `quick` as a pipeline check, not as "
             "evidence.", ""]
    lines += _table(["Claim", "Metric"] + [f"vs {ref_label[r]}" for r in refs],
                    [[c.name, f"`{c.metric}` {'↑' if c.higher else '↓'}"] + [c.tests[r].describe() for r in refs]
                     for c in claims.CLAIMS]) + [""]
    rows = verdicts.claim_rows(jobs, evidence)
    for suite, task in dict.fromkeys((r["suite"], r["task"]) for r in rows):
        sub = [r for r in rows if r["suite"] == suite and r["task"] == task]
        body = []
        for (claim, entry, variant, headline), cells in _by_reference(sub).items():
            body.append([claim, f"`{entry}`: {variant}{' ★' if headline else ''}"]
                        + [f"{_ci(cells[r])} **{cells[r]['verdict']}**" if r in cells else "–" for r in refs])
        lines += [f"### Claims on `{task}` ({suite})", ""]
        lines += _table(["Claim", "Hydra entry"] + [f"vs {ref_label[r]}" for r in refs], body)
        notes = sorted({f"`{r['entry']}` vs {ref_label[r['reference']]} (`{r['reference_entry']}`): {r['note']}"
                        if r["reference_entry"] else f"{ref_label[r['reference']]}: {r['note']}"
                        for r in sub if r["note"]})
        lines += ([""] + [f"- {n}" for n in notes] if notes else []) + [""]
    lines += ["### Cost and zero-shot claims", ""]
    return lines + _table(["Claim", "Task", "Measured", "Verdict"], _other_claims(jobs, skipped, timings)) + [""]


def _other_claims(jobs: list[dict], skipped: list[dict], timings: Sequence[costbench.Timing]) -> list[list[str]]:
    rows = []
    measured_any = False
    for suite, task in verdicts.claim_groups(jobs):
        sub = [j for j in jobs if j["suite"] == suite and j["task"] == task]
        roles, by_entry = verdicts.entries_by_role(sub)
        ref = verdicts.reference_entry(sub)
        one = _mean([j["cost"]["latency_ms"] for j in by_entry.get(ref, [])])
        if math.isnan(one):
            continue
        ratios = {e: _mean([j["cost"]["latency_ms"] for j in by_entry[e]]) / one for e in roles[claims.SUBJECT]}
        dtype = sorted({j["cost"].get("dtype", "?") for j in sub})
        device = sorted({_device(j) for j in sub})
        if "bfloat16" in dtype:
            measured_any = True
            found = {e: costbench.verdict(r) for e, r in ratios.items()}
            verdict = next(iter(found.values())) if len(set(found.values())) == 1 else \
                "; ".join(f"`{e}`: {v}" for e, v in found.items())
        else:
            verdict = "not applicable: CPU float32, shown for reference (the claim is for bfloat16 on a GPU)"
        measured = ", ".join(f"`{e}` {r:.2f}x" for e, r in ratios.items())
        rows.append([claims.COST_CLAIM, f"`{task}` ({suite})", f"Hydra latency {measured} single ({', '.join(device)}, "
                     f"{', '.join(dtype)})", f"**{verdict}**"])
    for t, ratio in costbench.ratios(timings):
        if t.dtype == "bfloat16":
            measured_any = True
            rows.append([claims.COST_CLAIM, f"{t.scale}, batch {t.batch} (micro-benchmark)",
                         f"Hydra {ratio:.2f}x single ({t.device}, {t.dtype}, `{t.file}`)", f"**{costbench.verdict(ratio)}**"])
    if not measured_any:
        rows.append([claims.COST_CLAIM, "all", "no GPU result files", "**not measurable here**: no GPU was available to this benchmark's runs"])
    zs_tasks = sorted({(j["suite"], j["task"]) for j in jobs if j["task_config"].get("task") == claims.ZERO_SHOT_TASK})
    if zs_tasks:
        for suite, task in zs_tasks:
            rows.append([claims.ZERO_SHOT_CLAIM, f"`{task}` ({suite})", "see the claims on this task above", "**see above**"])
    else:
        zs = [s for s in skipped if s["task"] == claims.ZERO_SHOT_TASK]
        reason = zs[0]["reason"].split(". ")[0][:200] if zs else "task not run"
        rows.append([claims.ZERO_SHOT_CLAIM, f"`{claims.ZERO_SHOT_TASK}`", "–", f"**not measurable here**: {reason}"])
    return rows


def single_section(rows: list[dict], reference: str) -> list[str]:
    """The "difference to single" table of one task from ``verdicts.single_rows``."""
    if not rows:
        return []
    metrics = list(dict.fromkeys((r["claim"], r["higher_is_better"]) for r in rows))
    cells = {(r["entry"], r["claim"]): _ci(r) for r in rows}
    entries = list(dict.fromkeys(r["entry"] for r in rows))
    lines = [f"Difference to `{reference}` (entry minus `{reference}`, paired by seed, 95 % interval as in the claims; "
             "† seed spread only, ‡ one seed):", ""]
    lines += _table(["Method"] + [f"{c} {'↑' if h else '↓'}" for c, h in metrics],
                    [[f"`{e}`"] + [cells.get((e, c), "–") for c, _ in metrics] for e in entries])
    notes = sorted({f"`{r['entry']}`: {r['note']}" for r in rows if r["note"]})
    return lines + ([""] + [f"- {n}" for n in notes] if notes else []) + [""]


SLICE_KEYS = ("train_per_class",)


def slice_section(jobs: list[dict]) -> list[str]:
    """Each task trained on a slice of its training set beside the same reference model (same
    seed, every other setting equal) trained on the whole set, when a suite holds that run."""
    singles = [j for j in jobs if claims.role_of(j["params"]) == claims.REFERENCE]
    rest = lambda j: {k: v for k, v in j["task_config"].items() if k not in SLICE_KEYS}  # noqa: E731
    rows = []
    for full in (j for j in singles if j["task_config"].get("train_per_class") is None):
        for part in singles:
            if (part is not full and part["seed"] == full["seed"] and part["task"] == full["task"]
                    and part["task_config"].get("train_per_class") is not None and rest(part) == rest(full)):
                acc = part["metrics"]["test/acc"], full["metrics"]["test/acc"]
                rows.append([f"`{full['task']}`", f"`{part['suite']}`: {part['task_config']['train_per_class']} per class",
                             f"{acc[0]:.3f}", f"`{full['suite']}`: all", f"{acc[1]:.3f}", f"{acc[1] - acc[0]:+.3f}",
                             str(full["seed"])])
    if not rows:
        return []
    return ["## Training-set slices", "",
            "The `single` model on the slice of the training set a suite uses, and on the whole set (same seed, "
            "every other setting equal), measured once: how far the slice sits from convergence.", "",
            *_table(["Task", "Slice", "Acc", "Whole set", "Acc", "Difference", "Seed"], sorted(rows)), ""]


def cost_section(jobs: list[dict], timings: Sequence[costbench.Timing]) -> list[str]:
    """Absolute inference cost per task and method, with the device and precision named, and the
    side-by-side micro-benchmark timings."""
    if not jobs and not timings:
        return []
    rows = []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for j in (j for j in jobs if "latency_ms" in j["cost"]):  # entries scored from saved predictions have no cost
        key = (j["suite"], j["task"], _device(j), str(j["cost"].get("dtype", "?")))
        groups[key].append(j)
    for (suite, task, device, dtype), js in sorted(groups.items()):
        by_method: dict[str, list[dict]] = defaultdict(list)
        for j in js:
            by_method[j["method"]].append(j)
        one = verdicts.reference_entry(js)
        ref = {k: _mean([j["cost"].get(k, math.nan) for j in by_method.get(one, [])])
               for k in ("analytic_flops", "latency_ms", "throughput")}
        for m in sorted(by_method, key=lambda m: (m != one, m)):
            c = lambda k: _mean([j["cost"].get(k, math.nan) for j in by_method[m]])  # noqa: E731
            b_small, b_large = by_method[m][0]["cost"].get("batch_small"), by_method[m][0]["cost"].get("batch_large")
            flops = c("analytic_flops") / ref["analytic_flops"]
            small = c("latency_ms") / ref["latency_ms"]  # time ratios at the small and the large batch
            large = ref["throughput"] / c("throughput")
            rows.append([
                f"`{task}` ({suite})", f"`{m}`", f"{device}, {dtype}", f"{c('params') / 1e6:.3g}",
                _num(c("analytic_flops") / 1e6, ".4g"), _num(flops, ".2f", "×"),
                f"{c('latency_ms'):.2f} ({_num(small, '.2f', '×')})", f"{c('throughput'):.0f} ({_num(large, '.2f', '×')})",
                f"{_num(flops / small, '.2f')} / {_num(flops / large, '.2f')}",
                f"{c('peak_mem_mb'):.0f}", f"{b_small} / {b_large}", _num(c("cpu_load"), ".1f"),
            ])
    header = ["Task", "Method", "Device, dtype", "Params (M)", "MFLOPs / sample", "FLOPs × single",
              "Latency ms (time × single)", "Throughput /s (time × single)", "Efficiency (latency / throughput)",
              "Peak mem MB", "Batch (latency / throughput)", "CPU load"]
    lines = ["## Inference cost", ""]
    if rows:
        lines += ["Measured in the same run as each result (median of repeats after warm-up). On the CPU, peak "
                  "memory is the growth of resident memory during the large-batch run; on a GPU, CUDA's peak allocation. "
                  "CPU load is the one-minute load average per core when the measurement began: well above 1, other work "
                  "competed for the cores and the timings are inflated (compare ratios measured side by side instead). "
                  "MFLOPs are the analytic forward FLOPs per sample of the method's networks (`methods.flops`: matrix "
                  "products and attention, as `torch.utils.flop_counter` counts them on every device). Time × single is "
                  "the latency ratio at the small batch and the inverse throughput ratio at the large one; efficiency is "
                  "the FLOP ratio divided by the time ratio: 1 means the method is as fast as its arithmetic allows "
                  "relative to the single model, below 1 it loses time to its implementation (copies, element-wise work "
                  "on every stream, launches), above 1 it uses the hardware better than the single model.", ""]
        lines += _table(header, rows) + [""]
    if timings:
        lines += ["### Side-by-side micro-benchmark", "",
                  "`make cost-benchmark` (`tests/test_cost_benchmark.py`, pytest-benchmark, median of rounds): the single "
                  "model, a deep ensemble run member after member, and the fused Hydra network (M = 3, heads split evenly, "
                  "MLP shared and applied to every stream; `hydra_fork3`: first 3 blocks shared; `hydra_permember_mlp`: "
                  "one MLP per member), random weights, all timed in one run on one machine. `cifar-vit` is the 192-wide "
                  "6-block ViT at 32 px, `vit-b16` ViT-B/16 at 224 px with 1000 classes (the paper's vision backbone).", ""]
        lines += _table(costbench.HEADER, costbench.table_rows(timings)) + [""]
    return lines


def _missing_runs(suite_name: str, jobs: list[dict], skipped: list[dict]) -> list[str]:
    """Jobs the suite file asks for that have neither a result nor a skip record."""
    from uqbench.bench import suite as suites

    if suite_name not in suites.available():
        return []
    s = suites.load(suite_name)
    done = {(j["task"], j["method"], j["seed"]) for j in jobs}
    skip_task = {k["task"] for k in skipped if not k.get("method")}
    skip_job = {(k["task"], k["method"]) for k in skipped if k.get("method")}
    seed_list = lambda seeds: f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"  # noqa: E731
    out = []
    for t in s.tasks:
        if t.name in skip_task:
            continue
        seeds = s.seeds_for(t.name)
        missing = {m.name: [seed for seed in seeds if (t.name, m.name, seed) not in done]
                   for m in s.methods if (t.name, m.name) not in skip_job}
        missing = {m: v for m, v in missing.items() if v}
        if len(missing) == len(s.methods) and all(len(v) == len(seeds) for v in missing.values()):
            out.append(f"`{t.name}`: every entry, {seed_list(seeds)}")
            continue
        out += [f"`{t.name}` / `{m}` {seed_list(seeds)}" for m, seeds in missing.items()]
    return out


def _unhashed(suite_name: str, jobs: list[dict]) -> list[str]:
    """A line naming the results that predate checkpoint hashes in their provenance."""
    old = [j for j in jobs if "checkpoints" not in j["provenance"]]
    if not old:
        return []
    return [f"{len(old)} of {len(jobs)} results predate checkpoint hashes in their provenance: "
            f"they do not record which checkpoints they started from "
            f"(resuming the suite, `python -m uqbench run --suite {suite_name}`, reruns them).", ""]


def render(jobs: list[dict], skipped: list[dict], figures: dict[tuple[str, str], dict[str, str]],
           timings: Sequence[costbench.Timing] = (), evidence: verdicts.Evidence | None = None) -> str:
    """The leaderboard's Markdown. ``evidence`` holds the logits behind the intervals; without it,
    intervals come from the seed spread of the stored metrics."""
    evidence = evidence or verdicts.Evidence(None)
    lines = ["# Leaderboard", "",
             "Generated by `make leaderboard` from the result files in `results/runs/`; do not edit by hand.",
             "Per-job numbers are in `results/summary.csv`.", "", LEGEND]
    lines += claims_section(jobs, skipped, timings, evidence)
    suites = sorted({j["suite"] for j in jobs} | {s["suite"] for s in skipped}, key=lambda s: (verdicts.suite_rank(s), s))
    for suite in suites:
        sj = [j for j in jobs if j["suite"] == suite]
        devices = sorted({_device(j) for j in sj})
        commits = sorted({j["provenance"].get("git_commit", "?")[:10] for j in sj})
        seeds = sorted({j["seed"] for j in sj})
        lines += [f"## Suite `{suite}`", "",
                  f"Seeds: {', '.join(map(str, seeds)) or '–'}; device: {', '.join(devices) or '–'}; "
                  f"commits: {', '.join(commits) or '–'}; cost dtype: "
                  f"{', '.join(sorted({str(j['cost'].get('dtype', '?')) for j in sj})) or '–'}.", ""]
        lines += _unhashed(suite, sj)
        for task in sorted({j["task"] for j in sj}):
            tj = [j for j in sj if j["task"] == task]
            lines += task_section(task, tj, figures.get((suite, task), {}))
            lines += single_section(verdicts.single_rows(tj, evidence), verdicts.reference_entry(tj) or "")
        missing = _missing_runs(suite, sj, [s for s in skipped if s["suite"] == suite])
        if missing:
            lines += ["Not yet run (the suite resumes them): " + "; ".join(missing) + ".", ""]
        ran = {j["task"] for j in sj}  # a task skipped on a later run where its data were absent keeps its results
        sk = [s for s in skipped if s["suite"] == suite and (s.get("method") or s["task"] not in ran)]
        if sk:
            lines += ["Skipped:", ""]
            lines += [f"- `{s['task']}`{' / `' + s['method'] + '`' if s.get('method') else ''}: {s['reason']}" for s in sk]
            lines += [""]
    lines += slice_section(jobs)
    lines += cost_section(jobs, timings)
    return "\n".join(lines).rstrip() + "\n"


def build(root: Path, out: Path) -> Path:
    """Write ``root/summary.csv``, figures under ``root/figures``, the leaderboard ``out``, its
    HTML page beside it (``.html``) and every run as ``root/runs.json``."""
    from uqbench.bench import figures as figs
    from uqbench.bench import study

    jobs, skipped = load_all(root)
    timings = costbench.load(root)  # read every input before writing anything
    evidence = verdicts.Evidence(root)
    for j in jobs:
        evidence.replicates(j)  # raises ResultError naming damaged logits
    df = summary_frame(jobs)
    results.write_atomic(root / "summary.csv", df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    made = figs.make_all(root, jobs, out.parent)
    md = render(jobs, skipped, made, timings, evidence) + study.markdown(root, jobs, out.parent)
    results.write_atomic(out, md)
    html.write(md, jobs, skipped, out.with_suffix(".html"), root / "runs.json")
    return out
