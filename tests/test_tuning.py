"""The tuning protocol: choices follow validation metrics only, the search resumes, bad
[tuning] sections fail before anything runs, and results carry validation metrics."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_reliability import assert_bad_input

from uqbench.bench import cli, report, results, runner, scoring, suite, tuning
from uqbench.bench.report import inputs
from uqbench.bench.report.tables import find

HEAD = "[suite]\nseeds = [0, 1]\nthreads = 1\nbatch_sizes = [1, 8]\ncost_repeats = 1\n"
TASK = '[[tasks]]\nname = "digits"\nparams = { dim = 24, depth = 2, heads = 6, epochs = 0.5, batch_size = 128 }\n'
TUNING = """
[methods.single]
[tuning]
reference = "single"
objective = { "val/nll" = 1.0, "ood_val/auroc_msp" = -1.0 }
seeds = [0]
[tuning.hydra]
search = "grid"
[tuning.hydra.fixed]
finetune_frac = 0.5
[tuning.hydra.space]
heads_per_member = [2, 3]
mlp = [{ merge_mlp = true }, { merge_mlp = false }]
"""


def write(folder: Path, tuning_block: str = TUNING) -> Path:
    path = folder / "tiny.toml"
    path.write_text(HEAD + TASK + tuning_block)
    return path


def candidate_files(root: Path) -> list[Path]:
    return sorted((root / "tuning" / "runs").rglob("seed*.json"))


def test_score_val_keeps_validation_apart():
    rng = np.random.default_rng(0)
    logits = {k: rng.normal(size=(2, n, 4)).astype(np.float32)
              for k, n in (("test", 30), ("val", 20), ("ood_val", 10), ("ood/far", 10))}
    labels = {"test": rng.integers(0, 4, 30), "val": rng.integers(0, 4, 20), "ood_val": -np.ones(10, int),
              "ood/far": -np.ones(10, int)}
    val = scoring.score_val(logits, labels)
    assert set(val) >= {"val/acc", "val/nll", "ood_val/auroc_msp"} and all(k.startswith(("val/", "ood_val/")) for k in val)
    assert val["val/acc"] == pytest.approx(float(np.mean(logits["val"].mean(0).argmax(-1) == labels["val"])))
    test = scoring.score(logits, labels)
    assert not any("val" in k for k in test)  # the held-out sets never enter test or OOD metrics
    assert test == scoring.score({k: v for k, v in logits.items() if k not in scoring.VAL_SETS}, labels)


def test_coordinate_search_follows_validation_and_ignores_test(monkeypatch):
    """Candidates with adversarial test metrics: the winner is the validation optimum."""
    space = tuning.Space("m", "hydra", "coordinate", {}, {"a": [0, 1, 2], "b": [0, 1]}, {})
    protocol = tuning.Protocol({"val/nll": 1.0}, [0], [space])

    def fake_jobs(s, task, entry, seeds, root, report, log):
        a, b = entry.params["a"], entry.params["b"]
        val_nll = (a - 1) ** 2 + (b - 1) ** 2  # optimum at a=1, b=1
        return [{"val_metrics": {"val/nll": float(val_nll)}, "metrics": {"test/nll": -float(val_nll)},
                 "wall": {"fit_s": 1.0, "eval_s": 0.5}}]

    monkeypatch.setattr(tuning, "_jobs", fake_jobs)
    rec = tuning.tune_task(SimpleNamespace(name="tiny"), SimpleNamespace(name="digits"), space, protocol, Path("."), runner.RunReport())
    assert rec["winner"]["knobs"] == {"a": 1, "b": 1}
    assert [c["knobs"] for c in rec["candidates"]] == [{"a": 0, "b": 0}, {"a": 1, "b": 0}, {"a": 2, "b": 0},
                                                       {"a": 1, "b": 1}]
    assert rec["budget"] == {"candidates": 4, "jobs": 4, "space_size": 6, "wall_s": 6.0}
    assert all("metrics" not in c and set(c["val_metrics"]) == {"val/nll"} for c in rec["candidates"])


def test_a_diverged_candidate_is_never_chosen(monkeypatch):
    """The first value of a knob diverges (NaN): min() would keep it, the rule must not."""
    space = tuning.Space("m", "hydra", "coordinate", {}, {"a": [0, 1]}, {})
    protocol = tuning.Protocol({"val/nll": 1.0}, [0], [space])
    nll = {0: float("nan"), 1: 2.0}
    monkeypatch.setattr(tuning, "_jobs", lambda s, task, entry, *a: [
        {"val_metrics": {"val/nll": nll[entry.params["a"]]}, "wall": {"fit_s": 1.0, "eval_s": 0.0}}])
    rec = tuning.tune_task(SimpleNamespace(name="tiny"), SimpleNamespace(name="digits"), space, protocol, Path("."),
                           runner.RunReport())
    assert rec["winner"]["knobs"] == {"a": 1}
    assert rec["candidates"][0]["objective"] is None


def test_tune_end_to_end_reads_validation_only_and_resumes(tmp_path):
    path, root = write(tmp_path), tmp_path / "res"
    s = suite.load(str(path))
    rep = tuning.tune_suite(s, root, log=lambda *_: None)
    assert not rep.failed and len(rep.done) == 4 + 2  # the four grid candidates, then the winner on two seeds
    rec_path = tuning.record_path(root, "tiny", "digits", "hydra")
    rec = json.loads(rec_path.read_text())
    files = candidate_files(root)
    assert len(files) == 4 and rec["budget"]["candidates"] == 4
    objs = {f.parent.name: results.read(f) for f in files}
    vals = {n: tuning.objective_value(o["val_metrics"], rec["rule"]["objective"]) for n, o in objs.items()}
    assert rec["winner"]["name"] == min(vals, key=vals.get)
    final = results.read(root / "runs" / "tiny" / "digits" / "hydra" / "seed1.json")
    assert final["params"]["heads_per_member"] == rec["winner"]["params"]["heads_per_member"]
    assert final["tuning"]["winner"] == rec["winner"]["name"] and "val/nll" in final["val_metrics"]

    # Make the test split adversarial (the winner worst, the others perfect) and give the best
    # validation numbers to another candidate: the next choice follows validation alone.
    loser = max(vals, key=vals.get)
    for name, f in zip(objs, files):
        o = objs[name]
        o["metrics"] = {k: (1e3 if name == rec["winner"]["name"] else 0.0) for k in o["metrics"]}
        if name in (loser, rec["winner"]["name"]):
            other = objs[rec["winner"]["name"] if name == loser else loser]
            o["val_metrics"] = dict(other["val_metrics"])
    for name, f in zip(objs, files):
        results.write(f, objs[name])
    rep = tuning.tune_suite(s, root, final=False, log=lambda *_: None)
    assert rep.done == [] and len(rep.reused) == 4  # nothing reruns
    assert json.loads(rec_path.read_text())["winner"]["name"] == loser

    # Resume: a lost candidate is the only job that runs again.
    files[0].unlink()
    rep = tuning.tune_suite(s, root, final=False, log=lambda *_: None)
    assert len(rep.done) == 1 and len(rep.reused) == 3

    # The study section: record, candidates, the knob figure, the generated conclusion.
    runner.run_suite(s, root, log=lambda *_: None)
    results.write_plan(root, suite.load("hydra-study").plan)  # as a run of that suite records it
    report.build(root, root / "leaderboard.md")
    study = (root / "reports" / "tuning-tuning-study.md").read_text()
    assert "Tuning record of `hydra`" in study and "Conclusion (generated" in study
    made = report.all_pages(inputs.load(root))
    record = find(made, "record-tiny-digits-hydra")
    winner = next(r for r in record.rows if r.cells["candidate"].text.endswith("★"))
    assert winner.entry == json.loads(rec_path.read_text())["winner"]["name"]
    assert winner.cells["objective"].value == pytest.approx(json.loads(rec_path.read_text())["winner"]["objective"])
    assert "Head overlap" in [c.title for c in record.columns]  # declared by the method, named by no report code
    assert (root / "figures" / "tiny__digits__hydra-knobs.png").is_file()
    assert find(made, "not-started-hydra-study").rows  # declared in the plan the suite recorded


def test_the_winner_runs_on_the_tasks_own_seeds(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(HEAD + TASK + "seeds = [3]\n" + TUNING.replace("heads_per_member = [2, 3]", "heads_per_member = [2]")
                    .replace("mlp = [{ merge_mlp = true }, { merge_mlp = false }]", ""))
    rep = tuning.tune_suite(suite.load(str(path)), tmp_path / "res", log=lambda *_: None)
    assert not rep.failed and len(rep.done) == 2  # the one candidate on seed 0, the winner on seed 3
    rows = sorted((tmp_path / "res" / "runs" / "tiny" / "digits" / "hydra").glob("seed*.json"))
    assert [p.name for p in rows] == ["seed3.json"]


def test_candidate_without_validation_metrics_is_not_eligible(tmp_path):
    path, root = write(tmp_path), tmp_path / "res"
    s = suite.load(str(path))
    tuning.tune_suite(s, root, final=False, log=lambda *_: None)
    for f in candidate_files(root):
        o = results.read(f)
        del o["val_metrics"]  # as in result files written before validation was recorded
        results.write(f, o)
    tuning.tune_suite(s, root, final=False, log=lambda *_: None)
    rec = json.loads(tuning.record_path(root, "tiny", "digits", "hydra").read_text())
    assert rec["winner"] is None and {c["status"] for c in rec["candidates"]} == {"no validation metrics"}


def test_a_cost_limit_bounds_the_path_and_the_winner_and_names_the_best_above_it(monkeypatch):
    """Knob ``a``: 0 is cheap and poor, 1 over the limit and best, 2 cheap and fair; ``b`` only
    tunes. The path keeps a = 2, the winner is within the limit, the best above it is recorded."""
    space = tuning.Space("m", "hydra", "coordinate", {}, {"a": [0, 1, 2], "b": [0, 1]}, {}, {"params": 1.03}, "m-free")
    protocol = tuning.Protocol({"val/nll": 1.0}, [0], [space], reference="single")
    nll = {0: 3.0, 1: 1.0, 2: 2.0}
    monkeypatch.setattr(tuning, "_jobs", lambda s, task, entry, *a: [
        {"val_metrics": {"val/nll": nll[entry.params["a"]] - 0.1 * entry.params["b"]}, "wall": {"fit_s": 1.0, "eval_s": 0.0}}])
    monkeypatch.setattr(tuning, "cost_ratios", lambda task, method, params, ref: {
        "params": 1.5 if params["a"] == 1 else 1.0, "flops": 2.0})
    rec = tuning.tune_task(SimpleNamespace(name="tiny"), SimpleNamespace(name="digits"), space, protocol, Path("."),
                           runner.RunReport(), reference=SimpleNamespace(method="single", params={}))
    assert rec["winner"]["knobs"] == {"a": 2, "b": 1}
    assert rec["unconstrained"]["knobs"] == {"a": 1, "b": 0} and rec["unconstrained_entry"] == "m-free"
    assert rec["max_cost"] == {"params": 1.03}
    above = [c for c in rec["candidates"] if not c["within_max_cost"]]
    assert [c["knobs"] for c in above] == [{"a": 1, "b": 0}] and above[0]["cost"] == {"params": 1.5, "flops": 2.0}


COST_LIMIT = TUNING.replace('search = "grid"', 'search = "grid"\nunconstrained = "hydra-free"').replace(
    "heads_per_member = [2, 3]", "heads_per_member = [2, 6]") + "[tuning.hydra.max_cost]\nparams = 1.1\n"


def test_tune_with_a_cost_limit_runs_the_chosen_and_the_unconstrained_rows(tmp_path):
    s = suite.load(str(write(tmp_path, COST_LIMIT)))
    root = tmp_path / "res"
    rep = tuning.tune_suite(s, root, log=lambda *_: None)
    rec = json.loads(tuning.record_path(root, "tiny", "digits", "hydra").read_text())
    costs = {(c["params"]["heads_per_member"], c["params"]["merge_mlp"]): c["cost"]["params"] for c in rec["candidates"]}
    assert costs[(2, True)] < 1.1 < costs[(6, True)] and costs[(2, True)] < costs[(2, False)]
    assert rec["winner"]["params"] == {"finetune_frac": 0.5, "heads_per_member": 2, "merge_mlp": True}
    assert rec["unconstrained"]["params"] != rec["winner"]["params"]
    assert not rep.failed and len(rep.done) == 4 + 2 * 2  # four candidates, then two entries on two seeds
    for entry, choice in (("hydra", "winner"), ("hydra-free", "unconstrained")):
        row = results.read(root / "runs" / "tiny" / "digits" / entry / "seed1.json")
        assert row["tuning"]["choice"] == choice and row["tuning"]["winner"] == rec[choice]["name"]

    # Rows only: the search is kept, the rows alone run again.
    for row in (root / "runs" / "tiny").rglob("seed*.json"):
        row.unlink()
    rep = tuning.tune_suite(s, root, rows_only=True, log=lambda *_: None)
    assert len(rep.done) == 4 and len(rep.reused) == 0
    # ... but not on another training configuration: then it searches nothing and says so.
    won = root / "tuning" / "runs" / "tiny" / "digits" / rec["winner"]["name"] / "seed0.json"
    obj = results.read(won)
    results.write(won, {**obj, "task_config": {**obj["task_config"], "epochs": 9}})
    lines = []
    rep = tuning.tune_suite(s, root, rows_only=True, log=lines.append)
    assert rep.skipped == ["digits/hydra"] and rep.done == [] and "without --rows-only" in lines[-1]


@pytest.mark.parametrize("block, needle", [
    (COST_LIMIT.replace('reference = "single"\n', ""), "set reference"),
    (COST_LIMIT.replace("params = 1.1", "latency = 1.1"), "must be a table of params, flops"),
    (COST_LIMIT.replace("params = 1.1", "params = -1"), "positive ratio"),
    (COST_LIMIT.replace("[tuning.hydra.max_cost]\nparams = 1.1\n", ""), "with a max_cost"),
    (COST_LIMIT.replace('"hydra-free"', '"single"'), "must differ"),

    (TUNING.replace('"val/nll"', '"test/nll"'), "validation data only"),
    (TUNING.replace('search = "grid"', 'search = "random"'), "search must be one of"),
    (TUNING.replace("heads_per_member = [2, 3]", "heads_per_member = [0, 3]"), "heads_per_member = 0"),
    (TUNING.replace("[tuning.hydra.space]", "[tuning.hydra.spaces]"), "unknown keys"),
    (TUNING + "[tuning.hydra.task_space.nope]\nheads_per_member = [1]\n", "unknown task 'nope'"),
])
def test_bad_tuning_section_is_one_line_exit_2(tmp_path, capsys, block, needle):
    path = write(tmp_path, block)
    assert_bad_input(capsys, ["tune", "--suite", path, "--results", tmp_path / "res"], tmp_path / "res", needle)


def test_tune_cli_bad_names_exit_2(tmp_path, capsys):
    path = write(tmp_path)
    out = tmp_path / "res"
    assert_bad_input(capsys, ["tune", "--suite", path, "--results", out, "--methods", "nope"], out, "nope")
    assert_bad_input(capsys, ["tune", "--suite", "smoke", "--results", out], out, "no [tuning] section")
    assert cli.main(["tune", "--suite", str(path), "--results", str(out), "--select-only"]) == 0
    assert not (out / "runs" / "tiny" / "digits" / "hydra").exists()  # only the candidates ran


def test_study_measures_the_choice_against_the_winners_seed_noise():
    from uqbench.bench.report import study

    rule = {"objective": {"val/nll": 1.0}, "seeds": [0]}
    rec = {"rule": rule, "winner": {"objective": 0.30},
           "candidates": [{"objective": v} for v in (0.30, 0.305, 0.31, 0.50, None)]}
    chosen = [{"val_metrics": {"val/nll": v}} for v in (0.29, 0.30, 0.31)]  # standard deviation 0.01
    line = study._selection_noise(rec, chosen)[0]
    assert "span 0.2000" in line and "0.0100 over its 3 seeds" in line and "so 2 other candidates lie within" in line
    assert study._selection_noise(rec, chosen[:1]) == []  # one seed gives no yardstick
    rec["candidates"] = rec["candidates"][:2]  # 0.30 and 0.305: one other candidate within the noise
    assert "so 1 other candidate lies within" in study._selection_noise(rec, chosen)[0]
    rec["candidates"] = [{"objective": 0.30}, {"objective": 0.50}]
    assert "so no other candidate lies within one seed's noise" in study._selection_noise(rec, chosen)[0]


def test_a_winner_at_the_edge_of_its_space_is_flagged():
    space = {"p": [0.1, 0.05, 0.2], "fork_layer": [0, 2], "criterion": ["taylor", "circuit"],
             "budget": [{"frac": 0.5, "lr": 1.0}, {"frac": 1.0, "lr": 1.0}, {"frac": 0.5, "lr": 0.5},
                        {"frac": 2.0, "lr": 1.0}]}
    knobs = {"p": 0.05, "fork_layer": 2, "criterion": "circuit", "budget": {"frac": 2.0, "lr": 1.0}}
    rec = {"space": space, "winner": {"knobs": knobs}}
    # two values are a choice, not a range; a table's fields are read one by one
    assert tuning.at_the_edge(rec) == [("p", 0.05, "smallest", [0.05, 0.1, 0.2]),
                                       ("budget.frac", 2.0, "largest", [0.5, 1.0, 2.0])]
    rec["winner"]["knobs"] = {**knobs, "p": 0.1, "budget": {"frac": 1.0, "lr": 0.5}}
    assert tuning.at_the_edge(rec) == []
    assert tuning.at_the_edge({"space": space, "winner": None}) == []


def test_study_says_how_much_of_the_gap_extra_training_alone_explains():
    from uqbench.bench.report import study

    def job(auroc: float, **params) -> dict:
        return {"params": {"method": "single", **params}, "metrics": {"ood_far/auroc_msp": auroc}}

    ref = [job(0.96), job(0.98)]
    finals = {"single": ref, "single-ft": [job(0.96, extra_finetune_frac=1.5)] * 2,
              "single-lr": [job(0.5, lr=1.0)]}  # not the single-ft role: left out
    line, = study._finetuning_alone(finals, ref, "single", -0.04, "ood_far/auroc_msp", "far-OOD")
    assert "`single-ft`" in line and "0.960 against `single`'s 0.970 (-0.010)" in line and "25% of the gap" in line
    finals["single-ft"] = [job(0.99, extra_finetune_frac=1.5)]
    assert "does not explain the gap" in study._finetuning_alone(finals, ref, "single", -0.04, "ood_far/auroc_msp",
                                                                 "far-OOD")[0]


def test_a_search_run_again_keeps_the_complete_record_until_it_completes(tmp_path):
    path = tmp_path / "hydra.json"
    partial = tmp_path / "hydra.json.partial"
    save = tuning.record_saver(path)
    save({"complete": False, "candidates": [1]})  # a first search writes its progress in place
    assert json.loads(path.read_text())["candidates"] == [1] and not partial.exists()
    save({"complete": True, "candidates": [1, 2]})
    save({"complete": False, "candidates": [1, 2, 3]})  # the space grew: the search runs again
    assert json.loads(path.read_text()) == {"complete": True, "candidates": [1, 2]}
    assert json.loads(partial.read_text())["candidates"] == [1, 2, 3]
    save({"complete": True, "candidates": [1, 2, 3, 4]})
    assert json.loads(path.read_text())["candidates"] == [1, 2, 3, 4] and not partial.exists()


def test_a_search_killed_between_the_winners_seeds_leaves_every_row_linked(tmp_path, monkeypatch):
    s = suite.load(str(write(tmp_path)))
    root = tmp_path / "res"
    real = runner.run_job

    def killed_on_seed1(suite_, task, entry, seed, root_, fields=None):
        if entry.name == "hydra" and seed == 1:
            raise KeyboardInterrupt
        return real(suite_, task, entry, seed, root_, fields)

    monkeypatch.setattr(runner, "run_job", killed_on_seed1)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune_suite(s, root, log=lambda *_: None)
    rows = sorted((root / "runs" / "tiny").rglob("seed*.json"))
    assert [r.name for r in rows] == ["seed0.json"]
    rec = json.loads(tuning.record_path(root, "tiny", "digits", "hydra").read_text())
    assert results.read(rows[0])["tuning"]["winner"] == rec["winner"]["name"]


def test_across_tasks_runs_each_winner_everywhere_by_position_and_ranks_them(tmp_path, monkeypatch):
    """Two tasks whose head lists differ ([2, 3] of 6 heads, [1, 3] of 3) and whose searches chose
    different values: each winner runs on the other task at the same position of its list, and
    the recipe with the lower mean rank wins."""
    space = tuning.Space("m", "hydra", "grid", {}, {"heads_per_member": [2, 3], "finetune_frac": [0.5, 1.0]},
                         {"b": {"heads_per_member": [1, 3]}})
    protocol = tuning.Protocol({"val/nll": 1.0}, [0], [space])
    nll = {("a", 2, 0.5): 1.0, ("a", 3, 1.0): 1.2, ("b", 3, 1.0): 0.5, ("b", 1, 0.5): 0.9}
    def fake_jobs(s, task, entry, seeds, root, report, log):
        key = (task.name, entry.params["heads_per_member"], entry.params["finetune_frac"])
        return [{"val_metrics": {"val/nll": nll[key]}, "wall": {"fit_s": 1.0, "eval_s": 0.0}}]

    monkeypatch.setattr(tuning, "_jobs", fake_jobs)
    suite_ = SimpleNamespace(name="tiny")
    winners = {"a": {"heads_per_member": 2, "finetune_frac": 0.5}, "b": {"heads_per_member": 3, "finetune_frac": 1.0}}
    for name, knobs in winners.items():
        path = tuning.record_path(tmp_path, "tiny", name, "m")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"complete": True, "winner": {"knobs": knobs}}))
    tasks = {n: SimpleNamespace(name=n) for n in ("a", "b")}
    out = tuning.across_tasks(suite_, space, protocol, tasks, tmp_path, runner.RunReport(), log=lambda *_: None)
    by_source = {r["from"]: r for r in out["recipes"]}
    assert by_source["a"]["on"]["b"]["params"] == {"heads_per_member": 1, "finetune_frac": 0.5}  # 2 of [2, 3] -> 1
    assert by_source["b"]["on"]["a"]["params"] == {"heads_per_member": 3, "finetune_frac": 1.0}
    assert [by_source["a"]["on"][t]["rank"] for t in "ab"] == [1, 2] and by_source["b"]["mean_rank"] == 1.5
    assert out["best"] == {"from": "b", "knobs": winners["b"]}  # tied ranks: the lower mean objective (0.85 < 0.95)
    assert json.loads(tuning.across_path(tmp_path, "tiny", "m").read_text())["best"]["from"] == "b"
    (tmp_path / "tuning" / "tiny" / "b" / "m.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(ValueError, match="no complete search with a winner on b"):
        tuning.across_tasks(suite_, space, protocol, tasks, tmp_path, runner.RunReport())
