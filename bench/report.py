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

from uqbench.bench import costbench, html, results

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
COST = [("params", "Params ×"), ("flops", "FLOPs ×"), ("latency_ms", "Latency ×"), ("throughput", "Throughput ×")]
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
(params, forward FLOPs per sample, latency at the small batch, throughput at the large batch).
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


def task_section(task: str, jobs: list[dict], figures: dict[str, str]) -> list[str]:
    by_method: dict[str, list[dict]] = defaultdict(list)
    for j in jobs:
        by_method[j["method"]].append(j)
    names = sorted(by_method, key=lambda m: (m != "single", m))
    present = [(k, t, h) for k, t, h in MAIN if any(k in j["metrics"] for j in jobs)]
    ref = {k: _mean([j["cost"][k] for j in by_method["single"]]) for k, _ in COST} if "single" in by_method else {}

    columns: dict[str, dict[str, str]] = defaultdict(dict)
    for key, title, higher in present:
        means = {}
        for m in names:
            vals = [j["metrics"].get(key, math.nan) for j in by_method[m]]
            columns[title][m], means[m] = _fmt(vals), _mean(vals)
        _bold_best(columns[title], means, higher)
    rows = []
    for m in names:
        js = by_method[m]
        row = [f"`{m}`{' (external)' if 'external' in js[0] else ''}", str(js[0]["cost"].get("members", "")), str(len(js))]
        row += [columns[t][m] for _, t, _ in present]
        for key, _ in COST:
            r = _mean([j["cost"].get(key, math.nan) for j in js]) / ref[key] if ref.get(key) else math.nan
            row.append("–" if math.isnan(r) else f"{r:.2f}")
        rows.append(row)
    lines = [f"### Task `{task}`", ""]
    lines += _table(["Method", "M", "Seeds"] + [t for _, t, _ in present] + [t for _, t in COST], rows)

    ood_sets = sorted({k.split("/")[1] for j in jobs for k in j["metrics"] if k.startswith("ood/")})
    if ood_sets:
        near = set(jobs[0].get("near_ood", []))
        lines += ["", "OOD detection per set (AUROC with max-probability / entropy / mutual-information scores, AUPR and FPR95 with max-probability):", ""]
        header = ["Method"] + [f"{s}{' (near)' if s in near else ''} {k}" for s in ood_sets for k, _ in OOD_KEYS]
        cells = {m: {} for m in names}
        for s in ood_sets:
            for k, higher in OOD_KEYS:
                col = {m: _fmt([j["metrics"].get(f"ood/{s}/{k}", math.nan) for j in by_method[m]]) for m in names}
                _bold_best(col, {m: _mean([j["metrics"].get(f"ood/{s}/{k}", math.nan) for j in by_method[m]]) for m in names}, higher)
                for m in names:
                    cells[m][(s, k)] = col[m]
        lines += _table(header, [[f"`{m}`"] + [cells[m][(s, k)] for s in ood_sets for k, _ in OOD_KEYS] for m in names])

    sevs = sorted({k.split("/")[1] for j in jobs for k in j["metrics"] if k.startswith("shift/sev")})
    if sevs:
        lines += ["", "Covariate shift (mean over corruptions) per severity: accuracy / ECE / NLL:", ""]
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


def _stats(jobs: list[dict], method: str, key: str) -> tuple[float, float, int]:
    v = [j["metrics"][key] for j in jobs if j["method"] == method and key in j["metrics"]]
    return (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v)) if v else (math.nan, 0.0, 0)


def _compare(jobs: list[dict], key: str, higher: bool, margin: float = 0.0) -> tuple[str, str] | None:
    """Hydra against Deep Ensembles on one metric: (measured, verdict) or None if unmeasured.

    "holds" when Hydra is at least as good up to ``margin`` plus one standard deviation of the
    seed spread (the larger of the two methods')."""
    h, sh, nh = _stats(jobs, "hydra", key)
    d, sd, nd = _stats(jobs, "deep_ensembles", key)
    if not nh or not nd:
        return None
    gap = (h - d) if higher else (d - h)
    ok = gap >= -(margin + max(sh, sd))
    seeds = f"{min(nh, nd)} seed{'s' if min(nh, nd) > 1 else ''}"
    return f"Hydra {h:.3f} vs Deep Ensembles {d:.3f} ({seeds})", "holds" if ok else "does not hold"


SUITE_RANK = ("paper", "gpu", "standard", "quick")  # most authoritative first


def _rank(suite: str) -> int:
    return SUITE_RANK.index(suite) if suite in SUITE_RANK else len(SUITE_RANK)


