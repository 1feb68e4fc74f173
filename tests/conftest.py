"""Shared fixtures: a tiny, fast ``digits`` task and an isolated cache and data root."""

from __future__ import annotations

import pytest
import torch

from uqbench.bench.tasks import create_task


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No test reads the real data root, the network, or the user's cache."""
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("UQBENCH_DATA", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("UQBENCH_OFFLINE", "1")
    torch.manual_seed(0)


@pytest.fixture
def digits_task():
    """``digits`` with a budget of a few steps: enough to exercise every code path."""
    task = create_task("digits", dim=24, depth=2, heads=6, patch=2, epochs=1, batch_size=128)
    task.seed = 0
    return task
