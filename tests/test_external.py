"""External entries: your own model (``evaluate``), your own predictions (``score``), and the
export of a task's evaluation sets that such predictions are made on."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import uqbench
from uqbench.bench import cli, external, report, rescore, results
from uqbench.bench.report import inputs
from uqbench.bench.report.tables import find


class Ensemble(nn.Module):
    """Two linear members on the 8x8 digits: ``(B, 1, 8, 8) -> (2, B, 6)``."""

    def __init__(self):
        super().__init__()
        self.members = nn.ModuleList(nn.Sequential(nn.Flatten(), nn.Linear(64, 6)) for _ in range(2))

    def forward(self, x):
        return torch.stack([m(x) for m in self.members])


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "digits-sets"
    assert cli.main(["export", "--task", "digits", "--out", str(out)]) == 0
    return out


def test_import_is_lazy_and_exports_the_api():
    assert uqbench.evaluate is external.evaluate and uqbench.score_predictions is external.score_predictions
    with pytest.raises(AttributeError):
        uqbench.nothing  # noqa: B018


def test_evaluate_module_writes_the_runners_record(tmp_path):
    torch.manual_seed(0)
    model = Ensemble()
    obj = uqbench.evaluate(model, task="digits", name="two-linear", results_root=tmp_path)
    path = results.external_path(tmp_path, "standard", "digits", "two-linear", 0)
    assert results.read(path) == json.loads(json.dumps(obj))  # the record returned is the one written
    m = obj["metrics"]
    assert {"test/acc", "test/ece", "ood/digits6-9/auroc_msp", "ood_near/auroc_msp"} <= set(m)
    assert obj["cost"]["members"] == 2 and obj["cost"]["params"] == sum(p.numel() for p in model.parameters())
    assert obj["cost"]["latency_ms"] > 0 and obj["external"]["kind"] == "module"
    # the member logits are saved like the runner's, so rescoring reproduces every number
    assert rescore.rescore(tmp_path) == 1
    assert results.read(path)["metrics"] == obj["metrics"]
    # not overwritten without force
    with pytest.raises(ValueError, match="exists"):
        uqbench.evaluate(model, task="digits", name="two-linear", results_root=tmp_path)


def test_evaluate_plain_function_one_model_and_bad_shapes():
    weights = torch.randn(64, 6)
    obj = uqbench.evaluate(lambda x: x.flatten(1) @ weights, task="digits")  # (B, C): one member, no cost
    assert obj["cost"] == {"members": 1} and obj["logits"] == "" and 0 <= obj["metrics"]["test/acc"] <= 1
    with pytest.raises(ValueError, match=r"expected \(M, \d+, 6\)"):
        uqbench.evaluate(lambda x: x.flatten(1) @ torch.randn(64, 5), task="digits")
    with pytest.raises(ValueError, match="unknown task of suite standard 'digit'"):
        uqbench.evaluate(Ensemble(), task="digit")


def test_export_writes_every_set_in_order(sets):
    manifest = json.loads((sets / "manifest.json").read_text())
    task = external.load_task("digits")[1]
    assert [s["key"] for s in manifest["sets"]] == list(task.eval_sets())
    assert manifest["num_classes"] == 6 and manifest["near_ood"] == ["digits6-9"]
    for s, split in zip(manifest["sets"], task.eval_sets().values()):
        with np.load(sets / s["file"]) as z:
            assert s["n"] == len(split) == len(z["ids"])
            assert np.array_equal(z["ids"], np.arange(s["n"])) and np.array_equal(z["labels"], split.y.numpy())
            assert z["images"].dtype == np.uint8 and np.array_equal(z["images"], split.x.numpy())
    assert cli.main(["export", "--task", "digits", "--out", str(sets)]) == 2  # never into an existing folder


def test_score_equals_evaluate_on_the_same_logits(sets, tmp_path, capsys):
    torch.manual_seed(0)
    model = Ensemble().eval()
    preds = {}
    for s in json.loads((sets / "manifest.json").read_text())["sets"]:
        with np.load(sets / s["file"]) as z:
            x = (torch.from_numpy(z["images"]).permute(0, 3, 1, 2).float() / 255 - 0.3) / 0.4  # the task's normalisation
        preds[s["key"]] = model(x).detach().numpy()
    np.savez(tmp_path / "preds.npz", **preds)
    assert cli.main(["score", "--task", "digits", "--predictions", str(tmp_path / "preds.npz"),
                     "--results", str(tmp_path / "res")]) == 0
    scored = results.read(results.external_path(tmp_path / "res", "standard", "digits", "preds", 0))
    direct = uqbench.evaluate(model, task="digits")
    assert scored["metrics"] == pytest.approx(direct["metrics"], abs=2e-3)  # float16-rounded either way
    assert scored["external"]["kind"] == "predictions" and len(scored["external"]["sha256"]) == 64
    assert scored["external"]["command"].startswith("python -m uqbench score --task digits --predictions ")
    # the leaderboard shows it, marked
    text = report.build(tmp_path / "res", tmp_path / "leaderboard.md").read_text()
    assert "| `preds` (external) | 2 |" in text
    made = report.all_pages(inputs.load(tmp_path / "res"))
    row = next(r for r in find(made, "headline-digits").rows if r.entry == "preds")
    assert row.external and row.cells["members"].text == "2" and row.files[0].startswith("runs/external/")
    cost = [b for p in made for b in p.blocks if getattr(b, "anchor", "") == "cost-jobs"]
    assert not any(r.entry == "preds" for t in cost for r in t.rows)  # no cost measured, no cost row


def _bad(preds: dict[str, np.ndarray], key: str) -> dict[str, np.ndarray]:
    test, ood = preds["test"], preds["ood/digits6-9"]
    nan = test.copy()
    nan[0, 1] = np.nan
    return {
        "missing": {"test": test},
        "unknown": {**preds, "ood/other": ood},
        "n": {"test": test[:-1], "ood/digits6-9": ood},
        "c": {"test": test[:, :5], "ood/digits6-9": ood[:, :5]},
        "m": {"test": test, "ood/digits6-9": np.stack([ood, ood])},
        "nan": {"test": nan, "ood/digits6-9": ood},
        "int": {"test": test.astype(np.int64), "ood/digits6-9": ood},
    }[key]


@pytest.mark.parametrize("case, message", [
    ("missing", "missing: ood/digits6-9"), ("unknown", "unknown: ood/other"), ("n", "samples; the set has"),
    ("c", "6 (C)"), ("m", "(M)"), ("nan", "NaN"), ("int", "expected floating"),
])
def test_score_rejects_bad_predictions_and_writes_nothing(sets, tmp_path, capsys, case, message):
    rng = np.random.default_rng(0)
    manifest = json.loads((sets / "manifest.json").read_text())
    preds = {s["key"]: rng.normal(size=(s["n"], 6)).astype(np.float32) for s in manifest["sets"]}
    np.savez(tmp_path / "p.npz", **_bad(preds, case))
    assert cli.main(["score", "--task", "digits", "--predictions", str(tmp_path / "p.npz"),
                     "--results", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "res").exists()


def test_score_rejects_bad_files_and_names(sets, tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    np.savez(tmp_path / "p.npz", test=np.zeros((2, 6)))
    base = ["score", "--task", "digits", "--results", str(tmp_path / "res"), "--predictions"]
    assert cli.main(base + [str(tmp_path / "junk.npz")]) == 2
    assert cli.main(base + [str(tmp_path / "absent.npz")]) == 2
    assert cli.main(base + [str(tmp_path / "p.npz"), "--name", "hydra"]) == 2  # a suite's own entry
    assert cli.main(base + [str(tmp_path / "p.npz"), "--name", "../up"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [e.split(":")[0] for e in err] == ["error"] * 4
    assert "not a readable .npz" in err[0] and "not found" in err[1] and "method entry" in err[2]
    assert not (tmp_path / "res").exists()