def _claim_suites(jobs: list[dict]) -> list[tuple[str, str]]:
    """Every (suite, task) with both Hydra and Deep Ensembles results, most authoritative suite
    first; ``quick`` only for tasks that no other suite has."""
    have = defaultdict(set)
    for j in jobs:
        have[(j["suite"], j["task"])].add(j["method"])
    pairs = [k for k, ms in have.items() if {"hydra", "deep_ensembles"} <= ms]
    tasks_beyond_quick = {t for s, t in pairs if s != "quick"}
    pairs = [(s, t) for s, t in pairs if s != "quick" or t not in tasks_beyond_quick]
    return sorted(pairs, key=lambda st: (st[1], _rank(st[0]), st[0]))


def claims_section(jobs: list[dict], skipped: list[dict], timings: Sequence[costbench.Timing]) -> list[str]:
    """The Hydra paper's claims, what was measured here for each, and a verdict."""
    rows = []
    tasks = _claim_suites(jobs)
    checks = [
        ("OOD detection at least as good as Deep Ensembles (AUROC, MSP, mean over OOD sets)", "ood_mean/auroc_msp", True, 0.0),
        ("FPR95 at least as good as Deep Ensembles (mean over OOD sets)", "ood_mean/fpr95_msp", False, 0.0),
        ("Calibration on par with Deep Ensembles (ECE within 0.01)", "test/ece", False, 0.01),
        ("Accuracy on par with Deep Ensembles (within 1 point)", "test/acc", True, 0.01),
    ]
    for claim, key, higher, margin in checks:
        for suite, task in tasks:
            sub = [j for j in jobs if j["suite"] == suite and j["task"] == task]
            res = _compare(sub, key, higher, margin)
            if res:
                rows.append([claim, f"`{task}` ({suite})", res[0], f"**{res[1]}**"])
    gpu = [j for j in jobs if j["cost"].get("dtype") == "bfloat16"]
    claim = "Inference cost close to one model: 1.07x the single model's latency in bfloat16"
    measured_any = False
    for suite, task in tasks:
        sub = [j for j in jobs if j["suite"] == suite and j["task"] == task]
        h = _mean([j["cost"]["latency_ms"] for j in sub if j["method"] == "hydra"])
        one = _mean([j["cost"]["latency_ms"] for j in sub if j["method"] == "single"])
        if math.isnan(h) or math.isnan(one):
            continue
        dtype = sorted({j["cost"].get("dtype", "?") for j in sub})
        device = sorted({_device(j) for j in sub})
        ratio = h / one
        if "bfloat16" in dtype:
            measured_any = True
            verdict = costbench.verdict(ratio)
        else:
            verdict = "not applicable: CPU float32, shown for reference (the claim is for bfloat16 on a GPU)"
        rows.append([claim, f"`{task}` ({suite})", f"Hydra latency {ratio:.2f}x single ({', '.join(device)}, {', '.join(dtype)})", f"**{verdict}**"])
    for t, ratio in costbench.ratios(timings):
        if t.dtype == "bfloat16":
            measured_any = True
            rows.append([claim, f"{t.scale}, batch {t.batch} (micro-benchmark)",
                         f"Hydra {ratio:.2f}x single ({t.device}, {t.dtype}, `{t.file}`)", f"**{costbench.verdict(ratio)}**"])
    if not gpu and not measured_any:
        rows.append([claim, "all", "no GPU result files", "**not measurable here**: no GPU was available to this benchmark's runs"])
    zs = [s for s in skipped if "clip" in s["task"]]
    zs_jobs = [j for j in jobs if "clip" in j["task"]]
    claim = "Zero-shot ImageNet-1k with CLIP: Hydra (circuit) improves UQ over the zero-shot model"
    if zs_jobs:
        res = _compare(zs_jobs, "ood_mean/auroc_msp", True)
        rows.append([claim, "`imagenet-zeroshot-clip`", res[0] if res else "see task table", f"**{res[1] if res else 'see task table'}**"])
    else:
        reason = zs[0]["reason"].split(". ")[0][:200] if zs else "task not run"
        rows.append([claim, "`imagenet-zeroshot-clip`", "–", f"**not measurable here**: {reason}"])
    lines = ["## Paper claims", "",
             "Claims of Hydra Ensembles (arXiv 2510.18358) checked against this benchmark's own result files, "
             f"per task and suite that has both methods (suites ordered {' > '.join(SUITE_RANK)}; `quick` only where nothing else ran). "
             "\"holds\" allows one standard deviation of the seed spread (plus the stated margin). "
             "Small CPU budgets train far from convergence: read verdicts from `quick` as a pipeline check, not as evidence.", ""]
    return lines + _table(["Claim", "Task", "Measured", "Verdict"], rows) + [""]


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
        one = _mean([j["cost"]["latency_ms"] for j in by_method.get("single", [])])
        one_thr = _mean([j["cost"]["throughput"] for j in by_method.get("single", [])])
        for m in sorted(by_method, key=lambda m: (m != "single", m)):
            c = lambda k: _mean([j["cost"].get(k, math.nan) for j in by_method[m]])  # noqa: E731
            b_small, b_large = by_method[m][0]["cost"].get("batch_small"), by_method[m][0]["cost"].get("batch_large")
            rows.append([
                f"`{task}` ({suite})", f"`{m}`", f"{device}, {dtype}", f"{c('params') / 1e6:.3g}",
                f"{c('flops') / 1e6:.4g}", f"{c('latency_ms'):.2f} (×{c('latency_ms') / one:.2f})" if one else f"{c('latency_ms'):.2f}",
                f"{c('throughput'):.0f} (×{c('throughput') / one_thr:.2f})" if one_thr else f"{c('throughput'):.0f}",
                f"{c('peak_mem_mb'):.0f}", f"{b_small} / {b_large}",
                "–" if math.isnan(c("cpu_load")) else f"{c('cpu_load'):.1f}",
            ])
    header = ["Task", "Method", "Device, dtype", "Params (M)", "MFLOPs / sample", "Latency ms (× single)",
              "Throughput /s (× single)", "Peak mem MB", "Batch (latency / throughput)", "CPU load"]
    lines = ["## Inference cost", ""]
    if rows:
        lines += ["Measured in the same run as each result (median of repeats after warm-up). On the CPU, peak "
                  "memory is the growth of resident memory during the large-batch run; on a GPU, CUDA's peak allocation. "
                  "CPU load is the one-minute load average per core when the measurement began: well above 1, other work "
                  "competed for the cores and the timings are inflated (compare ratios measured side by side instead).", ""]
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
        missing = {m.name: [seed for seed in s.seeds if (t.name, m.name, seed) not in done]
                   for m in s.methods if (t.name, m.name) not in skip_job}
        missing = {m: seeds for m, seeds in missing.items() if seeds}
        if len(missing) == len(s.methods) and all(len(v) == len(s.seeds) for v in missing.values()):
            out.append(f"`{t.name}`: every entry, {seed_list(s.seeds)}")
            continue
        out += [f"`{t.name}` / `{m}` {seed_list(seeds)}" for m, seeds in missing.items()]
    return out


