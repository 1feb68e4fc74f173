"""The leaderboard as data: tables looked up by entry and metric key, a small committed results
folder whose Markdown is compared with its golden copy, and the committed headline's shape.

The golden copy changes only on purpose: ``UQBENCH_GOLDEN=1 pytest tests/test_report.py``
rewrites it from the fixture (``tests/fixtures/make_board.py`` wrote the fixture)."""

from __future__ import annotations

import json

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from uqbench.bench import claims, report
from uqbench.bench.report import inputs, sections
from uqbench.bench.report.tables import Table, find

REPO = Path(__file__).resolve().parents[1]
BOARD = REPO / "tests" / "fixtures" / "board"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The fixture's leaderboard, built in a copy of its results folder."""
    out = tmp_path_factory.mktemp("board")
    shutil.copytree(BOARD / "results", out / "results", ignore=shutil.ignore_patterns("reports"))
    report.build(out / "results", out / "leaderboard.md")
    return out


@pytest.fixture(scope="module")
def made(built) -> list:
    return report.all_pages(inputs.load(built / "results"))


def _markdown(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in [folder / "leaderboard.md",
                                                               *sorted(folder.glob("results/reports/*.md"))]}


def test_the_fixtures_markdown_equals_its_golden_copy(built):
    mine = _markdown(built)
    if os.environ.get("UQBENCH_GOLDEN"):
        shutil.rmtree(BOARD / "results" / "reports", ignore_errors=True)
        for name, text in mine.items():
            (BOARD / name).parent.mkdir(parents=True, exist_ok=True)
            (BOARD / name).write_text(text)
    assert mine == _markdown(BOARD), "rendering changed: if on purpose, rerun with UQBENCH_GOLDEN=1"


def test_cells_hold_the_means_over_seeds_and_the_best_is_bold(built, made):
    jobs = inputs.load(built / "results").jobs
    table = find(made, "standard-toy")
    for entry in ("baseline", "ensemble", "hydra-taylor"):
        acc = [j["metrics"]["test/acc"] for j in jobs if j["method"] == entry]
        cell = table.cell(entry, "test/acc")
        assert (cell.value, cell.spread, cell.n) == (pytest.approx(np.mean(acc)), pytest.approx(np.std(acc, ddof=1)), 2)
    best = max(r.cells["test/acc"].value for r in table.rows)
    assert [r.entry for r in table.rows if r.cells["test/acc"].bold] == [
        r.entry for r in table.rows if r.cells["test/acc"].value == best]  # ties: a scaled ensemble predicts alike
    assert table.rows[0].entry == "baseline"  # the reference first
    # directions from the catalogue
    assert [c.title for c in table.columns if c.higher is False][:2] == ["NLL", "Brier"]
    scaled = [j["calibrated"]["metrics"]["test/ece"] for j in jobs if j["method"] == "baseline" and "calibrated" in j]
    assert table.cell("baseline +TS", "test/ece").value == pytest.approx(np.mean(scaled))  # the +TS row


def test_cost_columns_read_the_side_by_side_file(built, made):
    """Ratios and intervals as the cost file holds them; a +TS row costs what its entry costs."""
    data = json.loads((built / "results" / "cost" / "standard" / "toy" / "cpu-float32.json").read_text())
    rows = {r["name"]: r for r in data["entries"]}
    table = find(made, "standard-toy")
    small = table.cell("ensemble", "small")
    assert (small.value, small.lo, small.hi) == tuple(rows["ensemble"]["small"][k] for k in ("ratio", "lo", "hi"))
    assert table.cell("ensemble", "params").value == pytest.approx(3.0)
    assert table.cell("baseline +TS", "large") == table.cell("baseline", "large")
    cost_page = find(made, "cost-table-standard-toy-cpu-float32")
    assert cost_page.cell("control", "small_x").lo <= 1.0 <= cost_page.cell("control", "small_x").hi
    row = next(r for r in table.rows if r.entry == "heads-circ")
    assert row.files == ("runs/standard/toy/heads-circ/seed0.json", "runs/standard/toy/heads-circ/seed1.json")


def test_the_verdict_matrix_marks_the_claims_and_links_to_their_intervals(made):
    headline, suite = made[0], next(p for p in made if p.key == "standard")
    matrix = find(made, "verdicts-standard-toy")
    claims_table = find(made, "claims-standard-toy")
    assert [c.key for c in matrix.columns[1:]] == list(claims.REFERENCES)
    assert {r.entry for r in matrix.rows} == {"heads-circ"}  # the paper's variant
    anchors = {c.anchor: c for r in claims_table.rows for c in r.cells.values() if c.anchor}
    for row in matrix.rows:
        for ref in claims.REFERENCES:
            mark = row.cells[ref]
            target = anchors[mark.link.anchor]
            assert mark.link.page == suite.key and sections.MARKS[target.verdict] == mark.text
            assert target.value == mark.value
    assert matrix in [b for b in headline.blocks if isinstance(b, Table)]


def test_methods_show_their_declared_facts(made):
    notes = [i for b in next(p for p in made if p.key == "standard").blocks for i in getattr(b, "items", [])]
    assert "`heads-circ`: members' head sets overlap by 0.550 ± 0.071 (mean pairwise Jaccard per layer; " \
           "1 = identical)" in notes


def test_the_committed_headline_opens_with_a_table_and_fits_its_budget():
    lines = (REPO / "leaderboard.md").read_text().splitlines()
    assert len(lines) <= 300
    assert next(i for i, line in enumerate(lines) if line.startswith("|")) < 30
    reports = REPO / "results" / "reports"
    assert all((reports / f"{s}.md").is_file() for s in ("standard", "claims", "cost"))


def test_matched_cost_compares_hydra_with_the_best_entry_that_costs_no_more(built, made):
    """On parameters (Hydra 1.01x) the deep ensemble (3x) is out and the best NLL among the rest,
    the +TS variants included, is the comparison; `dropout` (4 passes) is in on parameters, out on FLOPs."""
    jobs = [j for j in inputs.load(built / "results").jobs if j["suite"] == "standard"]
    table = find(made, "matched-cost-table")
    cell = table.cell("hydra-taylor", "test/nll", axis="Params × (1.01)")
    cheap = {e: np.mean([j["metrics"]["test/nll"] for j in jobs if j["method"] == e])
             for e in {j["method"] for j in jobs} - {"ensemble", "ensemble +TS", "heads-circ", "heads-circ +TS",
                                                  "hydra-taylor", "hydra-taylor +TS"}}
    best = min(cheap, key=cheap.get)
    assert cell.text.startswith(f"vs {best}: ")
    mine = {j["seed"]: j["metrics"]["test/nll"] for j in jobs if j["method"] == "hydra-taylor"}
    theirs = {j["seed"]: j["metrics"]["test/nll"] for j in jobs if j["method"] == best}
    assert cell.value == pytest.approx(np.mean([mine[s] - theirs[s] for s in mine]))
    assert cell.lo < cell.value < cell.hi
    ece = {a: table.cell("hydra-taylor", "test/ece", axis=a).text for a in ("Params × (1.01)", "FLOPs × (2.30)")}
    assert ece["Params × (1.01)"].startswith("vs dropout") and not ece["FLOPs × (2.30)"].startswith("vs dropout")
