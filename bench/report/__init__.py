"""The leaderboard, derived from the results folder alone (no training, no suite files).

``build`` reads every input (``inputs``), compares entries (``comparisons``), builds pages of
tables (``pages``, ``sections``, ``study``, ``costs``) and draws figures (``figures``), then
renders those pages as Markdown (``markdown``) and as one HTML page (``html``). A damaged input
stops the report before anything is written; the same inputs give byte-identical outputs."""

from __future__ import annotations

from pathlib import Path

from .. import results
from . import costs, figures, html, markdown, pages, study
from .inputs import Inputs, load
from .tables import Page


def all_pages(inputs: Inputs, figs: dict[tuple[str, str], dict[str, str]] | None = None) -> list[Page]:
    """Every page, the headline first."""
    details = [pages.suite_page(inputs, s, figs or {}) for s in inputs.suites()]
    details += [pages.claims_page(inputs), *study.pages(inputs), costs.page(inputs.costs, inputs.timings)]
    details += [p for p in [pages.slices_page(inputs.jobs)] if p]
    return [pages.headline(inputs, details), *details]


def build(root: Path, out: Path) -> Path:
    """Write the leaderboard ``out``, its HTML page beside it (``.html``), the detail pages under
    ``root/reports/``, figures under ``root/figures/``, ``root/summary.csv`` and ``root/runs.json``."""
    inputs = load(root)  # every input is read before anything is written
    results.write_atomic(root / "summary.csv", results.summary_csv(inputs.jobs))
    made = all_pages(inputs, figures.make_all(root, inputs.jobs, inputs.costs, inputs.records))
    paths = {p.key: out if not p.key else root / "reports" / f"{p.key}.md" for p in made}
    for p in made:
        results.write_atomic(paths[p.key], markdown.render(p, paths[p.key], root, paths))
    for stale in set((root / "reports").glob("*.md")) - set(paths.values()):
        stale.unlink()
    suite = inputs.record_suite()
    start = (suite, min((j["task"] for j in inputs.jobs if j["suite"] == suite), default=""))
    page = out.with_suffix(".html")
    results.write_atomic(page, html.render(made, inputs.jobs, inputs.costs, page, root, start))
    results.write_atomic(root / "runs.json", results.runs_json(inputs.jobs, inputs.skipped))
    return out
