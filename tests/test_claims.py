"""Roles from registry names and hyper-parameters (never entry names), the verdict rule, and the
claims and "difference to single" tables built from result files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from uqbench import methods
from uqbench.bench import calibration, claims, intervals, report, results, scoring
from uqbench.bench.report import comparisons, inputs, pages, sections
from uqbench.bench.report.tables import find

# entry name -> (registry name, hyper-parameters); every name differs from its registry name
ENTRIES = {
    "baseline": ("single", {}),
    "baseline-longer": ("single", {"extra_finetune_frac": 0.75}),
    "ensemble": ("deep_ensembles", {}),
    "hydra-taylor": ("hydra", {}),
    "heads-circ": ("hydra", {"criterion": "circuit"}),
    "dropout": ("mc_dropout", {}),
}


def _params(entry: str) -> dict:
    method, params = ENTRIES[entry]
    return {"method": method, **methods.create(method, **params).get_params()}


@pytest.mark.parametrize("entry,role", [("baseline", "single"), ("baseline-longer", "single-ft"),
                                        ("ensemble", "deep_ensembles"), ("hydra-taylor", "hydra"),
                                        ("heads-circ", "hydra"), ("dropout", None)])
def test_role_comes_from_registry_name_and_parameters(entry, role):
    assert claims.role_of(_params(entry)) == role
    assert claims.role_of({"method": ENTRIES[entry][0]}) == (role if role != "single-ft" else "single")


def test_non_default_parameters_leave_the_reference_roles():
    assert claims.role_of({"method": "single", "lr_scale": 0.5}) is None
    assert claims.role_of({"method": "deep_ensembles", "num_members": 5}) is None
    assert claims.role_of({"method": "deep_ensembles", "lr_scale": 0.5}) == "deep_ensembles"  # a tuned rate
    assert claims.role_of({"method": "not-registered"}) is None


def test_variant_labels_name_the_criterion_and_what_else_changed():
    assert claims.variant(_params("heads-circ")) == ("Hydra (Circ), default recipe", True)
    assert claims.variant(_params("hydra-taylor")) == ("Hydra (Taylor), default recipe", False)
    assert claims.variant({"method": "hydra", "merge_mlp": False}) == ("Hydra (Taylor), merge_mlp=False", False)


T = claims.Test


@pytest.mark.parametrize("test,lo,hi,higher,expected", [
    (T("better"), 0.01, 0.03, True, "holds"),
    (T("better"), -0.03, -0.01, True, "does not hold"),
    (T("better"), -0.01, 0.03, True, "inconclusive"),
    (T("better"), -0.03, -0.01, False, "holds"),  # lower is better: a negative difference favours Hydra
    (T("at least as good", 0.02), -0.015, 0.01, True, "holds"),
    (T("at least as good", 0.02), -0.05, -0.03, True, "does not hold"),
    (T("at least as good", 0.02), -0.03, 0.01, True, "inconclusive"),
    (T("at least as good", 0.02), 0.01, 0.015, False, "holds"),
    (T("at least as good", 0.02), 0.025, 0.04, False, "does not hold"),
    (T("on par", 0.01), -0.005, 0.008, True, "holds"),
    (T("on par", 0.01), 0.012, 0.03, True, "does not hold (Hydra better)"),
    (T("on par", 0.01), -0.03, -0.011, False, "does not hold (Hydra better)"),  # lower is better
    (T("on par", 0.01), -0.03, -0.011, True, "does not hold"),
    (T("on par", 0.01), 0.011, 0.03, False, "does not hold"),
    (T("on par", 0.01), -0.005, 0.02, True, "inconclusive"),
])
def test_verdict_rule(test, lo, hi, higher, expected):
    assert claims.verdict(test, (lo + hi) / 2, lo, hi, higher, seeds=3) == expected


def test_verdict_needs_two_seeds_and_an_interval():
    assert claims.verdict(T("better"), 0.02, 0.01, 0.03, True, seeds=1) == "inconclusive"
    assert claims.verdict(T("better"), 0.02, math.nan, math.nan, True, seeds=3) == "inconclusive"
    with pytest.raises(ValueError, match="unknown test kind"):
        claims.verdict(T("roughly"), 0.0, -1.0, 1.0, True, seeds=3)


# --- tables from result files ----------------------------------------------------------------
def _write_run(root: Path, entries: dict[str, float], seeds=(0, 1, 2), cached: tuple[str, ...] = (),
               suite: str = "standard", task_config: dict | None = None, calibrated: bool = False) -> None:
    """Result files and logits of task ``toy`` for each entry; ``entries`` maps an entry to how far
    its logits lean towards the label (a higher value gives a more accurate model). With
    ``calibrated``, the logits also hold a 'val' split and the results a fitted temperature."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 120)
    base = {"test": rng.normal(size=(1, 120, 4)), "ood/near": rng.normal(size=(1, 50, 4)),
            "ood/far": rng.normal(size=(1, 40, 4)) * 0.2}
    y_val = rng.integers(0, 4, 80)
    if calibrated:
        base["val"] = rng.normal(size=(1, 80, 4))
    labels = {"test": y, **({"val": y_val} if calibrated else {})}
    for entry, skill in entries.items():
        for seed in seeds:
            noise = np.random.default_rng(seed + 100 * len(entry))
            logits = {k: (v + 0.3 * noise.normal(size=v.shape) + (skill * np.eye(4)[labels[k]] if k in labels else 0))
                      .astype(np.float16).astype(np.float32) for k, v in base.items()}
            job = results.JobId(suite, "toy", entry, seed)
            path = job.path(root)
            ref = f"runs/{suite}/toy/{entry}/seed{seed}.logits.npz"
            results.save_logits(root / ref, logits, labels)
            obj = {"schema": results.SCHEMA_VERSION, "status": "ok", "suite": suite, "task": "toy",
                   "method": entry, "seed": seed, "params": _params(entry), "task_config": task_config or {"task": "toy"},
                   "config_hash": "0", "metrics": scoring.score(logits, {"test": y}, near_ood=("near",)),
                   "cost": {"members": 1, "params": 1, "flops": 1, "latency_ms": 1.0, "throughput": 1.0},
                   "wall": {}, "provenance": {"git_commit": "x", "device": "cpu"}, "extra": {},
                   "logits": ("cache:" + ref) if entry in cached else ref, "near_ood": ["near"]}
            if calibrated:
                obj["calibrated"] = calibration.calibrate(logits, labels, ("near",))
            results.write(path, obj)


