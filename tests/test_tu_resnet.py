"""torch-uncertainty's ResNet ensembles as a method: both kinds, the (M, B, C) view, a run on a
tiny CIFAR-10 through the runner, and the skip on text tasks. The shared contract is in
test_contract.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from uqbench import methods
from uqbench.bench import report, runner, suite
from uqbench.bench.results import JobId

TINY = {"arch": 20, "width": 0.25, "gamma": 1}


@pytest.mark.parametrize("kind", ["packed", "batched"])
def test_member_major_view_and_save_load(kind, digits_task, tmp_path):
    method = methods.create("tu_resnet", kind=kind, **TINY).fit(digits_task)
    x, _ = next(digits_task.iterate(digits_task.splits["test"], 5))
    with torch.no_grad():
        z = method.forward_members(x)
        one = method.forward_members(x[:1])
    assert z.shape == (4, 5, digits_task.num_classes)
    # sample 0's members are the same whatever else is in the batch: the view is member-major
    torch.testing.assert_close(z[:, :1], one, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(z[0], z[1]), "members should differ"
    method.save(tmp_path / "m")
    loaded = methods.load(tmp_path / "m")
    torch.testing.assert_close(loaded.forward_members(x), z, rtol=0, atol=0)


def test_bad_parameters_are_config_errors():
    for bad in ({"kind": "mimo"}, {"arch": 0}, {"alpha": -1.0}, {"num_members": True}):
        with pytest.raises(methods.ConfigError):
            methods.create("tu_resnet", **bad)


def test_indivisible_widths_are_a_config_error(digits_task):
    with pytest.raises(methods.ConfigError, match="divisible"):
        methods.create("tu_resnet", arch=20, width=0.25, num_members=3, gamma=1).fit(digits_task)


def test_cifar10_job_writes_a_result(tmp_path, monkeypatch):
    """A CIFAR-10 job (10 classes, 3 x 32 x 32) end to end on a generated CIFAR-10 tree."""
    from test_tasks import CIFAR10, make_image_tree

    data = tmp_path / "data"
    make_image_tree(data / "cifar10" / "train", CIFAR10, 4, 32, seed=1)
    make_image_tree(data / "cifar10" / "test", CIFAR10, 2, 32, seed=2)
    monkeypatch.setenv("UQBENCH_DATA", str(data))
    (tmp_path / "s.toml").write_text(
        '[suite]\nseeds = [0]\nthreads = 1\nbatch_sizes = [1, 4]\ncost_repeats = 1\n'
        '[[tasks]]\nname = "cifar10-vit"\nparams = { val_per_class = 1, epochs = 1, batch_size = 16, '
        'corruptions = ["contrast"], severities = [1], shift_per_class = 1 }\n'
        '[methods.cnn-packed-resnet20]\nmethod = "tu_resnet"\narch = 20\nwidth = 0.25\ngamma = 1\n')
    s = suite.load(str(tmp_path / "s.toml"))
    rep = runner.run_suite(s, tmp_path / "results", log=lambda *_: None)
    assert rep.done == ["cifar10-vit/cnn-packed-resnet20/seed0"], rep
    res = json.loads(JobId("s", "cifar10-vit", "cnn-packed-resnet20", 0).path(tmp_path / "results").read_text())
    assert res["cost"]["members"] == 4 and 0 <= res["metrics"]["test/acc"] <= 1
    assert "shift/contrast/1/acc" in res["metrics"]
    assert "CNN reference" in res["extra"]["note"]
    report.build(tmp_path / "results", tmp_path / "results" / "leaderboard.md")
    page = (tmp_path / "results" / "reports" / "s.md").read_text()
    assert "| `cnn-packed-resnet20` |" in page
    assert "Corruptions: the project's own CIFAR-10-C-style corruptions" in page  # no published arrays here


def test_not_applicable_to_text_tasks():
    cls = methods.REGISTRY["tu_resnet"]
    assert runner.not_applicable(cls, SimpleNamespace(modality="text", trainable=True)) \
        == "applies to image tasks; this task is text"
    assert runner.not_applicable(cls, SimpleNamespace(modality="image", trainable=True)) is None
    assert runner.not_applicable(methods.REGISTRY["single"], SimpleNamespace(modality="text", trainable=False)) is None
    assert "zero-shot" in runner.not_applicable(cls, SimpleNamespace(modality="image", trainable=False))
