"""Temperature scaling (``bench.calibration``): the fit recovers a known temperature, agrees with
torch-uncertainty's ``TemperatureScaler`` on single-model logits, and its metrics, scores files and
calibrated variants are what the saved logits give."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from uqbench.bench import calibration, intervals, results, scoring


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _tempered(rng, true_t: float, members: int = 1, n: int = 20000, c: int = 5):
    """Logits whose labels are drawn from the mean softmax of ``logits / true_t``: the calibrated
    temperature is ``true_t`` (> 1: the logits are overconfident)."""
    shared = rng.normal(size=(1, n, c)) * 2.0
    z = shared + 0.5 * rng.normal(size=(members, n, c))  # members that differ a little
    p = _softmax(z / true_t).mean(0)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, y


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(true_t, members):
    z, y = _tempered(np.random.default_rng(int(10 * true_t) + members), true_t, members)
    t = calibration.fit_temperature(z, y)
    assert t == pytest.approx(true_t, rel=0.06)
    assert calibration.nll(z, y, t) <= min(calibration.nll(z, y, t * f) for f in (0.9, 1.1))


def test_fit_matches_torch_uncertainty_on_single_model_logits():
    """torch-uncertainty's scaler fits 1 / T of one model's logits by LBFGS; ours searches log T with
    members averaged after scaling, which for one member is the same objective."""
    from torch.utils.data import DataLoader, TensorDataset
    from torch_uncertainty.post_processing import TemperatureScaler

    z, y = _tempered(np.random.default_rng(7), 1.8, members=1, n=4000, c=10)
    scaler = TemperatureScaler(model=None, lr=0.1, max_iter=200)
    scaler.fit(DataLoader(TensorDataset(torch.from_numpy(z[0]).float(), torch.from_numpy(y)), batch_size=500),
               progress=False)
    theirs = float(scaler.temperature[0].detach())
    ours = calibration.fit_temperature(z, y)
    assert ours == pytest.approx(theirs, rel=1e-3)
    assert calibration.nll(z, y, ours) <= calibration.nll(z, y, theirs) + 1e-9  # theirs stops in float32
    assert calibration.fit_temperature(z[0], y) == calibration.fit_temperature(z, y)  # (N, C) is one member


def test_nll_at_one_is_the_metric_nll_and_bad_input_fails_in_one_line():
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(3, 50, 4)), rng.integers(0, 4, 50)
    assert calibration.nll(z, y, 1.0) == pytest.approx(scoring.score({"test": z}, {"test": y})["test/nll"], rel=1e-9)
    with pytest.raises(ValueError, match="need logits"):
        calibration.fit_temperature(z, y[:10])


def _sets(rng, members: int = 2, with_val: bool = True):
    logits = {"test": rng.normal(size=(members, 60, 4)) * 4, "ood/near": rng.normal(size=(members, 30, 4)),
              "ood/far": rng.normal(size=(members, 20, 4)), "shift/blur/1": rng.normal(size=(members, 60, 4)) * 3}
    labels = {"test": rng.integers(0, 4, 60), "shift/blur/1": rng.integers(0, 4, 60)}
    if with_val:
        logits["val"], labels["val"] = rng.normal(size=(members, 40, 4)) * 4, rng.integers(0, 4, 40)
    return {k: v.astype(np.float16).astype(np.float32) for k, v in logits.items()}, labels


def test_calibrated_field_holds_the_metrics_of_the_scaled_logits():
    logits, labels = _sets(np.random.default_rng(2))
    cal = calibration.calibrate(logits, labels, ("near",))
    t = cal["temperature"]
    assert t > 1  # labels are random: the sharp logits are overconfident
    assert cal["fit"] == "val NLL" and cal["kind"] == "temperature"
    assert cal["val_nll"][1] < cal["val_nll"][0]
    scaled = {k: v / np.float32(t) for k, v in logits.items()}
    assert cal["metrics"] == scoring.score(scaled, labels, ("near",))
    assert set(cal["metrics"]) == set(scoring.score(logits, labels, ("near",)))
    assert cal["metrics"]["test/nll"] < scoring.score(logits, labels)["test/nll"]
    json.dumps(cal)  # JSON-able


def test_one_model_keeps_its_accuracy_and_no_val_split_records_the_reason():
    logits, labels = _sets(np.random.default_rng(3), members=1)
    cal = calibration.calibrate(logits, labels)
    assert cal["metrics"]["test/acc"] == scoring.score(logits, labels)["test/acc"]
    assert cal["metrics"]["ood_far/auroc_maxlogit"] == scoring.score(logits, labels)["ood_far/auroc_maxlogit"]
    logits, labels = _sets(np.random.default_rng(3), with_val=False)
    none = calibration.calibrate(logits, labels)
    assert set(none) == {"kind", "reason"} and "'val'" in none["reason"]


def _record(logits, labels, logits_ref: str) -> dict:
    return {"schema": results.SCHEMA_VERSION, "status": "ok", "suite": "s", "task": "toy", "method": "single",
            "seed": 0, "params": {"method": "single"}, "task_config": {}, "config_hash": "0",
            "metrics": scoring.score(logits, labels, ("near",)), "val_metrics": scoring.score_val(logits, labels),
            "calibrated": calibration.calibrate(logits, labels, ("near",)), "cost": {}, "wall": {},
            "provenance": {}, "extra": {}, "logits": logits_ref, "near_ood": ["near"]}


def test_calibrated_result_is_a_result_like_variant():
    logits, labels = _sets(np.random.default_rng(4))
    obj = {**_record(logits, labels, "x"), "sweep": {"1": {}}}
    ts = calibration.calibrated_result(obj)
    assert ts["method"] == "single +TS" and ts["metrics"] == obj["calibrated"]["metrics"]
    assert ts["post_hoc"] == {"kind": "temperature", "fit": "val NLL", "temperature": obj["calibrated"]["temperature"]}
    assert "val_metrics" not in ts and "sweep" not in ts and "calibrated" not in ts
    assert ts["params"] == obj["params"] and ts["seed"] == 0
    results.validate(ts, "variant")
    assert calibration.calibrated_result({**obj, "calibrated": {"kind": "temperature", "reason": "r"}}) is None


@pytest.mark.parametrize("cal", [[], {"kind": "temperature"}, {"metrics": {"test/acc": float("nan")}, "temperature": 1.0},
                                 {"metrics": {}, "temperature": -1.0}])
def test_validate_rejects_a_malformed_calibrated_field(cal):
    logits, labels = _sets(np.random.default_rng(5))
    with pytest.raises(results.ResultError, match="calibrated"):
        results.validate({**_record(logits, labels, "x"), "calibrated": cal}, "r")


@pytest.mark.parametrize("cached", [False, True], ids=["committed logits", "scores file"])
def test_a_calibrated_variant_gets_intervals_from_scaled_logits_or_scores(tmp_path, cached):
    """Replicate 0 of a ' +TS' variant is its calibrated metric, whether it is read from the logits
    or from the scores file committed for logits kept in the cache."""
    logits, labels = _sets(np.random.default_rng(6))
    ref = "runs/s/toy/single/seed0.logits.npz"
    results.save_logits(tmp_path / ref, logits, labels)
    path = tmp_path / "runs/s/toy/single/seed0.json"
    obj = _record(logits, labels, ("cache:" if cached else "") + ref)
    results.write(path, obj)
    if cached:
        t = calibration.temperature(obj)
        assert intervals.write_scores(path, logits, labels, ("near",), t)
        assert not intervals.write_scores(path, logits, labels, ("near",), t)  # unchanged: not rewritten
        back, _ = intervals.load_scores(intervals.scores_file(path), calibrated=True)
        assert set(back.ood) == set(intervals.scores(logits, labels["test"]).ood)
    evidence = intervals.Evidence(tmp_path, n_boot=10)
    for job in (obj, calibration.calibrated_result(obj)):
        reps, _ = evidence.replicates({**job, "_path": str(path.relative_to(tmp_path))})
        for key in ("test/nll", "test/ece", "test/acc", "ood_near/auroc_msp", "ood_far/fpr95_msp"):
            assert reps[key][0] == pytest.approx(job["metrics"][key], abs=2e-6), key


def test_an_older_scores_file_is_completed_and_lacks_calibrated_scores(tmp_path):
    logits, labels = _sets(np.random.default_rng(8))
    path = tmp_path / "seed0.json"
    s = intervals.scores(logits, labels["test"], ("near",))
    old = intervals.Scores(**{**s.__dict__, "ood": {"msp": s.ood["msp"]}})  # as files were written before
    intervals.save_scores(intervals.scores_file(path), old, intervals.signature(logits, labels["test"]))
    with pytest.raises(intervals.NoCalibratedScores):
        intervals.load_scores(intervals.scores_file(path), calibrated=True)
    assert set(intervals.load_scores(intervals.scores_file(path))[0].ood) == {"msp"}
    assert intervals.write_scores(path, logits, labels, ("near",), 1.5)
    back, _ = intervals.load_scores(intervals.scores_file(path), calibrated=True)
    assert set(back.ood) == {"msp", "entropy", "mi", "energy", "maxlogit"}
    assert not math.isclose(back.nll.mean(), s.nll.mean())


def test_rescore_adds_logit_scores_and_calibration_to_older_results(tmp_path, monkeypatch, capsys):
    """Results written before these fields existed gain them from their logits: committed logits
    with a 'val' split get a temperature, those without it the reason, and a result whose logits
    stay in the cache gets its scores file completed."""
    from uqbench.bench import cli

    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "res"
    rng = np.random.default_rng(10)
    for entry, with_val, cached in (("a", True, False), ("b", False, False), ("c", True, True)):
        logits, labels = _sets(rng, with_val=with_val)
        ref = f"runs/s/toy/{entry}/seed0.logits.npz"
        path = root / f"runs/s/toy/{entry}/seed0.json"
        results.save_logits((tmp_path / "cache" / "logits" if cached else root) / ref, logits, labels)
        old = _record(logits, labels, ("cache:" if cached else "") + ref)
        old = {**{k: v for k, v in old.items() if k != "calibrated"}, "method": entry,
               "metrics": {k: v for k, v in old["metrics"].items() if "energy" not in k and "maxlogit" not in k}}
        results.write(path, old)
        if cached:
            s = intervals.scores(logits, labels["test"], ("near",))
            intervals.save_scores(intervals.scores_file(path), intervals.Scores(**{**s.__dict__, "ood": {"msp": s.msp}}),
                                  intervals.signature(logits, labels["test"]))
    assert cli.main(["rescore", "--results", str(root)]) == 0
    assert "per-sample scores written" in capsys.readouterr().out
    a, b, c = (results.read(root / f"runs/s/toy/{e}/seed0.json") for e in "abc")
    for obj in (a, b, c):
        assert {"ood_near/auroc_energy", "ood/far/auroc_maxlogit", "ood_mean/fpr95_energy"} <= set(obj["metrics"])
    assert a["calibrated"]["temperature"] > 0 and set(a["calibrated"]["metrics"]) == set(a["metrics"])
    assert "reason" in b["calibrated"] and calibration.calibrated_result(b) is None
    back, _ = intervals.load_scores(intervals.scores_file(root / "runs/s/toy/c/seed0.json"), calibrated=True)
    assert set(back.ood) == set(scoring.metrics.OOD_SCORES)


def test_a_perfectly_separated_validation_split_stops_at_the_lower_bound_and_says_so():
    rng = np.random.default_rng(11)
    logits, labels = _sets(rng, members=1)
    labels["val"] = logits["val"][0].argmax(1)  # every validation sample right: NLL falls as T -> 0
    cal = calibration.calibrate(logits, labels)
    assert cal["at_bound"] and cal["temperature"] == pytest.approx(calibration.T_MIN, rel=1e-3)
    logits, labels = _sets(rng)
    assert not calibration.calibrate(logits, labels)["at_bound"]