def test_renamed_entries_keep_their_roles_in_the_claims(tmp_path):
    _write_run(tmp_path, {"baseline": 1.0, "baseline-longer": 1.2, "ensemble": 1.5, "hydra-taylor": 1.4,
                          "heads-circ": 1.3, "dropout": 1.0})
    jobs = inputs.load(tmp_path).jobs
    roles, _ = claims.entries_by_role(jobs)
    assert roles == {"single": ["baseline"], "single-ft": ["baseline-longer"], "deep_ensembles": ["ensemble"],
                     "hydra": ["heads-circ", "hydra-taylor"]}
    rows = comparisons.claim_rows(jobs, intervals.Evidence(tmp_path, n_boot=100))
    assert {(r["entry"], r["reference"], r["reference_entry"]) for r in rows} == {
        (h, ref, e) for h in ("hydra-taylor", "heads-circ")
        for ref, e in (("deep_ensembles", "ensemble"), ("single", "baseline"), ("single-ft", "baseline-longer"),
                       ("single +TS", ""))}  # no temperature fitted (no validation logits): not measured
    assert len(rows) == 2 * 4 * len(claims.CLAIMS)
    assert rows[0]["entry"] == "heads-circ" and rows[0]["headline_variant"]  # the paper's variant first
    acc = next(r for r in rows if r["entry"] == "hydra-taylor" and r["reference"] == "single" and r["claim"] == "Accuracy")
    by = {(j["method"], j["seed"]): j["metrics"]["test/acc"] for j in jobs}
    assert acc["diff"] == pytest.approx(np.mean([by[("hydra-taylor", s)] - by[("baseline", s)] for s in range(3)]))
    assert acc["lo"] < acc["diff"] < acc["hi"] and acc["interval"] == "bootstrap + seeds" and acc["seeds"] == 3
    assert acc["verdict"] in ("holds", "does not hold", "does not hold (Hydra better)", "inconclusive")
    assert not acc["note"]
    near = {r["metric"] for r in rows}
    assert {"ood_near/auroc_msp", "ood_far/auroc_msp", "ood_near/fpr95_msp", "ood_far/fpr95_msp"} <= near

    diffs = comparisons.single_rows(jobs, intervals.Evidence(tmp_path, n_boot=100))
    assert {r["entry"] for r in diffs} == set(ENTRIES) - {"baseline"}
    assert {r["reference_entry"] for r in diffs} == {"baseline"}


