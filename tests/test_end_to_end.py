"""The smoke suite end to end: every method on ``digits`` into a temporary results folder,
then a leaderboard rendered from those files alone."""

from __future__ import annotations

import pytest
from test_contract import EXPECTED_FAILURES

from uqbench import methods
from uqbench.bench import report, runner, suite


@pytest.mark.slow
def test_smoke_suite_to_leaderboard(tmp_path):
    s = suite.load("smoke")
    assert {m.method for m in s.methods} == set(methods.REGISTRY), "smoke suite must cover every method"
    rep = runner.run_suite(s, tmp_path, log=lambda *_: None)
    assert not rep.failed and len(rep.done) == len(s.methods)

    out = report.build(tmp_path, tmp_path / "leaderboard.md")
    text = out.read_text()
    for m in s.methods:
        assert f"| `{m.name}` |" in text
    assert (tmp_path / "summary.csv").read_text().count("\n") == len(s.methods) + 1
    assert any((tmp_path / "figures").glob("*reliability.png"))
    cost = text.split("## Inference cost")[1]
    assert "| FLOPs × single |" in cost and "| Efficiency (latency / throughput) |" in cost
    for m in s.methods:  # every method's FLOP ratio and efficiency come from its recorded analytic FLOPs
        row = next(r for r in cost.splitlines() if f"| `{m.name}` |" in r).split(" | ")
        if "analytic_cost" in EXPECTED_FAILURES.get(m.method, {}):  # no analytic model (CNNs): no ratio shown
            assert row[5] == "–", row
            continue
        assert row[5].startswith("×") and "–" not in row[8], row

    first = {p: p.read_bytes() for p in [out, *sorted((tmp_path / "figures").glob("*.png"))]}
    report.build(tmp_path, tmp_path / "leaderboard.md")
    assert {p: p.read_bytes() for p in first} == first, "leaderboard or figures not byte-identical"

    again = runner.run_suite(s, tmp_path, log=lambda *_: None)
    assert not again.done and len(again.reused) == len(s.methods)
