"""The leaderboard as one self-contained HTML page, and every run as one JSON file.

The page renders the leaderboard's own Markdown (headings, paragraphs, lists, tables), so its
tables hold exactly the numbers of ``leaderboard.md``; each table row carries the suite, task
and method it belongs to, for the page's filter. The quality-against-cost plot is drawn in
the browser from per-entry means computed here from the result files. Styles and scripts are
inline (``templates/leaderboard.html``): the page needs no network and no other file, and the
same inputs give the same bytes.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from uqbench.bench import results

TEMPLATE = Path(__file__).parent / "templates" / "leaderboard.html"
# metrics the plot offers (key, label, higher is better) and cost axes (key, label)
PLOT_METRICS = [
    ("test/acc", "Accuracy", True), ("test/nll", "NLL", False), ("test/ece", "ECE", False),
    ("test/brier", "Brier", False), ("test/aurc", "AURC", False), ("ood_mean/auroc_msp", "OOD AUROC (mean)", True),
    ("ood_mean/fpr95_msp", "FPR95 (mean)", False), ("shift/mean/acc", "Shift accuracy", True),
]
PLOT_COSTS = [("latency_ms", "Latency (ms, small batch)"), ("throughput", "Throughput (samples/s)"),
              ("flops", "FLOPs per sample"), ("params", "Parameters")]
_NUMBER = re.compile(r"^(\*\*)?[-–×\d]")  # cells kept on one line
_TASK_CELL = re.compile(r"^`([^`]+)` \(([^)]+)\)")  # "`task` (suite)" in the claims and cost tables


def _inline(text: str) -> str:
    """Markdown inline markup (code, bold, links) of one escaped line to HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", lambda m: f'<a href="{html.escape(m[2])}">{m[1]}</a>', out)


def _plain(cell: str) -> str:
    return re.sub(r"[`*]", "", cell).removesuffix(" (external)").strip()


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def _attrs(**kv: str | None) -> str:
    return "".join(f' data-{k}="{html.escape(v)}"' for k, v in kv.items() if v)


def _table(lines: list[str], suite: str | None, task: str | None) -> str:
    header, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    method_col = header.index("Method") if "Method" in header else None
    task_col = header.index("Task") if "Task" in header else None
    out = ['<table class="sortable"><thead><tr>']
    out += [f'<th title="click to sort">{_inline(h)}</th>' for h in header]
    out.append("</tr></thead><tbody>")
    for row in body:
        t, s = task, suite
        if task_col is not None and (m := _TASK_CELL.match(row[task_col])):
            t, s = m[1], m[2]
        method = _plain(row[method_col]) if method_col is not None else None
        external = "1" if method_col is not None and row[method_col].endswith("(external)") else None
        out.append(f"<tr{_attrs(suite=s, task=t, method=method, external=external)}>")
        out += [f'<td{" class=num" if _NUMBER.match(c) else ""}>{_inline(c)}</td>' for c in row]
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def markdown_body(md: str) -> str:
    """The leaderboard's Markdown as HTML: ``## Suite`` and ``### Task`` headings open
    ``<section>``s that the filter shows or hides."""
    out: list[str] = []
    suite = task = None
    stack: list[str] = []  # open sections, "suite" then "task"
    lines = md.splitlines()
    i = 0

    def close(upto: str) -> None:
        """Close the open task section, or (``upto="suite"``) every open section."""
        while stack and (upto == "suite" or stack[-1] == "task"):
            out.append("</section>")
            stack.pop()

    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            text = line[level:].strip()
            m = re.fullmatch(r"(Suite|Task) `([^`]+)`", text)
            if level <= 2:
                close("suite")
                suite = task = None
            elif level == 3:
                close("task")
                task = None
            if m and m[1] == "Suite":
                suite = m[2]
                out.append(f'<section class="suite"{_attrs(suite=suite)}>')
                stack.append("suite")
            elif m:
                task = m[2]
                out.append(f'<section class="task"{_attrs(suite=suite, task=task)}>')
                stack.append("task")
            anchor = re.sub(r"[^a-z0-9]+", "-", f"{suite or ''} {text}".lower()).strip("-")
            out.append(f'<h{level} id="{anchor}">{_inline(text)}</h{level}>')
            i += 1
        elif line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block, suite, task))
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        elif line.strip():
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                para.append(lines[i])
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
        else:
            i += 1
    close("suite")
    return "\n".join(out)


def _finite_mean(values: list[float]) -> float | None:
    v = [x for x in values if isinstance(x, (int, float)) and math.isfinite(x)]
    return float(np.mean(v)) if v else None


def plot_points(jobs: list[dict]) -> list[dict[str, Any]]:
    """One point per (suite, task, method): means over seeds of the plot's metrics and costs."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for j in jobs:
        groups[(j["suite"], j["task"], j["method"])].append(j)
    points = []
    for (suite, task, method), js in sorted(groups.items()):
        metrics = {k: _finite_mean([j["metrics"].get(k, math.nan) for j in js]) for k, _, _ in PLOT_METRICS}
        spread = {k: float(np.std(v, ddof=1)) for k, _, _ in PLOT_METRICS
                  if len(v := [j["metrics"][k] for j in js if k in j["metrics"]]) > 1}
        costs = {k: _finite_mean([j["cost"].get(k, math.nan) for j in js]) for k, _ in PLOT_COSTS}
        points.append({
            "suite": suite, "task": task, "method": method, "external": any("external" in j for j in js),
            "seeds": sorted(j["seed"] for j in js), "members": js[0]["cost"].get("members"),
            "device": sorted({j["provenance"].get("accelerator") or j["provenance"].get("device", "?") for j in js}),
            "dtype": sorted({str(j["cost"].get("dtype", "–")) for j in js}),
            "metrics": {k: v for k, v in metrics.items() if v is not None}, "std": spread,
            "cost": {k: v for k, v in costs.items() if v is not None},
        })
    return points


def page(md: str, jobs: list[dict]) -> str:
    """The self-contained leaderboard page."""
    data = {"points": plot_points(jobs), "metrics": PLOT_METRICS, "costs": PLOT_COSTS}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")
    body = markdown_body(md)
    cut = body.find("<h2") if "<h2" in body else len(body)  # the plot goes after the introduction
    head, _, tail = TEMPLATE.read_text(encoding="utf-8").partition("{{PLOT}}")
    plot, _, tail = tail.partition("{{/PLOT}}")
    return head + body[:cut] + plot + body[cut:] + tail.replace("{{DATA}}", blob)


def runs_export(jobs: list[dict], skipped: list[dict]) -> str:
    """Every result record (with its provenance, and ``file``: its path under the results
    folder) as one JSON document."""
    def clean(obj: dict) -> dict:
        out = {k: v for k, v in obj.items() if k != "_path"}
        return {"file": obj["_path"], **out}

    doc = {"schema": results.SCHEMA_VERSION, "runs": [clean(j) for j in jobs],
           "skipped": [clean(s) for s in skipped]}
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def write(md: str, jobs: list[dict], skipped: list[dict], page_path: Path, runs_path: Path) -> None:
    """Write the page and the JSON export, each atomically."""
    results.write_atomic(page_path, page(md, jobs))
    results.write_atomic(runs_path, runs_export(jobs, skipped))