def test_absent_logits_fall_back_to_the_seed_spread_and_say_so(tmp_path):
    _write_run(tmp_path, {"baseline": 1.0, "hydra-taylor": 1.4}, cached=("hydra-taylor",))
    jobs = inputs.load(tmp_path).jobs
    rows = comparisons.claim_rows(jobs, intervals.Evidence(tmp_path, n_boot=100))
    one = next(r for r in rows if r["reference"] == "single" and r["claim"] == "NLL")
    assert one["interval"] == "seeds only" and "logits kept only in the local cache: `hydra-taylor` seeds 0, 1, 2" in one["note"]
    missing = [r for r in rows if r["reference"] == "deep_ensembles"]
    assert missing and all(r["verdict"] == "not measured" and "no entry" in r["note"] for r in missing)


def test_a_missing_reference_comes_from_a_suite_with_the_same_task_configuration(tmp_path):
    _write_run(tmp_path, {"baseline": 1.0, "ensemble": 1.5})
    _write_run(tmp_path, {"baseline": 1.0, "hydra-taylor": 1.4}, suite="study")
    _write_run(tmp_path, {"ensemble": 1.5}, suite="other", task_config={"task": "toy", "epochs": 9})
    jobs = inputs.load(tmp_path).jobs
    rows = [r for r in comparisons.claim_rows(jobs, intervals.Evidence(tmp_path, n_boot=100)) if r["suite"] == "study"]
    de = [r for r in rows if r["reference"] == "deep_ensembles"]
    assert {r["reference_entry"] for r in de} == {"standard/ensemble"}  # not `other`: another configuration
    assert all(r["seeds"] == 3 and "from suite `standard`" in r["note"] for r in de)
    assert {r["reference_entry"] for r in rows if r["reference"] == "single"} == {"baseline"}  # its own, not lent


def test_leaderboard_shows_claims_and_differences_for_renamed_entries(tmp_path):
    _write_run(tmp_path, {"baseline": 1.0, "ensemble": 1.5, "hydra-taylor": 1.4}, seeds=(0, 1))
    made = report.all_pages(inputs.load(tmp_path))
    table = find(made, "claims-standard-toy")
    cell = table.cell("hydra-taylor", "single", claim="AUROC near-OOD")
    row = next(r for r in comparisons.claim_rows(inputs.load(tmp_path).jobs, intervals.Evidence(tmp_path))
               if r["entry"] == "hydra-taylor" and r["reference"] == "single" and r["claim"] == "AUROC near-OOD")
    assert (cell.value, cell.lo, cell.hi, cell.verdict) == (row["diff"], row["lo"], row["hi"], row["verdict"])
    assert table.cell("hydra-taylor", "entry", claim="NLL").text == "hydra-taylor: Hydra (Taylor), default recipe"
    diff = find(made, "standard-toy-diff")
    assert [r.entry for r in diff.rows] == ["ensemble", "hydra-taylor"] and diff.columns[1].title == "Accuracy"
    text = report.build(tmp_path, tmp_path / "leaderboard.md").read_text()
    assert report.build(tmp_path, tmp_path / "again.md").read_text() == text  # deterministic


