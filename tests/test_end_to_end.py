"""The smoke suite end to end: every method on ``digits`` into a temporary results folder,
then a leaderboard rendered from those files alone."""

from __future__ import annotations

import pytest
from test_timing import measured

from uqbench import methods
from uqbench.bench import report, runner, suite
from uqbench.bench.report import inputs
from uqbench.bench.report.tables import find


@pytest.mark.slow
def test_smoke_suite_to_leaderboard(tmp_path):
    s = suite.load("smoke")
    assert {m.method for m in s.methods} == set(methods.REGISTRY), "smoke suite must cover every method"
    rep = runner.run_suite(s, tmp_path, log=lambda *_: None)
    assert not rep.failed and len(rep.done) == len(s.methods)

    out = report.build(tmp_path, tmp_path / "leaderboard.md")
    table = find(report.all_pages(inputs.load(tmp_path)), "smoke-digits")
    scaled = {f"{m.name} +TS" for m in s.methods}  # each entry's temperature-scaled variant (digits has 'val')
    assert [r.entry for r in table.rows][0] == "single"
    assert {r.entry for r in table.rows} == {m.name for m in s.methods} | scaled
    assert (tmp_path / "summary.csv").read_text().count("\n") == len(s.methods) + 1
    assert any((tmp_path / "figures").glob("*reliability.png"))
    assert all(table.cell(m.name, "params").text == "–" for m in s.methods)  # no side-by-side cost file yet
    measured(["cost", "--suite", "smoke", "--results", str(tmp_path), "--processes", "6", "--rounds-small", "2"])
    out = report.build(tmp_path, tmp_path / "leaderboard.md")
    table = find(report.all_pages(inputs.load(tmp_path)), "smoke-digits")
    for m in s.methods:  # every method's cost ratios, counted by flop_counter where no analytic model exists (CNNs)
        assert table.cell(m.name, "params").value > 0 and table.cell(m.name, "flops").value > 0, m.name
        assert table.cell(m.name, "small").lo <= table.cell(m.name, "small").value <= table.cell(m.name, "small").hi
    assert table.cell("single", "small").value == 1.0 and table.cell("deep_ensembles", "params").value == 3.0

    first = {p: p.read_bytes() for p in [out, out.with_suffix(".html"), *sorted((tmp_path / "reports").glob("*.md")),
                                          *sorted((tmp_path / "figures").glob("*.png"))]}
    report.build(tmp_path, tmp_path / "leaderboard.md")
    assert {p: p.read_bytes() for p in first} == first, "leaderboard, pages or figures not byte-identical"

    again = runner.run_suite(s, tmp_path, log=lambda *_: None)
    assert not again.done and len(again.reused) == len(s.methods)
