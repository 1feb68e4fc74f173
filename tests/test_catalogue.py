"""The metric catalogue: every key a result can hold is described exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from uqbench.bench import catalogue, claims, metrics, scoring

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _emitted() -> set[str]:
    """Every key ``scoring`` writes for a task with near- and far-OOD sets, shift sets and the
    held-out validation splits."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 60)
    sets = ["test", "ood/near", "ood/far", "shift/contrast/1", "shift/contrast/2", "shift/blur/1", "val", "ood_val"]
    logits = {k: rng.normal(size=(3, 60, 4)) for k in sets}
    labels = {k: y for k in sets}
    return set(scoring.score(logits, labels, near_ood=("near",))) | set(scoring.score_val(logits, labels))


def test_every_key_scoring_emits_has_exactly_one_catalogue_entry():
    keys = _emitted()
    assert {"test/acc", "ood_far/auroc_mi", "shift/sev2/ece", "shift/blur/1/nll", "val/nll", "ood_val/fpr95_msp"} <= keys
    assert {k: len(catalogue.entries(k)) for k in keys if len(catalogue.entries(k)) != 1} == {}


def test_every_stored_metric_key_has_exactly_one_entry():
    keys = {k for p in sorted(RESULTS.glob("runs/*/*/*/seed0.json"))
            for k in json.loads(p.read_text()).get("metrics", {})}
    assert keys and {k for k in keys if len(catalogue.entries(k)) != 1} == set()


def test_score_kinds_are_one_list():
    assert tuple(metrics.OOD_SCORES) == tuple(catalogue.OOD_SCORES)
    logits = np.zeros((1, 2, 3))
    assert set(metrics.ood_scores(np.full((1, 2, 3), 1 / 3), logits)) == set(catalogue.OOD_SCORES)
    assert set(catalogue.OOD_SCORES) - set(metrics.ood_scores(np.full((1, 2, 3), 1 / 3))) == set(metrics.LOGIT_SCORES)
    assert catalogue.title("ood_near/auroc_entropy") == "AUROC near (entropy)"
    assert catalogue.arrow("ood_mean/fpr95_msp") == "FPR95 ↓"


def test_unknown_keys_fail_naming_the_catalogue():
    with pytest.raises(KeyError, match="bench/catalogue.py"):
        catalogue.lookup("test/made_up")


def test_claims_read_their_direction_from_the_catalogue():
    assert {c.metric: c.higher for c in claims.CLAIMS}["test/nll"] is False
    assert all(c.higher == catalogue.higher(c.metric) for c in claims.CLAIMS)