def render(jobs: list[dict], skipped: list[dict], figures: dict[tuple[str, str], dict[str, str]],
           timings: Sequence[costbench.Timing] = ()) -> str:
    lines = ["# Leaderboard", "",
             "Generated by `make leaderboard` from the result files in `results/runs/`; do not edit by hand.",
             "Per-job numbers are in `results/summary.csv`.", "", LEGEND]
    lines += claims_section(jobs, skipped, timings)
    suites = sorted({j["suite"] for j in jobs} | {s["suite"] for s in skipped}, key=lambda s: (_rank(s), s))
    for suite in suites:
        sj = [j for j in jobs if j["suite"] == suite]
        devices = sorted({_device(j) for j in sj})
        commits = sorted({j["provenance"].get("git_commit", "?")[:10] for j in sj})
        seeds = sorted({j["seed"] for j in sj})
        lines += [f"## Suite `{suite}`", "",
                  f"Seeds: {', '.join(map(str, seeds)) or '–'}; device: {', '.join(devices) or '–'}; "
                  f"commits: {', '.join(commits) or '–'}; cost dtype: "
                  f"{', '.join(sorted({str(j['cost'].get('dtype', '?')) for j in sj})) or '–'}.", ""]
        for task in sorted({j["task"] for j in sj}):
            lines += task_section(task, [j for j in sj if j["task"] == task], figures.get((suite, task), {}))
        missing = _missing_runs(suite, sj, [s for s in skipped if s["suite"] == suite])
        if missing:
            lines += ["Not yet run (the suite resumes them): " + "; ".join(missing) + ".", ""]
        ran = {j["task"] for j in sj}  # a task skipped on a later run where its data were absent keeps its results
        sk = [s for s in skipped if s["suite"] == suite and (s.get("method") or s["task"] not in ran)]
        if sk:
            lines += ["Skipped:", ""]
            lines += [f"- `{s['task']}`{' / `' + s['method'] + '`' if s.get('method') else ''}: {s['reason']}" for s in sk]
            lines += [""]
    lines += cost_section(jobs, timings)
    return "\n".join(lines).rstrip() + "\n"


def build(root: Path, out: Path) -> Path:
    """Write ``root/summary.csv``, figures under ``root/figures``, the leaderboard ``out``, its
    HTML page beside it (``.html``) and every run as ``root/runs.json``."""
    from uqbench.bench import figures as figs

    jobs, skipped = load_all(root)
    timings = costbench.load(root)  # read every input before writing anything
    df = summary_frame(jobs)
    results.write_atomic(root / "summary.csv", df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    made = figs.make_all(root, jobs, out.parent)
    md = render(jobs, skipped, made, timings)
    results.write_atomic(out, md)
    html.write(md, jobs, skipped, out.with_suffix(".html"), root / "runs.json")
    return out
