"""The smoke suite end to end: every method on ``digits`` into a temporary results folder,
then a leaderboard rendered from those files alone."""

from __future__ import annotations

import pytest
from test_contract import EXPECTED_FAILURES

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
    assert [r.entry for r in table.rows][0] == "single" and {r.entry for r in table.rows} == {m.name for m in s.methods}
    assert (tmp_path / "summary.csv").read_text().count("\n") == len(s.methods) + 1
    assert any((tmp_path / "figures").glob("*reliability.png"))
    cost = find(report.all_pages(inputs.load(tmp_path)), "cost-jobs")
    for m in s.methods:  # every method's FLOP ratio and efficiency come from its recorded analytic FLOPs
        flops, efficiency = cost.cell(m.name, "flops"), cost.cell(m.name, "efficiency")
        if "analytic_cost" in EXPECTED_FAILURES.get(m.method, {}):  # no analytic model (CNNs): no ratio shown
            assert flops.text == "–", m.name
            continue
        assert flops.text.startswith("×") and "–" not in efficiency.text, m.name

    first = {p: p.read_bytes() for p in [out, out.with_suffix(".html"), *sorted((tmp_path / "reports").glob("*.md")),
                                          *sorted((tmp_path / "figures").glob("*.png"))]}
    report.build(tmp_path, tmp_path / "leaderboard.md")
    assert {p: p.read_bytes() for p in first} == first, "leaderboard, pages or figures not byte-identical"

    again = runner.run_suite(s, tmp_path, log=lambda *_: None)
    assert not again.done and len(again.reused) == len(s.methods)
