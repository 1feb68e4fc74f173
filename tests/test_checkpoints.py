"""Checkpoint keys and seeds: derived in one place, never hand-written.

A changed evaluation knob re-evaluates and retrains nothing, a changed training knob
retrains, every result lists the checkpoints it started from, and the seed streams of
different purposes never collide.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

import uqbench.bench.train
from uqbench.bench import results, runner, suite
from uqbench.methods.base import derive_seed
from uqbench.methods.deep_ensembles import DeepEnsembles
from uqbench.methods.hydra.method import member_seed

HEAD = "[suite]\nseeds = [0]\nthreads = 1\nbatch_sizes = [1, 4]\ncost_repeats = 1\n"
METHODS = "[methods.single]\n[methods.deep_ensembles]\nnum_members = 2\n[methods.hydra]\nnum_members = 2\n"


def test_seed_streams_of_different_purposes_never_collide():
    purposes = ["epoch", "hydra/member", "deep_ensembles/member", "single/finetune"]
    seeds = [derive_seed(s, p, i) for s, p, i in itertools.product(range(5), purposes, range(20))]
    assert len(set(seeds)) == len(seeds)
    assert member_seed(1, 0) != DeepEnsembles(num_members=2).member_seeds(1)[1]  # once both 1001
    assert DeepEnsembles(num_members=3).member_seeds(4)[0] == 4  # member 0 is the single model
    assert all(0 <= s < 2**31 for s in seeds)


@pytest.fixture
def images(tmp_path, monkeypatch):
    """A tiny ImageFolder data root with one OOD folder."""
    rng = np.random.default_rng(0)
    for folder, n in (("mine/train/a", 4), ("mine/train/b", 4), ("mine/test/a", 2), ("mine/test/b", 2),
                      ("noise", 5)):
        (tmp_path / folder).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    monkeypatch.setenv("UQBENCH_DATA", str(tmp_path))
    return tmp_path


def _run(folder, params: str, trainings: list) -> runner.RunReport:
    task = ('[[tasks]]\nname = "mine"\nkind = "imagefolder"\nparams = { train = "mine/train", test = "mine/test", '
            f'ood = {{ noise = "noise" }}, image_size = 8, dim = 12, depth = 2, heads = 3, patch = 4, {params} }}\n')
    path = folder / "s.toml"
    path.write_text(f"{HEAD}\n{task}\n{METHODS}")
    return runner.run_suite(suite.load(str(path)), folder / "results", log=lambda *a: None)


def test_an_evaluation_knob_retrains_nothing_and_a_training_knob_retrains(images, monkeypatch):
    trainings: list[str] = []
    real = uqbench.bench.train.fit

    def fit(model, *args, **kwargs):
        trainings.append(kwargs["desc"])
        return real(model, *args, **kwargs)

    monkeypatch.setattr(uqbench.bench.train, "fit", fit)
    first = _run(images, "epochs = 0.5, ood_max = 5", trainings)
    assert len(first.done) == 3 and len(trainings) == 4  # base model, 2nd member, 2 Hydra members
    assert len(set(trainings)) == 4

    trainings.clear()
    again = _run(images, "epochs = 0.5, ood_max = 3, test_per_class = 1", trainings)  # evaluation only
    assert len(again.done) == 3 and trainings == []  # every job re-evaluated, none retrained
    obj = results.read(images / "results" / "runs" / "s" / "mine" / "single" / "seed0.json")
    assert obj["task_config"]["ood_max"] == 3

    _run(images, "epochs = 1, ood_max = 3, test_per_class = 1", trainings)  # the budget: retrain
    assert len(trainings) == 4


def test_every_result_lists_the_checkpoints_it_started_from(images):
    _run(images, "epochs = 0.5", [])
    runs = images / "results" / "runs" / "s" / "mine"
    single, de, hydra = (results.read(runs / m / "seed0.json")["provenance"]["checkpoints"]
                         for m in ("single", "deep_ensembles", "hydra"))
    base = single[0]
    assert len(single) == 1 and base["method"] == "base-model" and len(base["sha256"]) == 64
    other, member0 = de  # the ensemble fetches member 0 (the single model) last
    assert member0["key"] == base["key"] and other["key"] != base["key"]
    assert member0["sha256"] == base["sha256"] and member0["cached"]
    assert hydra[0]["key"] == base["key"]  # the base model Hydra was pruned from
    assert [c["member"] for c in hydra[1:]] == [0, 1] and {c["method"] for c in hydra[1:]} == {"hydra"}