def test_cached_logits_with_a_scores_file_get_the_full_interval(tmp_path, monkeypatch):
    """A run whose logits went to the cache commits per-sample scores; the leaderboard's intervals
    then need no cache."""
    from uqbench.bench import runner
    from uqbench.bench.tasks import create_task

    monkeypatch.setattr(runner, "LOGITS_COMMIT_LIMIT", 0)
    task = create_task("digits", dim=24, depth=2, heads=6, patch=2, epochs=1, batch_size=128)
    rng = np.random.default_rng(0)
    sets = task.eval_sets()
    root = tmp_path / "res"
    for entry, skill in (("baseline", 0.0), ("hydra-taylor", 1.0)):
        for seed in (0, 1):
            logits = {k: rng.normal(size=(1, len(v.y), task.num_classes)) + skill * np.eye(task.num_classes)[v.y.numpy()]
                      for k, v in sets.items()}
            labels = {k: v.y.numpy() for k, v in sets.items()}
            path = results.JobId("standard", "digits", entry, seed).path(root)
            runner.make_record(task, logits, labels, root=root, path=path, suite="standard", method=entry, seed=seed,
                               params=_params(entry), config_hash="0",
                               cost={"members": 1, "params": 1, "flops": 1, "latency_ms": 1.0, "throughput": 1.0},
                               wall={})
            assert results.read(path)["logits"].startswith("cache:")
            assert intervals.scores_file(path).is_file()
    jobs = inputs.load(root).jobs
    rows = comparisons.claim_rows(jobs, intervals.Evidence(root, n_boot=100))
    nll = next(r for r in rows if r["reference"] == "single" and r["claim"] == "NLL")
    assert nll["interval"] == "bootstrap + seeds" and not nll["note"] and nll["seeds"] == 2


def test_slice_page_sets_the_whole_training_set_beside_the_slice():
    cfg = {"task": "t", "epochs": 3, "train_per_class": 15, "lr": 1e-4}
    job = lambda suite, acc, seed=0, **changed: {  # noqa: E731
        "suite": suite, "task": "t", "seed": seed, "metrics": {"test/acc": acc}, "method": "baseline",
        "params": _params("baseline"), "task_config": {**cfg, **changed}}
    longer = {**job("standard", 0.95), "params": _params("baseline-longer")}
    jobs = [job("standard", 0.90), job("standard", 0.91, seed=1), longer, job("other", 0.5, epochs=9),
            job("full-data", 0.97, train_per_class=None)]
    (row,) = find([pages.slices_page(jobs)], "slices").rows
    assert [c.text for c in row.cells.values()] == ["t", "standard: 15 per class", "0.900", "full-data: all",
                                                    "0.970", "+0.070", "0"]
    assert row.cells["diff"].value == pytest.approx(0.07)
    assert pages.slices_page(jobs[:4]) is None  # no whole-set run: no page


def test_a_method_trained_from_scratch_on_a_pretrained_task_gets_its_own_table():
    job = lambda entry, acc, **extra: {  # noqa: E731
        "suite": "s", "task": "t", "method": entry, "seed": 0, "params": _params(entry), "_path": f"{entry}.json",
        "metrics": {"test/acc": acc}, "cost": {"members": 1, "params": 1.0}, "extra": extra}
    jobs = [job("baseline", 0.90), job("ensemble", 0.80), job("dropout", 0.95, group="trained from scratch")]
    main, caption, scratch = sections.entry_tables(jobs, ("test/acc",), (), "t", [])
    assert [r.entry for r in main.rows] == ["baseline", "ensemble"] and main.cell("baseline", "test/acc").bold
    assert [r.entry for r in scratch.rows] == ["dropout"] and not scratch.cell("dropout", "test/acc").bold  # apart
    assert caption.text.startswith("Trained from scratch") and main.cell("baseline", "test/acc").value == 0.90
